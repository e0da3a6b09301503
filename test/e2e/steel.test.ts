/**
 * The official steel-sdk, unchanged, against the running broker: only
 * `baseURL` and the key differ from a Steel user's script. Puppeteer drives
 * the session through its `websocketUrl`; errors arrive as the SDK's classes.
 */
import puppeteer from "puppeteer-core";
import Steel from "steel-sdk";
import { describe, expect, it } from "vitest";
import { brokerUrl } from "./support";

describe("steel-sdk against the broker", () => {
  const client = () => new Steel({ baseURL: brokerUrl(), steelAPIKey: "dev-key", maxRetries: 0 });

  it("creates a session, drives it with Puppeteer through websocketUrl, retrieves and releases it", async () => {
    const steel = client();
    const session = await steel.sessions.create({ timeout: 60_000 });
    expect(session.status).toBe("live");
    const browser = await puppeteer.connect({ browserWSEndpoint: session.websocketUrl });
    try {
      const page = await browser.newPage();
      await page.setContent("<title>from steel-sdk</title><p>hello</p>");
      expect(await page.title()).toBe("from steel-sdk");
    } finally {
      await browser.disconnect();
    }
    expect((await steel.sessions.retrieve(session.id)).status).toBe("live");
    expect(await steel.sessions.release(session.id)).toEqual({ success: true, message: `session ${session.id} released` });
    expect((await steel.sessions.retrieve(session.id)).status).toBe("released");
  });

  it("lists sessions with the SDK's auto-pagination, which ends", async () => {
    const steel = client();
    const created = [await steel.sessions.create({}), await steel.sessions.create({})];
    const seen: string[] = [];
    for await (const session of steel.sessions.list({ limit: 1 })) {
      seen.push(session.id);
      if (seen.length > 200) break;
    }
    expect(seen.length).toBeLessThanOrEqual(200);
    expect(seen).toEqual(expect.arrayContaining(created.map((s) => s.id)));
    expect(new Set(seen).size).toBe(seen.length);
    for (const session of created) await steel.sessions.release(session.id);
  });

  it("releases every session of the key in a namespace with releaseAll", async () => {
    const steel = client();
    const namespace = `steel-all-${crypto.randomUUID().slice(0, 8)}`;
    const created = [await steel.sessions.create({ namespace }), await steel.sessions.create({ namespace })];
    expect(await steel.sessions.releaseAll({}, { query: { namespace } })).toEqual({ success: true, message: "released 2 session(s)" });
    for (const session of created) {
      expect((await steel.sessions.retrieve(session.id, { query: { namespace } })).status).toBe("released");
    }
  });

  it("reports refusals as the SDK's error classes", async () => {
    const steel = client();
    await expect(steel.sessions.create({ useProxy: true })).rejects.toBeInstanceOf(Steel.BadRequestError);
    await expect(steel.sessions.retrieve(crypto.randomUUID())).rejects.toBeInstanceOf(Steel.NotFoundError);
    await expect(new Steel({ baseURL: brokerUrl(), steelAPIKey: "not-a-key", maxRetries: 0 }).sessions.retrieve(crypto.randomUUID())).rejects.toBeInstanceOf(
      Steel.AuthenticationError,
    );
    const taken = await steel.sessions.create({ sessionId: crypto.randomUUID() });
    await expect(steel.sessions.create({ sessionId: taken.id })).rejects.toBeInstanceOf(Steel.ConflictError);
    await steel.sessions.release(taken.id);
  });
});
