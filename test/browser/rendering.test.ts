/**
 * The real provider against real Chromium, through the BROWSER binding that
 * wrangler/Miniflare serve locally: every operation the pool relies on.
 */
import puppeteer, { type Browser } from "@cloudflare/puppeteer";
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { realBrowsers } from "../support/browsers";
import { withCdp } from "../../src/browser/cdp";
import type { SessionRegistry } from "../../src/registry/object";
import { ORPHAN_GRACE_MS } from "../../src/registry/sweep";
import { call, poolName } from "../support/http";

const { provider, launch } = realBrowsers();

type Targets = { targetInfos: { targetId: string; type: string; url: string }[] };
const pages = (sessionId: string) =>
  withCdp(env.BROWSER, sessionId, async (send) => (await send<Targets>("Target.getTargets")).targetInfos.filter((t) => t.type === "page"));
/** The browser's page targets, by id: a full reset replaces the blank tab, an untouched browser keeps it. */
const pageTargets = async (sessionId: string) => (await pages(sessionId)).map((t) => t.targetId);
const pageUrls = async (sessionId: string) => (await pages(sessionId)).map((t) => t.url);
/** An expression's value in the browser's only tab. */
const evaluateInBlank = (sessionId: string, expression: string) =>
  withCdp(env.BROWSER, sessionId, async (send) => {
    const [tab] = (await send<Targets>("Target.getTargets")).targetInfos.filter((t) => t.type === "page");
    const { sessionId: attached } = await send<{ sessionId: string }>("Target.attachToTarget", { targetId: tab!.targetId, flatten: true });
    return (await send<{ result: { value: unknown } }>("Runtime.evaluate", { expression, returnByValue: true }, attached)).result.value;
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

  it("a reset after a lease that closed its own pages keeps the blank tab the last reset left, and opens no other", async () => {
    const sessionId = await launch();
    await provider.reset(sessionId);
    const [blank] = await pageTargets(sessionId);
    const client = await puppeteer.connect(env.BROWSER, sessionId);
    const page = await client.newPage();
    await page.setContent("<title>the lease's own page</title>");
    await page.close();
    client.disconnect();

    await provider.reset(sessionId);

    expect(await pageTargets(sessionId)).toEqual([blank]);
  });

  // Each way a lease can leave something behind in a browser it did not close; the touch is undone by a full reset.
  const touches: [string, (client: Browser) => Promise<void>, (sessionId: string) => Promise<void>][] = [
    [
      "navigated the blank tab",
      async (client) => void (await (await client.pages())[0]!.goto("data:text/html,<title>secret</title>")),
      async (sessionId) => expect(await pageUrls(sessionId)).toEqual(["about:blank"]),
    ],
    [
      "wrote into the blank tab",
      async (client) => (await client.pages())[0]!.setContent("<title>secret</title>"),
      async (sessionId) => expect(await evaluateInBlank(sessionId, "document.title")).toBe(""),
    ],
    [
      "set a global in the blank tab",
      async (client) => void (await (await client.pages())[0]!.evaluate("window.secret = 'kept'")),
      async (sessionId) => expect(await evaluateInBlank(sessionId, "typeof window.secret")).toBe("undefined"),
    ],
    [
      "set a cookie",
      async (client) => (await client.pages())[0]!.setCookie({ name: "secret", value: "kept", url: "https://example.com/" }),
      async (sessionId) => expect(await withCdp(env.BROWSER, sessionId, (send) => send<{ cookies: unknown[] }>("Storage.getCookies", {}))).toEqual({ cookies: [] }),
    ],
    [
      "left a page open",
      async (client) => void (await client.newPage()),
      async (sessionId) => expect(await pageUrls(sessionId)).toEqual(["about:blank"]),
    ],
    [
      "opened a private context",
      async (client) => void (await client.createBrowserContext()),
      async (sessionId) =>
        expect((await withCdp(env.BROWSER, sessionId, (send) => send<{ browserContextIds: string[] }>("Target.getBrowserContexts"))).browserContextIds).toEqual([]),
    ],
  ];
  it.each(touches)("a lease that %s gets the full reset: a new blank tab, and nothing of it left", async (_, touch, isGone) => {
    const sessionId = await launch();
    await provider.reset(sessionId);
    const [blank] = await pageTargets(sessionId);
    const client = await puppeteer.connect(env.BROWSER, sessionId);
    await touch(client);
    client.disconnect();

    await provider.reset(sessionId);

    const after = await pageTargets(sessionId);
    expect(after).toHaveLength(1);
    expect(after).not.toContain(blank);
    await isGone(sessionId);
  });

  // The local binding's emulator once lost a browser launched while a list was read (the list found the
  // session before its DevTools socket was open, and forgot it): the browser then vanished from every list
  // and refused every connection. scripts/setup.mjs fixes that in the installed Miniflare; this guards it.
  it("browsers launched while the sessions are listed are listed and answer a connection", async () => {
    let launching = true;
    let lists = 0;
    const listing = (async () => {
      for (; launching; lists += 1) await puppeteer.sessions(env.BROWSER);
    })();
    const launched = await Promise.all([launch(), launch(), launch()]).finally(() => (launching = false));
    await listing;
    expect(lists).toBeGreaterThan(0);
    const listed = (await puppeteer.sessions(env.BROWSER)).map((s) => s.sessionId);
    for (const sessionId of launched) {
      expect(listed).toContain(sessionId);
      await expect(provider.ping(sessionId)).resolves.toBeUndefined();
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
  it("the registry closes a live Chromium a pool reported as a lost launch, and leaves a pool's browser and an unreported one alone", async () => {
    // A pool's browser, launched through the API (so registered)…
    const name = poolName("orphan");
    const acquired = await call(`/v1/pools/${name}/leases`, { method: "POST", body: { waitSeconds: 20 } });
    expect(acquired.status).toBe(201);
    await env.POOL.get(env.POOL.idFromName(`dev/${name}`)).effectsDone();
    // …a browser whose launch a pool lost (it never learned the session id) and reported…
    const lost = await launch();
    const lostStart = (await provider.list()).find((s) => s.sessionId === lost)!.startTime;
    // …and one launched behind every pool's back and never reported, as another Worker's would be.
    const unreported = await launch();
    const unreportedStart = (await provider.list()).find((s) => s.sessionId === unreported)!.startTime;

    const registry = env.REGISTRY.get(env.REGISTRY.idFromName("registry"));
    // The window starts where the lost browser did, so no other test file's browser is nearer its start.
    await registry.lostLaunches(`dev/${name}`, [{ startedAt: lostStart, endedAt: lostStart + 2_000 }]);
    const report = await runInDurableObject(registry, async (object: SessionRegistry) => {
      // No grace, and the clock just after the unreported browser started: both are past the grace.
      // Other test files' browsers started later are young and left alone; earlier ones are foreign.
      object.graceMs = 0;
      object.clock = () => unreportedStart + 1;
      try {
        return await object.sweep();
      } finally {
        object.graceMs = ORPHAN_GRACE_MS;
        object.clock = () => Date.now();
      }
    });
    expect(report).toMatchObject({ policy: "launches", orphansClosed: 1, listFailed: false, untrusted: false });
    expect(report.foreign).toBeGreaterThanOrEqual(1);
    const live = (await provider.list()).map((s) => s.sessionId);
    expect(live).not.toContain(lost);
    expect(live).toContain(acquired.body.sessionId);
    expect(live).toContain(unreported);
    // afterEach closes the unreported browser (and the lost one, again: harmless).
    await call(`/v1/pools/${name}/leases/${acquired.body.id}`, { method: "DELETE" });
    await call(`/v1/pools/${name}`, { method: "PUT", body: { reuse: false } });
  });
});
