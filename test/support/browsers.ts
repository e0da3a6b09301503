/**
 * Real Chromium through the BROWSER binding for tests of the provider itself:
 * `launch()` starts a browser that is closed after the test, whatever it did.
 */
import { env } from "cloudflare:test";
import { afterEach } from "vitest";
import { KEEP_ALIVE_MS } from "../../src/browser/provider";
import { RenderingProvider } from "../../src/browser/rendering";

export function realBrowsers(): { provider: RenderingProvider; launch: () => Promise<string> } {
  const provider = new RenderingProvider(env.BROWSER);
  const opened: string[] = [];
  afterEach(async () => {
    await Promise.allSettled(opened.splice(0).map((id) => provider.close(id)));
  });
  return {
    provider,
    launch: async () => {
      const sessionId = await provider.launch({ keepAliveMs: KEEP_ALIVE_MS });
      opened.push(sessionId);
      return sessionId;
    },
  };
}
