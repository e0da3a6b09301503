/**
 * The real provider against real Chromium, through the BROWSER binding that
 * wrangler/Miniflare serve locally: every operation the pool relies on.
 */
import puppeteer from "@cloudflare/puppeteer";
import { env } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import { RenderingProvider } from "../../src/browser/rendering";
import { KEEP_ALIVE_MS } from "../../src/pool/config";

const provider = new RenderingProvider(env.BROWSER);
const opened: string[] = [];

async function launch(): Promise<string> {
  const sessionId = await provider.launch({ keepAliveMs: KEEP_ALIVE_MS });
  opened.push(sessionId);
  return sessionId;
}

afterEach(async () => {
  await Promise.allSettled(opened.splice(0).map((id) => provider.close(id)));
});

describe("RenderingProvider with real Chromium", () => {
  it("launches a browser that is listed as live and not connected", async () => {
    const sessionId = await launch();
    const live = await provider.list();
    expect(live.find((s) => s.sessionId === sessionId)).toMatchObject({ sessionId, connected: false });
  });

  it("closes a browser so it is no longer listed, and closing it again is harmless", async () => {
    const sessionId = await launch();
    await provider.close(sessionId);
    expect((await provider.list()).map((s) => s.sessionId)).not.toContain(sessionId);
    await expect(provider.close(sessionId)).resolves.toBeUndefined();
  });

  it("reset closes the previous lease's pages and contexts and leaves one blank tab", async () => {
    const sessionId = await launch();
    const client = await puppeteer.connect(env.BROWSER, sessionId);
    const page = await client.newPage();
    await page.setContent("<title>secret of the previous lease</title>");
    const context = await client.createBrowserContext();
    await (await context.newPage()).setContent("<title>in a private context</title>");
    client.disconnect();

    await provider.reset(sessionId);

    const next = await puppeteer.connect(env.BROWSER, sessionId);
    try {
      const pages = await next.pages();
      const titles = await Promise.all(pages.map((p) => p.title()));
      expect(titles.join("|")).not.toContain("secret");
      expect(pages.map((p) => p.url())).toEqual(["about:blank"]);
      expect(next.browserContexts()).toHaveLength(1);
    } finally {
      next.disconnect();
    }
  });

  it("ping succeeds on a live browser and fails once it is gone", async () => {
    const sessionId = await launch();
    await expect(provider.ping(sessionId)).resolves.toBeUndefined();
    await provider.close(sessionId);
    await expect(provider.ping(sessionId)).rejects.toThrow();
  });
});
