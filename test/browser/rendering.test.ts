/**
 * The real provider against real Chromium, through the BROWSER binding that
 * wrangler/Miniflare serve locally: every operation the pool relies on.
 */
import puppeteer from "@cloudflare/puppeteer";
import { env, runInDurableObject } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import { RenderingProvider } from "../../src/browser/rendering";
import { KEEP_ALIVE_MS } from "../../src/pool/config";
import type { SessionRegistry } from "../../src/registry/object";
import { call, poolName } from "../support/http";

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

describe("orphaned real browsers", () => {
  it("the registry closes a live Chromium no pool launched, and leaves a pool's browser alone", async () => {
    // A pool's browser, launched through the API (so registered)…
    const name = poolName("orphan");
    const acquired = await call(`/v1/pools/${name}/leases`, { method: "POST", body: { waitSeconds: 20 } });
    expect(acquired.status).toBe(201);
    // …and a browser started behind every pool's back, as a crashed launch leaves one.
    const orphan = await provider.launch({ keepAliveMs: KEEP_ALIVE_MS });
    opened.push(orphan);
    const orphanStart = (await provider.list()).find((s) => s.sessionId === orphan)!.startTime;

    const registry = env.REGISTRY.get(env.REGISTRY.idFromName("registry"));
    const report = await runInDurableObject(registry, async (object: SessionRegistry) => {
      // Judge only browsers started up to the orphan's start, with no grace: other test
      // files' browsers started later are left alone.
      object.graceMs = 0;
      object.clock = () => orphanStart;
      try {
        return await object.sweep();
      } finally {
        object.clock = () => Date.now();
      }
    });
    expect(report.orphansClosed).toBeGreaterThanOrEqual(1);
    const live = (await provider.list()).map((s) => s.sessionId);
    expect(live).not.toContain(orphan);
    expect(live).toContain(acquired.body.sessionId);
    await call(`/v1/pools/${name}/leases/${acquired.body.id}`, { method: "DELETE" });
    await call(`/v1/pools/${name}`, { method: "PUT", body: { reuse: false } });
  });
});
