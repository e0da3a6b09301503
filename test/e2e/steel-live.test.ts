/**
 * The official steel-sdk's per-session reads against the running broker:
 * `sessions.events` (the lease's journal, paged through Next-Cursor) and
 * `sessions.liveDetails` (the pages Puppeteer opened, and a viewer that opens).
 */
import puppeteer from "puppeteer-core";
import Steel from "steel-sdk";
import { describe, expect, it } from "vitest";
import { brokerUrl } from "./support";

describe("steel-sdk: a session's events and live details", () => {
  const client = () => new Steel({ baseURL: brokerUrl(), steelAPIKey: "dev-key", maxRetries: 0 });

  it("lists the pages Puppeteer opened, with a viewer URL that opens", async () => {
    const steel = client();
    const session = await steel.sessions.create({ timeout: 60_000 });
    const browser = await puppeteer.connect({ browserWSEndpoint: session.websocketUrl });
    try {
      const page = await browser.newPage();
      await page.setContent("<title>seen live</title><p>hello</p>");
      const details = await steel.sessions.liveDetails(session.id);
      expect(details.pages.map((p) => p.title)).toContain("seen live");
      expect(details.wsUrl).toBe("");
      const viewer = await fetch(details.sessionViewerUrl);
      expect(viewer.status).toBe(200);
      expect(await viewer.text()).toContain("<html");
    } finally {
      await browser.disconnect();
    }
    await steel.sessions.release(session.id);
    await expect(steel.sessions.liveDetails(session.id)).rejects.toBeInstanceOf(Steel.ConflictError);
  });

  it("reads a released session's events, page by page through Next-Cursor", async () => {
    const steel = client();
    const session = await steel.sessions.create({ timeout: 60_000 });
    await steel.sessions.release(session.id);
    const all = (await steel.sessions.events(session.id)) as { event: string }[];
    // A warm browser is granted at once (no "requested" row); one launched for it journals more.
    const names = all.map((e) => e.event);
    expect(names).toEqual(expect.arrayContaining(["granted", "released"]));
    expect(names.indexOf("granted")).toBeLessThan(names.lastIndexOf("released"));

    const paged: unknown[] = [];
    let pointer: string | undefined;
    for (let pages = 0; pages < 20; pages += 1) {
      const { data, response } = await steel.sessions.events(session.id, { limit: 1, ...(pointer ? { pointer } : {}) }).withResponse();
      paged.push(...data);
      pointer = response.headers.get("next-cursor") ?? undefined;
      if (!pointer) break;
    }
    expect(paged).toEqual(all);
    await expect(steel.sessions.events(session.id, { compressed: true })).rejects.toBeInstanceOf(Steel.BadRequestError);
  });
});
