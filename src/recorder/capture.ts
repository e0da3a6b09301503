/**
 * The recorder's side of a browser: over a browser-level CDP socket of its
 * own, it screencasts the tab in front of the leased browser and hands each
 * frame it keeps to `onFrame`, at most `fps` a second.
 *
 * Which tab: the newest page target that is a tab of the lessee's (not the
 * browser's own UI: `chrome://…`, `devtools://…`, and the `*.top-chrome`
 * pages Chromium lists as pages at times, e.g. the omnibox popup). A new tab
 * opens in front, so it is followed as it opens; when the watched tab goes
 * away, the newest remaining one is watched. Unlike the live viewer it does
 * not ask which tab is visible: a recording that follows the newest tab is
 * right whenever the lessee works in its newest tab, and never touches the
 * others. It never activates, creates, closes or navigates a target.
 *
 * Pacing: Chromium sends screencast frames only while few are unacknowledged,
 * so the recorder acknowledges a frame only once 1000/fps ms have passed since
 * the last one it kept: Chromium itself then sends no faster. A frame that
 * arrives early is held (the newest replaces the held one) and kept when its
 * time comes, stamped with that time: the screen still shows it then, since
 * Chromium sends a frame on every repaint.
 */
import { CdpChannel } from "../browser/channel";
import { message as errorText, withDeadline } from "../deadline";
import { log } from "../log";

/** Quality and size of a recorded frame: a 960×600 JPEG at 50 is ~20-60 KB (base64). */
const SCREENCAST = { format: "jpeg", quality: 50, maxWidth: 960, maxHeight: 600, everyNthFrame: 1 } as const;
/** How long the goodbye (stop the screencast, detach) may take before the socket is closed anyway. */
const GOODBYE_TIMEOUT_MS = 1_000;

export interface CaptureOptions {
  /** Frames kept per second at most. */
  fps: number;
  /** The recorder's clock (epoch ms): frame times and pacing. */
  now: () => number;
  /** A frame kept, at time `t`. */
  onFrame: (t: number, data: string) => void;
  /** The browser's socket closed or failed (not called after `stop`). */
  onClosed: (reason: string) => void;
}

interface TargetInfo {
  targetId: string;
  type: string;
  url: string;
}

/** A tab of the lessee's: a page, and not a piece of the browser's own UI. */
export function isRecordedTab(info: TargetInfo): boolean {
  if (info.type !== "page") return false;
  if (/^(chrome|devtools|chrome-untrusted):/i.test(info.url)) return false;
  try {
    return !new URL(info.url).hostname.endsWith(".top-chrome");
  } catch {
    return true; // "" or another unparsable URL: a page still loading
  }
}

export class ScreencastCapture {
  private readonly cdp: CdpChannel;
  /** Tabs by target id, with the order the capture saw them created in. */
  private readonly tabs = new Map<string, number>();
  private seen = 0;
  private discovered = false;
  private wanted: string | undefined;
  private watching: { targetId: string; sessionId: string } | undefined;
  private reconciling = false;
  private stopped = false;
  // Pacing: the newest frame not yet kept, and the frame numbers not yet acknowledged.
  private held: string | undefined;
  private unacked: number[] = [];
  private lastKept = -Infinity;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly intervalMs: number;

  constructor(
    private readonly socket: WebSocket,
    private readonly options: CaptureOptions,
  ) {
    this.intervalMs = 1000 / options.fps;
    this.cdp = new CdpChannel(socket);
  }

  /** Starts watching; resolves once the screencast of the tab in front was asked for (or there is no tab yet). */
  async start(): Promise<void> {
    this.socket.accept();
    this.socket.binaryType = "arraybuffer";
    this.socket.addEventListener("message", (event) => this.fromBrowser(event.data));
    this.socket.addEventListener("close", (event) => this.closed(`the browser connection closed (${event.code})`));
    this.socket.addEventListener("error", () => this.closed("the browser connection failed"));
    // Answers after a Target.targetCreated for every existing target.
    await this.command("Target.setDiscoverTargets", { discover: true });
    this.discovered = true;
    this.retarget();
    await this.reconcile();
  }

  /**
   * Keeps the held frame (what the screen shows now), ends the screencast and
   * closes the socket. Bounded; never throws.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.keepHeld();
    this.stopped = true;
    clearTimeout(this.timer);
    const watched = this.watching;
    this.watching = undefined;
    // Closing the socket ends the screencast anyway; the goodbye also quiets the socket first
    // (locally, Miniflare's binding throws when Chromium sends on a socket just closed).
    await withDeadline(
      Promise.allSettled([
        ...(watched ? [this.command("Page.stopScreencast", {}, watched.sessionId), this.command("Target.detachFromTarget", { sessionId: watched.sessionId })] : []),
        this.command("Target.setDiscoverTargets", { discover: false }),
      ]),
      GOODBYE_TIMEOUT_MS,
      "the recorder's goodbye to the browser",
    ).catch(() => {});
    try {
      this.socket.close(1000, "recording stopped");
    } catch {
      // already closed
    }
    this.cdp.failAll("the recording stopped");
  }

  private closed(reason: string): void {
    if (this.stopped) return;
    this.keepHeld();
    this.stopped = true;
    clearTimeout(this.timer);
    this.cdp.failAll(reason);
    this.options.onClosed(reason);
  }

  private command<T = any>(method: string, params: Record<string, unknown>, sessionId?: string): Promise<T> {
    return this.cdp.command<T>(method, params, sessionId);
  }

  private fromBrowser(data: string | ArrayBuffer): void {
    // An answer settles its command inside the channel; what comes back is an event.
    const message = this.cdp.receive(data);
    if (!message || this.stopped || !message.params) return;
    switch (message.method) {
      case "Page.screencastFrame":
        if (message.sessionId !== undefined && message.sessionId === this.watching?.sessionId) {
          this.frame(message.params.data as string, message.params.sessionId as number);
        }
        return;
      case "Target.targetCreated":
      case "Target.targetInfoChanged": {
        const info = message.params.targetInfo as TargetInfo;
        if (!isRecordedTab(info)) {
          if (this.tabs.delete(info.targetId) && this.isWatched(info.targetId)) this.retarget();
          return;
        }
        if (this.tabs.has(info.targetId)) return;
        this.tabs.set(info.targetId, ++this.seen);
        // A new tab opens in front (tabs listed at discovery are older: the first pick is among them).
        if (this.discovered) this.retarget();
        return;
      }
      case "Target.targetDestroyed":
        if (this.tabs.delete(message.params.targetId as string) && this.isWatched(message.params.targetId as string)) this.retarget();
        return;
      case "Target.detachedFromTarget":
        // Our session ended under us (the tab closed or crashed).
        if (message.params.sessionId === this.watching?.sessionId) {
          this.watching = undefined;
          this.forgetFrames();
          this.retarget();
        }
        return;
    }
  }

  private isWatched(targetId: string): boolean {
    return this.wanted === targetId || this.watching?.targetId === targetId;
  }

  /** Watches the newest tab. */
  private retarget(): void {
    let newest: string | undefined;
    let order = -1;
    for (const [targetId, seen] of this.tabs) {
      if (seen > order) {
        newest = targetId;
        order = seen;
      }
    }
    this.wanted = newest;
    if (this.discovered) void this.reconcile();
  }

  /** Moves the screencast to `wanted`, one step at a time; a change of mind meanwhile is picked up by the loop. */
  private async reconcile(): Promise<void> {
    if (this.reconciling) return;
    this.reconciling = true;
    try {
      while (!this.stopped && this.watching?.targetId !== this.wanted) {
        const previous = this.watching;
        if (previous) {
          this.watching = undefined;
          this.keepHeld();
          this.forgetFrames();
          await Promise.allSettled([
            this.command("Page.stopScreencast", {}, previous.sessionId),
            this.command("Target.detachFromTarget", { sessionId: previous.sessionId }),
          ]);
          continue;
        }
        if (this.wanted === undefined) return;
        const targetId = this.wanted;
        try {
          const { sessionId } = await this.command<{ sessionId: string }>("Target.attachToTarget", { targetId, flatten: true });
          this.watching = { targetId, sessionId };
          await this.command("Page.startScreencast", SCREENCAST, sessionId);
        } catch (error) {
          // The tab went away while we attached (its targetDestroyed changes `wanted`, and the
          // loop goes on), or it would not screencast: leave it until the tabs change.
          if (this.wanted === targetId) {
            log("recording_attach_failed", { targetId, error: errorText(error) });
            return;
          }
        }
      }
    } finally {
      this.reconciling = false;
    }
  }

  // ---- pacing

  private frame(data: string, ack: number): void {
    this.held = data;
    this.unacked.push(ack);
    this.tick();
  }

  private tick(): void {
    if (this.timer || this.stopped || this.held === undefined) return;
    const wait = this.lastKept + this.intervalMs - this.options.now();
    if (wait > 0) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        // The timer firing is the frame's time having come, whatever the clock says (a test's clock may stand still).
        this.keepHeld();
      }, wait);
      return;
    }
    this.keepHeld();
  }

  /** Keeps the held frame now and lets Chromium send the next. */
  private keepHeld(): void {
    if (this.stopped || this.held === undefined) return;
    const data = this.held;
    this.held = undefined;
    this.lastKept = this.options.now();
    this.options.onFrame(this.lastKept, data);
    const watched = this.watching;
    for (const n of this.unacked.splice(0)) {
      if (watched) this.command("Page.screencastFrameAck", { sessionId: n }, watched.sessionId).catch(() => {});
    }
  }

  /** Forgets frames of a screencast that is over (its acknowledgements belong to a session that is gone). */
  private forgetFrames(): void {
    this.held = undefined;
    this.unacked = [];
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
