/**
 * The real provider: Cloudflare Browser Rendering through the `BROWSER` binding,
 * via @cloudflare/puppeteer. Locally, wrangler/Miniflare serve the binding with
 * a real Chromium (scripts/setup.mjs installs it and the shim; docs/development.md).
 *
 * - launch uses `acquire`, which starts a browser without holding a devtools
 *   connection, so the lease's client can connect to it later.
 * - close uses the documented `DELETE /v1/devtools/browser/{id}` and falls back
 *   to connecting and sending Browser.close.
 * - reset and ping speak CDP over the binding's DevTools socket (./cdp.ts),
 *   act and disconnect (never close).
 * - probe reads the session's detail (`GET /v1/devtools/session/{id}`), which
 *   never connects to the browser, so it cannot compete with a client.
 */
import puppeteer from "@cloudflare/puppeteer";
import type { BrowserProvider, LiveSession, PlatformLimits } from "./provider";
import { withCdp, type Send } from "./cdp";
import { applyState, clearState, readState } from "./context";
import type { StoredState } from "./state";
import { PlatformLimitError } from "./provider";

const PLATFORM = "https://fake.host";

/**
 * How long a 429 at launch says to wait, before `limits()` is asked: the
 * Workers Free plan's daily browser time ("Browser time limit exceeded for
 * today") comes back at the next UTC midnight; a rate or concurrency refusal
 * after a few seconds (the pool then asks `limits()` for the exact time).
 */
export function limitBackoffSeconds(message: string, now: number): number {
  if (/exceeded for today/i.test(message)) {
    const midnight = new Date(now);
    midnight.setUTCHours(24, 0, 0, 0);
    return Math.max(1, Math.ceil((midnight.getTime() - now) / 1000));
  }
  return 5;
}
/** How many browsers' blank tabs a provider remembers (one per live browser of its pool is enough). */
const MAX_REMEMBERED_BLANKS = 256;
/** The number of own properties of a tab's window: a script that set a global changes it. */
const GLOBALS = "Object.getOwnPropertyNames(window).length";
/** What an untouched blank tab answers (checked in one evaluation): never navigated, no frames, empty markup, its globals as counted when it was made. */
const BLANK_CHECK = `JSON.stringify([history.length, window.frames.length, document.documentElement.outerHTML, ${GLOBALS}])`;
const BLANK_MARKUP = "<html><head></head><body></body></html>";

type Targets = { targetInfos: { targetId: string; type: string; url: string }[] };

/** The blank tab a full reset opened: its target, and its window's own properties then. */
interface BlankTab {
  targetId: string;
  globals: number;
}

/**
 * Whether the browser is exactly as the reset that opened `blank` left it:
 * no private context, no cookie, no target but that tab (no other page, no
 * worker; Chromium's own UI aside), and the tab still on its first, empty about:blank document with
 * no frame and no global added. Three reads in one round trip, then one
 * evaluation in the tab.
 *
 * What it cannot see, the full reset cannot clear either (docs/design.md,
 * "Reuse isolation"), with one addition: a script the previous client ran in
 * this tab without navigating it and without adding a global (an event
 * listener) stays in the tab until a client navigates or closes it.
 */
async function untouched(send: Send, blank: BlankTab): Promise<boolean> {
  const [{ browserContextIds }, { targetInfos }, { cookies }] = await Promise.all([
    send<{ browserContextIds: string[] }>("Target.getBrowserContexts"),
    send<Targets>("Target.getTargets"),
    send<{ cookies: unknown[] }>("Storage.getCookies", {}),
  ]);
  if (browserContextIds.length > 0 || cookies.length > 0 || blank.globals < 0) return false;
  // Chromium's own UI (the omnibox popup of new headless) is listed as browser_ui targets; no client makes those.
  const targets = targetInfos.filter((t) => t.type !== "browser_ui");
  if (targets.length !== 1 || targets[0]!.targetId !== blank.targetId || targets[0]!.url !== "about:blank") return false;
  const { sessionId: tab } = await send<{ sessionId: string }>("Target.attachToTarget", { targetId: blank.targetId, flatten: true });
  const { result } = await send<{ result: { value?: unknown } }>("Runtime.evaluate", { expression: BLANK_CHECK, returnByValue: true }, tab);
  // Not detached: ending the conversation (withCdp closes its socket) detaches it.
  return result.value === JSON.stringify([1, 0, BLANK_MARKUP, blank.globals]);
}

/** How long close waits for the platform to confirm that a browser has ended. */
const CLOSE_CONFIRM_MS = 5_000;
/** How long a reset waits for the previous lease's tabs to be gone (it fails, and the session is closed, after that). */
const TAB_CLOSE_WAIT_MS = 3_000;

export class RenderingProvider implements BrowserProvider {
  constructor(private readonly binding: Fetcher) {}

  async launch({ keepAliveMs }: { keepAliveMs: number }): Promise<string> {
    try {
      const { sessionId } = await puppeteer.acquire(this.binding, { keep_alive: keepAliveMs });
      return sessionId;
    } catch (error) {
      // @cloudflare/puppeteer reports "Unable to create new browser: code: 429: …".
      const message = error instanceof Error ? error.message : String(error);
      if (/code: 429/.test(message)) throw new PlatformLimitError(message, limitBackoffSeconds(message, Date.now()));
      throw error;
    }
  }

  async limits(): Promise<PlatformLimits> {
    const { maxConcurrentSessions, allowedBrowserAcquisitions, timeUntilNextAllowedBrowserAcquisition } = await puppeteer.limits(this.binding);
    return { maxConcurrentSessions, allowedBrowserAcquisitions, timeUntilNextAllowedBrowserAcquisition };
  }

  async close(sessionId: string): Promise<void> {
    this.blanks.delete(sessionId);
    const response = await this.binding.fetch(`${PLATFORM}/v1/devtools/browser/${encodeURIComponent(sessionId)}`, {
      method: "DELETE",
    });
    await response.body?.cancel();
    if (response.status === 404) return;
    if (!response.ok) {
      const browser = await puppeteer.connect(this.binding, sessionId);
      await browser.close();
    }
    await this.waitUntilEnded(sessionId);
  }

  /**
   * DELETE answers once the platform has *started* closing the browser; for a
   * moment afterwards a connect can still reach it (seen locally: Miniflare
   * drops the session from its list before Chromium has exited). A slot must
   * not be reused while its browser can still be driven, so close resolves only
   * once the session's detail says it ended (404, or an endTime), and throws if
   * that takes longer than CLOSE_CONFIRM_MS; the pool then retries the close.
   */
  private async waitUntilEnded(sessionId: string): Promise<void> {
    const deadline = Date.now() + CLOSE_CONFIRM_MS;
    for (let delay = 20; ; delay = Math.min(delay * 2, 250)) {
      if (!(await this.probe(sessionId).catch(() => true))) return;
      if (Date.now() + delay > deadline) throw new Error(`browser ${sessionId} was asked to close but is still running after ${CLOSE_CONFIRM_MS} ms`);
      await scheduler.wait(delay);
    }
  }

  /**
   * Makes a used browser fit for the next lease. If it is exactly as the last
   * reset left it (untouched: the lease's client closed the pages it opened and
   * left nothing behind that CDP shows), that is already so, and the reset is a
   * few reads: a job loop's next acquire need not wait for a new tab. Otherwise
   * every private context and every page is closed, leaving one fresh blank tab
   * (never zero targets), and the cookies and storage of every origin the old
   * tabs show are forgotten.
   */
  async reset(sessionId: string): Promise<void> {
    const blank = this.blanks.get(sessionId);
    this.blanks.delete(sessionId);
    await withCdp(this.binding, sessionId, async (send) => {
      if (blank && (await untouched(send, blank))) {
        this.remember(sessionId, blank);
        return;
      }
      this.remember(sessionId, await this.clean(send));
    });
  }

  /** The blank tab a reset left in a browser, for the next reset to recognise (in memory: a restarted object cleans in full once). */
  private readonly blanks = new Map<string, BlankTab>();

  private remember(sessionId: string, blank: BlankTab): void {
    this.blanks.set(sessionId, blank);
    // Bounded: browsers that died idle are never reset or closed through here again.
    if (this.blanks.size > MAX_REMEMBERED_BLANKS) this.blanks.delete(this.blanks.keys().next().value!);
  }

  /** The full reset: contexts disposed, a fresh blank tab, the old tabs' origins forgotten, the old tabs closed and gone. */
  private async clean(send: Send): Promise<BlankTab> {
    const started = Date.now();
    const { browserContextIds } = await send<{ browserContextIds: string[] }>("Target.getBrowserContexts");
    for (const id of browserContextIds) await send("Target.disposeBrowserContext", { browserContextId: id });
    const { targetId: fresh } = await send<{ targetId: string }>("Target.createTarget", { url: "about:blank" });
    // Wait until the new tab has a main frame, so the next client's connect finds a ready page;
    // its window's own properties are counted, so that the next reset can tell a script added one.
    const { sessionId: tab } = await send<{ sessionId: string }>("Target.attachToTarget", { targetId: fresh, flatten: true });
    const { result } = await send<{ result: { value?: unknown } }>("Runtime.evaluate", { expression: GLOBALS, returnByValue: true }, tab);
    const stale = (targets: Targets) => targets.targetInfos.filter((t) => t.type === "page" && t.targetId !== fresh);
    const tabs = stale(await send<Targets>("Target.getTargets"));
    // Cookies and storage outlive tabs: forget those of every origin the old tabs show, before closing them.
    await clearState(
      send,
      tabs.map((t) => t.targetId),
      tab,
    );
    await send("Target.detachFromTarget", { sessionId: tab });
    for (const target of tabs) await send("Target.closeTarget", { targetId: target.targetId });
    // closeTarget answers before the tab is gone; a client connecting meanwhile
    // would attach to a dying page ("Requesting main frame too early!").
    for (let delay = 10; stale(await send<Targets>("Target.getTargets")).length > 0; delay = Math.min(delay * 2, 100)) {
      if (delay >= 100 && Date.now() > started + TAB_CLOSE_WAIT_MS) throw new Error(`old tabs still open ${TAB_CLOSE_WAIT_MS} ms after closing them`);
      await scheduler.wait(delay);
    }
    return { targetId: fresh, globals: typeof result.value === "number" ? result.value : -1 };
  }

  async applyState(sessionId: string, state: StoredState): Promise<void> {
    await withCdp(this.binding, sessionId, (send, on) => applyState(send, on, state));
  }

  async readState(sessionId: string): Promise<StoredState> {
    return withCdp(this.binding, sessionId, (send, on) => readState(send, on));
  }

  async ping(sessionId: string): Promise<void> {
    await withCdp(this.binding, sessionId, (send) => send("Browser.getVersion"));
  }

  async probe(sessionId: string): Promise<boolean> {
    const detail = await this.binding.fetch(`${PLATFORM}/v1/devtools/session/${encodeURIComponent(sessionId)}`);
    if (detail.status === 404) {
      await detail.body?.cancel();
      return false;
    }
    if (!detail.ok) {
      await detail.body?.cancel();
      throw new Error(`the platform answered ${detail.status} about session ${sessionId}`);
    }
    const body: unknown = await detail.json();
    return !(body !== null && typeof body === "object" && "endTime" in body && body.endTime);
  }

  async connect(sessionId: string): Promise<WebSocket> {
    const response = await this.binding.fetch(`${PLATFORM}/v1/devtools/browser/${encodeURIComponent(sessionId)}`, {
      headers: { Upgrade: "websocket" },
    });
    if (!response.webSocket) {
      await response.body?.cancel();
      throw new Error(`the platform answered ${response.status} instead of a WebSocket`);
    }
    return response.webSocket;
  }

  async list(): Promise<LiveSession[]> {
    const sessions = await puppeteer.sessions(this.binding);
    return sessions.map((s) => ({ sessionId: s.sessionId, startTime: s.startTime, connected: Boolean(s.connectionId) }));
  }
}
