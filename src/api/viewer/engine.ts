/**
 * The live viewer's engine: between a viewer page's WebSocket and a
 * browser-level CDP socket to the leased browser, both already accepted, it
 * shows one tab of the browser as a stream of JPEG frames and (for an
 * interactive viewer) forwards the page's mouse and keyboard input to it.
 *
 * It watches the lessee's browser without changing it: it discovers targets,
 * attaches to the watched tab with a flat session of its own and screencasts
 * it. It never activates, creates, closes or navigates a target, nor changes
 * emulation; what it sends to a tab is the screencast, and input when the
 * viewer is interactive. Everything it attached to dies with its socket.
 *
 * Which tab: the one in front, as the lessee sees it. Tabs share one window,
 * and Chromium paints (so screencasts) only the tab in front. No event says
 * which tab that is, so the engine asks: when it starts, when the watched tab
 * goes away, and when the watched tab's screencast reports it hidden (the
 * lessee brought another tab to front), it reads `document.visibilityState` in
 * each tab, newest first (a read, through a session of its own), and watches
 * the visible one. A new tab opens in front, so it is followed as it opens.
 * A tab the viewer chose ("switch") is kept until it goes away, even hidden:
 * the page is then told the tab is not painted (`visible: false`).
 *
 * Frames are paced by the viewer (pacer.ts): the browser never waits for a
 * slow viewer, and a slow viewer never gets a backlog. The tab list is kept in
 * tabs.ts, the CDP commands and events go through channel.ts, and what the
 * page sends is read by input.ts.
 *
 * Protocol, all JSON text messages:
 * - to the page: `{type:"state", state:"connected"|"ended", reason?}`,
 *   `{type:"tabs", tabs:[{targetId, url, title, active, visible?}]}` (`visible`
 *   on the watched tab once its screencast said whether it is painted),
 *   `{type:"frame", data:<base64 JPEG>, metadata:{deviceWidth, deviceHeight, pageScaleFactor, offsetTop, scrollOffsetX, scrollOffsetY, timestamp}}`.
 * - from the page: `{type:"ack"}` once a frame is drawn, `{type:"switch", targetId}`,
 *   and, from an interactive viewer only, `{type:"mouse", …}` and `{type:"key", …}`
 *   (parsed by mouseCommand and keyCommand, input.ts). Anything else is ignored.
 */
import { message as errorText, withDeadline } from "../../deadline";
import { closeQuietly } from "../sockets";
import { CdpChannel } from "../../browser/channel";
import { keyCommand, mouseCommand, pageMessage } from "./input";
import { FramePacer } from "./pacer";
import { isTab, TabList, type TargetInfo } from "./tabs";

export interface ViewerOptions {
  /** Forward input to the page; a read-only viewer's input messages are ignored. */
  interactive: boolean;
  /** Frames per second at most (default 10). */
  maxFps?: number;
  /** Called once when the stream ends (viewer closed, browser closed, or end() called). */
  onEnd?: (by: string) => void;
}

export interface ViewerStream {
  /** Tells the page the stream ended (`{type:"state", state:"ended", reason}`), then closes both sockets. */
  end(code: number, reason: string): void;
}

const DEFAULT_MAX_FPS = 10;
/** How long the goodbye to the browser (stop the screencast, detach) may take before the socket is closed anyway. */
const GOODBYE_TIMEOUT_MS = 1_000;
/** Input commands awaiting the browser's answer at most; a viewer sending faster has the excess dropped. */
const MAX_INPUT_IN_FLIGHT = 32;

/** Quality and size of the screencast: a 1280×800 JPEG at 60 is ~50-150 KB. */
const SCREENCAST = { format: "jpeg", quality: 60, maxWidth: 1280, maxHeight: 800 } as const;

export function serveViewer(viewer: WebSocket, browser: WebSocket, options: ViewerOptions): ViewerStream {
  const session = new ViewerSession(viewer, browser, options);
  session.start();
  return { end: (code, reason) => session.end("end", code, reason) };
}

class ViewerSession {
  private ended = false;
  private readonly cdp: CdpChannel;
  private readonly tabs = new TabList();
  /** The tab the viewer chose, kept until it goes away. */
  private pinned: string | undefined;
  /** The tab being screencast, with the flat session attached to it. */
  private watching: { targetId: string; sessionId: string } | undefined;
  /** The tab that should be watched; reconcile() moves `watching` to it. */
  private wanted: string | undefined;
  private reconciling = false;
  /** What the watched tab's screencast last said: painted or not (undefined until it says). */
  private watchedVisible: boolean | undefined;
  private searching = false;
  /** The tabs that existed when the engine started have all been listed. */
  private discovered = false;
  private searchAgain = false;
  private inputInFlight = 0;
  private readonly pacer: FramePacer;

  constructor(
    private readonly viewer: WebSocket,
    private readonly browser: WebSocket,
    private readonly options: ViewerOptions,
  ) {
    this.cdp = new CdpChannel(browser);
    const fps = options.maxFps && options.maxFps > 0 ? options.maxFps : DEFAULT_MAX_FPS;
    this.pacer = new FramePacer(
      1000 / fps,
      (frame) => this.toViewer({ type: "frame", data: frame.data, metadata: frame.metadata }),
      (numbers) => {
        const watched = this.watching;
        if (!watched) return;
        for (const n of numbers) this.cdp.command("Page.screencastFrameAck", { sessionId: n }, watched.sessionId).catch(() => {});
      },
    );
  }

  start(): void {
    // Binary frames would otherwise arrive as Blob (see cdp.ts's pipe).
    this.viewer.binaryType = "arraybuffer";
    this.browser.binaryType = "arraybuffer";
    this.viewer.addEventListener("message", (event) => this.fromViewer(event.data));
    this.browser.addEventListener("message", (event) => this.fromBrowser(event.data));
    this.viewer.addEventListener("close", (event) => this.end("viewer", event.code, event.reason));
    this.browser.addEventListener("close", (event) => {
      this.cdp.failAll();
      this.end("browser", event.code, event.reason || "the browser connection closed");
    });
    this.viewer.addEventListener("error", () => this.end("viewer_error", 1011, "viewer connection failed"));
    this.browser.addEventListener("error", () => this.end("browser_error", 1011, "browser connection failed"));
    void this.discover();
  }

  /** Sends the page the end, closes both sockets, and reports once. */
  end(by: string, code: number, reason: string): void {
    if (this.ended) return;
    this.ended = true;
    this.pacer.stop();
    this.toViewer({ type: "state", state: "ended", reason });
    closeQuietly(this.viewer, code, reason);
    const watched = this.watching;
    this.watching = undefined;
    // The goodbye is a courtesy: closing the socket ends the screencast and the
    // session anyway, so it is bounded and its failure ignored. It also quiets
    // the socket before it closes: locally, Miniflare's binding throws when
    // Chromium sends on a socket whose other end has just closed.
    void (async () => {
      if (by !== "browser" && by !== "browser_error") {
        await withDeadline(
          Promise.allSettled([
            ...(watched
              ? [this.cdp.command("Page.stopScreencast", {}, watched.sessionId), this.cdp.command("Target.detachFromTarget", { sessionId: watched.sessionId })]
              : []),
            this.cdp.command("Target.setDiscoverTargets", { discover: false }),
          ]),
          GOODBYE_TIMEOUT_MS,
          "the viewer's goodbye to the browser",
        ).catch(() => {});
      }
      closeQuietly(this.browser, 1000, "viewer closed");
      this.cdp.failAll();
    })();
    this.options.onEnd?.(by);
  }

  private async discover(): Promise<void> {
    try {
      // Answers after a Target.targetCreated for every existing target.
      await this.cdp.command("Target.setDiscoverTargets", { discover: true });
      if (this.ended) return;
      this.discovered = true;
      this.toViewer({ type: "state", state: "connected" });
      this.sendTabs();
      await this.findVisible();
    } catch (error) {
      this.end("browser_error", 1011, `the browser did not answer: ${errorText(error)}`);
    }
  }

  // ---- the browser's side

  private fromBrowser(data: string | ArrayBuffer): void {
    const message = this.cdp.receive(data);
    if (!message || this.ended || !message.params) return;
    switch (message.method) {
      case "Page.screencastFrame":
        if (message.sessionId !== undefined && message.sessionId === this.watching?.sessionId) {
          const { data: jpeg, metadata, sessionId: ack } = message.params as { data: string; metadata: Record<string, unknown>; sessionId: number };
          this.pacer.frame({ data: jpeg, metadata, ack });
        }
        return;
      case "Page.screencastVisibilityChanged":
        if (message.sessionId !== undefined && message.sessionId === this.watching?.sessionId) {
          this.watchedVisible = Boolean(message.params.visible);
          this.sendTabs();
          // The lessee brought another tab to front: follow it, unless the viewer chose this one.
          if (!this.watchedVisible && !this.pinned) void this.findVisible();
        }
        return;
      case "Target.targetCreated":
        this.targetChanged(message.params.targetInfo as TargetInfo, true);
        return;
      case "Target.targetInfoChanged":
        this.targetChanged(message.params.targetInfo as TargetInfo, false);
        return;
      case "Target.targetDestroyed":
        this.targetGone(message.params.targetId as string);
        return;
      case "Target.detachedFromTarget":
        // Our session ended under us (the tab closed or crashed): watch whatever should be watched now.
        if (message.params.sessionId === this.watching?.sessionId) {
          this.watching = undefined;
          this.watchedVisible = undefined;
          this.pacer.reset();
          this.retarget();
        }
        return;
    }
  }

  private targetChanged(info: TargetInfo, created: boolean): void {
    if (!isTab(info)) {
      // The browser's own UI (the omnibox popup) is listed as a page at times.
      if (this.tabs.has(info.targetId)) this.targetGone(info.targetId);
      return;
    }
    const change = this.tabs.record(info);
    if (change === "same") return;
    // A new tab opens in front; a search under way would answer for the tabs before it.
    // (Tabs listed at discovery are older: the first search picks among them.)
    if (created && change === "new" && this.discovered) {
      this.searchAgain = this.searching;
      if (!this.pinned) this.retarget();
    }
    this.sendTabs();
  }

  private targetGone(targetId: string): void {
    if (!this.tabs.remove(targetId)) return;
    if (this.pinned === targetId) this.pinned = undefined;
    const watched = this.wanted === targetId || this.watching?.targetId === targetId;
    this.sendTabs();
    if (!watched) return;
    // Another tab is in front now: watch the newest meanwhile, then the one that is visible.
    this.retarget();
    void this.findVisible();
  }

  /** Decides which tab to watch: the viewer's choice while it lives, else the newest. */
  private retarget(): void {
    this.wanted = this.pinned ?? this.tabs.newest()?.targetId;
    void this.reconcile();
  }

  /**
   * Watches the tab in front (unless the viewer chose one): asks each tab,
   * newest first, whether it is visible; the newest stands in if none says so.
   * One search at a time; a reason to search during one searches again after it.
   */
  private async findVisible(): Promise<void> {
    if (this.searching) {
      this.searchAgain = true;
      return;
    }
    this.searching = true;
    try {
      do {
        this.searchAgain = false;
        if (this.pinned) return this.retarget();
        const candidates = this.tabs.newestFirst();
        let visible: string | undefined;
        for (const tab of candidates) {
          if (this.ended) return;
          if (await this.isVisible(tab.targetId)) {
            visible = tab.targetId;
            break;
          }
        }
        if (this.pinned || this.ended) continue;
        if (visible) {
          this.wanted = visible;
          void this.reconcile();
        } else this.retarget();
        this.sendTabs();
      } while (this.searchAgain && !this.ended);
    } finally {
      this.searching = false;
    }
  }

  /** Whether a tab is painted, read through a short session of the engine's own; false if it cannot be told. */
  private async isVisible(targetId: string): Promise<boolean> {
    if (this.watching?.targetId === targetId) return this.watchedVisible === true;
    let sessionId: string | undefined;
    try {
      ({ sessionId } = await this.cdp.command<{ sessionId: string }>("Target.attachToTarget", { targetId, flatten: true }));
      const { result } = await this.cdp.command<{ result: { value?: unknown } }>(
        "Runtime.evaluate",
        { expression: "document.visibilityState", returnByValue: true },
        sessionId,
      );
      return result.value === "visible";
    } catch {
      return false;
    } finally {
      if (sessionId) this.cdp.command("Target.detachFromTarget", { sessionId }).catch(() => {});
    }
  }

  /** Moves the screencast to `wanted`, one step at a time; a change of mind meanwhile is picked up by the loop. */
  private async reconcile(): Promise<void> {
    if (this.reconciling) return;
    this.reconciling = true;
    try {
      while (!this.ended && this.watching?.targetId !== this.wanted) {
        const previous = this.watching;
        if (previous) {
          this.watching = undefined;
          this.watchedVisible = undefined;
          this.pacer.reset();
          await Promise.allSettled([
            this.cdp.command("Page.stopScreencast", {}, previous.sessionId),
            this.cdp.command("Target.detachFromTarget", { sessionId: previous.sessionId }),
          ]);
          this.sendTabs();
          continue;
        }
        const targetId = this.wanted!;
        try {
          const { sessionId } = await this.cdp.command<{ sessionId: string }>("Target.attachToTarget", { targetId, flatten: true });
          this.watching = { targetId, sessionId };
          this.sendTabs();
          await this.cdp.command("Page.startScreencast", { ...SCREENCAST, everyNthFrame: 1 }, sessionId);
        } catch {
          // The tab went away while we attached (its targetDestroyed changes `wanted`,
          // and the loop goes on), or it would not screencast: leave it until the tabs change.
          if (this.wanted === targetId) return;
        }
      }
    } finally {
      this.reconciling = false;
    }
  }

  // ---- the viewer's side

  private toViewer(message: unknown): boolean {
    try {
      this.viewer.send(JSON.stringify(message));
      return true;
    } catch {
      return false; // closing: its close event ends the stream
    }
  }

  private sendTabs(): void {
    if (this.ended) return;
    const active = this.watching?.targetId ?? this.wanted;
    const watched = this.watching;
    const painted = watched && this.watchedVisible !== undefined ? { targetId: watched.targetId, visible: this.watchedVisible } : undefined;
    const tabs = this.tabs.entries(active, painted);
    this.toViewer({ type: "tabs", tabs });
  }

  private fromViewer(data: string | ArrayBuffer): void {
    if (this.ended) return;
    const message = pageMessage(data);
    if (!message) return;
    switch (message.type) {
      case "ack":
        this.pacer.viewerAck();
        return;
      case "switch":
        if (typeof message.targetId === "string" && this.tabs.has(message.targetId)) {
          this.pinned = message.targetId;
          this.retarget();
          this.sendTabs();
        }
        return;
      case "mouse":
        if (this.options.interactive) this.input("Input.dispatchMouseEvent", mouseCommand(message));
        return;
      case "key":
        if (this.options.interactive) this.input("Input.dispatchKeyEvent", keyCommand(message));
        return;
    }
  }

  private input(method: string, params: Record<string, unknown> | undefined): void {
    const watched = this.watching;
    if (!params || !watched || this.inputInFlight >= MAX_INPUT_IN_FLIGHT) return;
    this.inputInFlight += 1;
    this.cdp.command(method, params, watched.sessionId)
      .catch(() => {})
      .finally(() => (this.inputInFlight -= 1));
  }
}
