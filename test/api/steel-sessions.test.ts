/**
 * Steel's Sessions API on top of leases (src/api/steel.ts), through the real
 * Worker with real Chromium: create, retrieve, release and release all, in
 * Steel's shapes; fields the broker cannot honour are refused by name.
 * (The official steel-sdk against the running broker: test/e2e/steel.test.ts.)
 */
import { describe, expect, it } from "vitest";
import { call, DEV2_KEY, poolName } from "../support/http";

const steelKey = (key = "dev-key") => ({ key: null, headers: { "steel-api-key": key } });

describe("/v1/sessions", () => {
  it("creates a live session on a lease of the namespace's pool, retrieves it, and releases it", async () => {
    const namespace = poolName("steel");
    const created = await call("/v1/sessions", { method: "POST", body: { namespace, timeout: 60_000 }, ...steelKey() });
    expect(created.status, JSON.stringify(created.body)).toBe(200);
    const session = created.body;
    expect(session).toMatchObject({ status: "live", timeout: 60_000, namespace, headless: true });
    expect(session.websocketUrl).toMatch(new RegExp(`/v1/pools/${namespace}/leases/${session.id}/cdp\\?token=`));
    expect(session.sessionViewerUrl).toMatch(new RegExp(`/v1/pools/${namespace}/leases/${session.id}/viewer\\?token=`));
    // It is a lease like any other.
    expect((await call(`/v1/pools/${namespace}/leases/${session.id}`)).body.status).toBe("active");

    const read = await call(`/v1/sessions/${session.id}?namespace=${namespace}`, steelKey());
    expect(read.body).toMatchObject({ id: session.id, status: "live", websocketUrl: "" });
    // Another tenant does not see it.
    expect((await call(`/v1/sessions/${session.id}?namespace=${namespace}`, steelKey(DEV2_KEY))).status).toBe(404);

    const released = await call(`/v1/sessions/${session.id}/release?namespace=${namespace}`, { method: "POST", ...steelKey() });
    expect(released.body).toEqual({ success: true, message: `session ${session.id} released` });
    expect((await call(`/v1/sessions/${session.id}?namespace=${namespace}`, steelKey())).body.status).toBe("released");
  });

  it("takes a client-chosen sessionId once (409 session_exists the second time), and releases all of the key's sessions", async () => {
    const namespace = poolName("steel");
    const sessionId = crypto.randomUUID();
    const first = await call("/v1/sessions", { method: "POST", body: { namespace, sessionId }, ...steelKey() });
    expect(first.body.id).toBe(sessionId);
    const again = await call("/v1/sessions", { method: "POST", body: { namespace, sessionId }, ...steelKey() });
    expect(again.status).toBe(409);
    expect(again.body.code).toBe("session_exists");
    const all = await call(`/v1/sessions/release?namespace=${namespace}`, { method: "POST", ...steelKey() });
    expect(all.body).toEqual({ success: true, message: "released 1 session(s)" });
    expect((await call(`/v1/pools/${namespace}/leases/${sessionId}`)).body.status).toBe("released");
  });

  it("lists sessions newest first, page by page with Steel's cursorId, filtered by Steel's status", async () => {
    const namespace = poolName("steel");
    expect((await call(`/v1/pools/${namespace}`, { method: "PUT", body: { maxSessions: 3 } })).status).toBe(200);
    const ids: string[] = [];
    for (let i = 0; i < 3; i += 1) {
      const created = await call("/v1/sessions", { method: "POST", body: { namespace }, ...steelKey() });
      ids.push(created.body.id);
    }
    await call(`/v1/sessions/${ids[0]}/release?namespace=${namespace}`, { method: "POST", ...steelKey() });
    const first = await call(`/v1/sessions?namespace=${namespace}&limit=2`, steelKey());
    expect(first.body.sessions.map((s: { id: string }) => s.id)).toEqual([ids[2], ids[1]]);
    const second = await call(`/v1/sessions?namespace=${namespace}&limit=2&cursorId=${ids[1]}`, steelKey());
    expect(second.body.sessions.map((s: { id: string; status: string }) => [s.id, s.status])).toEqual([[ids[0], "released"]]);
    const end = await call(`/v1/sessions?namespace=${namespace}&limit=2&cursorId=${ids[0]}`, steelKey());
    expect(end.body.sessions).toEqual([]);
    const live = await call(`/v1/sessions?namespace=${namespace}&status=live`, steelKey());
    expect(live.body.sessions.map((s: { id: string }) => s.id)).toEqual([ids[2], ids[1]]);
    // Another tenant's listing of the same namespace is its own (empty).
    expect((await call(`/v1/sessions?namespace=${namespace}`, steelKey(DEV2_KEY))).body.sessions).toEqual([]);
    await call(`/v1/sessions/release?namespace=${namespace}`, { method: "POST", ...steelKey() });
  });

  it("refuses what it cannot honour with 400 naming the field, and creates nothing", async () => {
    const namespace = poolName("steel");
    for (const [field, value] of [
      ["useProxy", true],
      ["solveCaptcha", true],
      ["dimensions", { width: 1280, height: 720 }],
      ["userAgent", "bot/1.0"],
      ["sessionContext", { sessionStorage: { "https://a.example": { k: "v" } } }],
      ["region", "mars"],
      ["isSelenium", true],
      ["headless", false],
      ["noSuchField", 1],
    ] as const) {
      const reply = await call("/v1/sessions", { method: "POST", body: { namespace, [field]: value }, ...steelKey() });
      expect({ field, status: reply.status, code: reply.body.code }).toEqual({ field, status: 400, code: "invalid_request" });
      expect(reply.body.detail).toContain(field);
    }
    expect((await call(`/v1/pools/${namespace}`)).status).toBe(404);
  });
});
