/**
 * Steel's per-session reads (src/api/steel-live.ts) through the real Worker
 * with real Chromium: a session's events (its lease's journal, paged by
 * limit and pointer with Next-Cursor) and its live details (the browser's
 * pages read over CDP, and a fresh viewer URL). The steel-sdk's calls against
 * the running broker: test/e2e/steel-live.test.ts.
 */
import { SELF } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import { eventsAfter, pointerAfter } from "../../src/api/steel-live";
import { connect, openPage, viaSelf } from "../support/cdp";
import { call, DEV2_KEY, poolName, type Reply } from "../support/http";

const steelKey = (key = "dev-key") => ({ key: null, headers: { "steel-api-key": key } });

async function createSession(namespace: string): Promise<{ id: string; websocketUrl: string }> {
  const created = await call("/v1/sessions", { method: "POST", body: { namespace, timeout: 60_000 }, ...steelKey() });
  expect(created.status, JSON.stringify(created.body)).toBe(200);
  return created.body;
}

async function release(namespace: string, id: string): Promise<void> {
  expect((await call(`/v1/sessions/${id}/release?namespace=${namespace}`, { method: "POST", ...steelKey() })).status).toBe(200);
}

/** Deletes the test's pool once its released browser has been reset (until then it answers 409 pool_busy). */
async function deletePool(namespace: string): Promise<void> {
  await vi.waitFor(async () => expect((await call(`/v1/pools/${namespace}`, { method: "DELETE" })).status).toBe(200), { timeout: 20_000, interval: 250 });
}

describe("GET /v1/sessions/{id}/events", () => {
  it("answers the lease's journal oldest first, and pages it with limit and Next-Cursor, each event once", async () => {
    const namespace = poolName("steel-events");
    const session = await createSession(namespace);
    await release(namespace, session.id);

    const all = await call(`/v1/sessions/${session.id}/events?namespace=${namespace}`, steelKey());
    expect(all.status).toBe(200);
    expect(all.headers.get("next-cursor")).toBeNull();
    const names = (all.body as { event: string }[]).map((e) => e.event);
    // The lease's story: asked for, granted, released (with the launch in between for a new pool).
    expect(names[0]).toBe("requested");
    expect(names.indexOf("granted")).toBeGreaterThan(0);
    expect(names.indexOf("released")).toBe(names.length - 1);
    expect(names.indexOf("granted")).toBeLessThan(names.indexOf("released"));
    const times = (all.body as { at: string }[]).map((e) => Date.parse(e.at));
    expect(times).toEqual([...times].sort((a, b) => a - b));

    // Page by page, following Next-Cursor until a page has none.
    const pages: unknown[][] = [];
    let pointer: string | null = null;
    do {
      const page: Reply<unknown[]> = await call(`/v1/sessions/${session.id}/events?namespace=${namespace}&limit=2${pointer ? `&pointer=${encodeURIComponent(pointer)}` : ""}`, steelKey());
      expect(page.status).toBe(200);
      expect(page.body.length).toBeLessThanOrEqual(2);
      pages.push(page.body);
      pointer = page.headers.get("next-cursor");
    } while (pointer !== null && pages.length < 10);
    expect(pages.length).toBe(Math.ceil(names.length / 2));
    expect(pages.flat()).toEqual(all.body);
    // A limit that ends exactly at the last event says there is no more.
    expect((await call(`/v1/sessions/${session.id}/events?namespace=${namespace}&limit=${names.length}`, steelKey())).headers.get("next-cursor")).toBeNull();
    await deletePool(namespace);
  });

  it("continues after the right event when events share a millisecond, and after the journal dropped the lease's oldest", () => {
    const at = (ms: number) => new Date(ms).toISOString();
    const events = [1, 1, 2, 2, 3].map((ms, i) => ({ at: at(1_000 + ms), event: `e${i}` }));
    const names = (list: { event: string }[]) => list.map((e) => e.event);
    const first = pointerAfter(events, events[0]!);
    expect(names(eventsAfter(events, first))).toEqual(["e1", "e2", "e3", "e4"]);
    const third = pointerAfter(events, events[2]!);
    expect(names(eventsAfter(events, third))).toEqual(["e3", "e4"]);
    // The pool keeps only its newest journal rows: the first two went between two pages.
    expect(names(eventsAfter(events.slice(2), third))).toEqual(["e3", "e4"]);
  });

  it("refuses compressed events, a pointer it did not give and unknown parameters with 400 naming them", async () => {
    const namespace = poolName("steel-events");
    const session = await createSession(namespace);
    const path = `/v1/sessions/${session.id}/events?namespace=${namespace}`;
    for (const [query, field] of [
      ["compressed=true", "query.compressed"],
      ["pointer=abc", "query.pointer"],
      ["limit=0", "query.limit"],
      ["since=1", "since"],
    ] as const) {
      const reply = await call(`${path}&${query}`, steelKey());
      expect({ query, status: reply.status, code: reply.body.code }).toEqual({ query, status: 400, code: "invalid_request" });
      expect(reply.body.detail).toContain(field);
    }
    // compressed=false is what the broker does anyway.
    expect((await call(`${path}&compressed=false`, steelKey())).status).toBe(200);
    await release(namespace, session.id);
    await deletePool(namespace);
  });

  it("answers 404 for an unknown session and for another tenant's", async () => {
    const namespace = poolName("steel-events");
    const session = await createSession(namespace);
    expect((await call(`/v1/sessions/${crypto.randomUUID()}/events?namespace=${namespace}`, steelKey())).status).toBe(404);
    const theirs = await call(`/v1/sessions/${session.id}/events?namespace=${namespace}`, steelKey(DEV2_KEY));
    expect({ status: theirs.status, code: theirs.body.code }).toEqual({ status: 404, code: "not_found" });
    await release(namespace, session.id);
    await deletePool(namespace);
  });
});

describe("GET /v1/sessions/{id}/live-details", () => {
  it("lists the live browser's pages with their titles and URLs, and a viewer URL that opens", async () => {
    const namespace = poolName("steel-live");
    const session = await createSession(namespace);
    const cdp = await connect(session.websocketUrl);
    const html = "<title>Live details</title><p>hello</p>";
    const { targetId } = await openPage(cdp, html);

    const details = await call(`/v1/sessions/${session.id}/live-details?namespace=${namespace}`, steelKey());
    expect(details.status, JSON.stringify(details.body)).toBe(200);
    const { pages, sessionViewerUrl, sessionViewerFullscreenUrl, wsUrl } = details.body;
    expect(sessionViewerUrl).toMatch(new RegExp(`/v1/pools/${namespace}/leases/${session.id}/viewer\\?token=`));
    expect(sessionViewerFullscreenUrl).toBe(sessionViewerUrl);
    // The connect token was shown once, at creation.
    expect(wsUrl).toBe("");
    expect(pages).toContainEqual({
      id: targetId,
      url: `data:text/html,${encodeURIComponent(html)}`,
      title: "Live details",
      favicon: null,
      sessionViewerUrl,
      sessionViewerFullscreenUrl: sessionViewerUrl,
    });
    // Pages only: the CDP client's own about:blank is a page too, nothing else is listed.
    for (const page of pages) expect(page.url).toMatch(/^(data:|about:blank)/);

    const viewer = await SELF.fetch(viaSelf(sessionViewerUrl));
    expect(viewer.status).toBe(200);
    expect(viewer.headers.get("content-type")).toMatch(/^text\/html/);
    await viewer.text();

    cdp.socket.close();
    await release(namespace, session.id);
    await deletePool(namespace);
  });

  it("answers 409 lease_not_active once the session was released, and 404 for an unknown or another tenant's session", async () => {
    const namespace = poolName("steel-live");
    const session = await createSession(namespace);
    const live = await call(`/v1/sessions/${session.id}/live-details?namespace=${namespace}`, steelKey());
    expect(live.status).toBe(200);
    expect((await call(`/v1/sessions/${session.id}/live-details?namespace=${namespace}`, steelKey(DEV2_KEY))).status).toBe(404);
    expect((await call(`/v1/sessions/${crypto.randomUUID()}/live-details?namespace=${namespace}`, steelKey())).status).toBe(404);

    await release(namespace, session.id);
    const ended = await call(`/v1/sessions/${session.id}/live-details?namespace=${namespace}`, steelKey());
    expect({ status: ended.status, code: ended.body.code }).toEqual({ status: 409, code: "lease_not_active" });
    // The viewer URL it gave stopped with the session, as every viewer of a lease does.
    const viewer = await SELF.fetch(viaSelf(live.body.sessionViewerUrl));
    expect(viewer.status).toBe(409);
    await viewer.text();
    await deletePool(namespace);
  });
});
