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
import { withCdp } from "./cdp";
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

  /** Closes every private context and every page, leaving one fresh blank tab (never zero targets). */
  async reset(sessionId: string): Promise<void> {
    const started = Date.now();
    await withCdp(this.binding, sessionId, async (send) => {
      const { browserContextIds } = await send<{ browserContextIds: string[] }>("Target.getBrowserContexts");
      for (const id of browserContextIds) await send("Target.disposeBrowserContext", { browserContextId: id });
      const { targetId: fresh } = await send<{ targetId: string }>("Target.createTarget", { url: "about:blank" });
      // Wait until the new tab has a main frame, so the next client's connect finds a ready page.
      const { sessionId: tab } = await send<{ sessionId: string }>("Target.attachToTarget", { targetId: fresh, flatten: true });
      await send("Runtime.evaluate", { expression: "document.readyState" }, tab);
      type Targets = { targetInfos: { targetId: string; type: string }[] };
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
    });
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
