/**
 * GET /v1/pools/{pool}/leases/{id}/events: a lease's audit trail from the
 * pool's journal, through the real Worker with real Chromium.
 */
import { describe, expect, it } from "vitest";
import { call, DEV2_KEY, poolName } from "../support/http";

describe("a lease's events", () => {
  it("tells the lease's story in order, and only to its own tenant", async () => {
    const pool = poolName("events");
    expect((await call(`/v1/pools/${pool}`, { method: "PUT", body: { maxSessions: 1 } })).status).toBe(200);
    const lease = await call(`/v1/pools/${pool}/leases`, { method: "POST", body: { ttlSeconds: 60, labels: { job: "audit" } } });
    expect(lease.status).toBe(201);
    const path = `/v1/pools/${pool}/leases/${lease.body.id}`;
    expect((await call(`${path}/renew`, { method: "POST", body: { ttlSeconds: 120 } })).status).toBe(200);
    expect((await call(path, { method: "DELETE" })).status).toBe(200);

    const trail = await call(`${path}/events`);
    expect(trail.status).toBe(200);
    expect(trail.body.lease).toBe(lease.body.id);
    const events = trail.body.events as { at: string; event: string; detail?: Record<string, unknown> }[];
    expect(events.map((e) => e.event)).toEqual(["requested", "launch_reserved", "launched", "granted", "renewed", "released"]);
    expect(events.find((e) => e.event === "granted")?.detail).toMatchObject({ sessionId: lease.body.sessionId });
    expect(events.find((e) => e.event === "renewed")?.detail).toMatchObject({ ttlMs: 120_000 });
    const times = events.map((e) => Date.parse(e.at));
    expect(times).toEqual([...times].sort((a, b) => a - b));

    // Another tenant, same pool name and lease id: not found, as for every other lease route.
    const other = await call(`${path}/events`, { key: DEV2_KEY });
    expect(other.status).toBe(404);
    expect(other.body).toMatchObject({ code: "not_found" });
  });

  it("answers 404 for an unknown lease and 400 for a malformed id", async () => {
    const pool = poolName("events");
    expect((await call(`/v1/pools/${pool}`, { method: "PUT", body: {} })).status).toBe(200);
    expect((await call(`/v1/pools/${pool}/leases/${crypto.randomUUID()}/events`)).status).toBe(404);
    const bad = await call(`/v1/pools/${pool}/leases/not-a-uuid/events`);
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ code: "invalid_request", detail: expect.stringContaining("path.id") });
  });
});
