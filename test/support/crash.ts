/**
 * Kills a real Chromium behind the pool's back, from inside workerd (tests of
 * the workers project cannot signal processes): the browser is told to crash
 * over its own DevTools socket (`Browser.crash`), and the call returns once the
 * platform's binding no longer knows the session, as after a kill -9.
 */
import { env } from "cloudflare:test";
import { vi } from "vitest";
import { withCdp } from "../../src/browser/cdp";
import { RenderingProvider } from "../../src/browser/rendering";

export async function crashBrowser(sessionId: string): Promise<void> {
  await withCdp(env.BROWSER, sessionId, async (send) => {
    // A crashing browser never answers; the socket closing is the answer (bounded, should it stay open).
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([send("Browser.crash").catch(() => undefined), new Promise((resolve) => (timer = setTimeout(resolve, 2_000)))]);
    clearTimeout(timer);
  });
  const platform = new RenderingProvider(env.BROWSER);
  await vi.waitFor(async () => {
    if (await platform.probe(sessionId)) throw new Error(`browser ${sessionId} still runs`);
  }, { timeout: 10_000, interval: 50 });
}
