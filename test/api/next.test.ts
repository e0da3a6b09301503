/**
 * POST /v1/pools/{pool}/leases/{id}/next: a job loop's release-and-acquire in
 * one request, through the Worker with real Chromium. The old lease is
 * released and the next granted (on a one-browser pool: the same browser,
 * reset); a bad body releases nothing; a retry with the same Idempotency-Key
 * answers the same next lease.
 */
import { describe, expect, it } from "vitest";
import { call, DEV2_KEY, newPool } from "../support/http";

describe("POST …/leases/{id}/next", () => {
  it("releases the lease and answers the next one, on the pool's one browser once it is reset", async () => {
    const pool = await newPool("next", { maxSessions: 1 });
    const first = await call(`/v1/pools/${pool}/leases`, { method: "POST", body: {} });
    expect(first.status).toBe(201);
    const next = await call(`/v1/pools/${pool}/leases/${first.body.id}/next`, { method: "POST", body: { waitSeconds: 30, labels: { job: "2" } } });
    expect(next.status, JSON.stringify(next.body)).toBe(201);
    expect(next.body).toMatchObject({ status: "active", labels: { job: "2" }, sessionId: first.body.sessionId });
    expect(next.body.id).not.toBe(first.body.id);
    expect(next.body.connectUrl).toContain(`/leases/${next.body.id}/cdp?token=`);
    expect(next.headers.get("location")).toBe(`/v1/pools/${pool}/leases/${next.body.id}`);
    expect((await call(`/v1/pools/${pool}/leases/${first.body.id}`)).body).toMatchObject({ status: "released", endReason: "released" });
    await call(`/v1/pools/${pool}/leases/${next.body.id}`, { method: "DELETE" });
  });

  it("refuses a bad body before releasing anything, and another tenant's lease is a 404", async () => {
    const pool = await newPool("next-bad", { maxSessions: 1 });
    const lease = await call(`/v1/pools/${pool}/leases`, { method: "POST", body: {} });
    const bad = await call(`/v1/pools/${pool}/leases/${lease.body.id}/next`, { method: "POST", body: { ttlSeconds: -1 } });
    expect(bad.status).toBe(400);
    expect(bad.body.detail).toContain("body.ttlSeconds");
    const foreign = await call(`/v1/pools/${pool}/leases/${lease.body.id}/next`, { method: "POST", body: {}, key: DEV2_KEY });
    expect(foreign.status).toBe(404);
    expect((await call(`/v1/pools/${pool}/leases/${lease.body.id}`)).body.status).toBe("active");
    await call(`/v1/pools/${pool}/leases/${lease.body.id}`, { method: "DELETE" });
  });

  it("a retry with the same Idempotency-Key answers the same next lease", async () => {
    const pool = await newPool("next-retry", { maxSessions: 2 });
    const lease = await call(`/v1/pools/${pool}/leases`, { method: "POST", body: {} });
    const ask = { method: "POST", body: { waitSeconds: 30 }, headers: { "idempotency-key": crypto.randomUUID() } } as const;
    const next = await call(`/v1/pools/${pool}/leases/${lease.body.id}/next`, ask);
    const again = await call(`/v1/pools/${pool}/leases/${lease.body.id}/next`, ask);
    expect(next.status).toBe(201);
    expect(again.status).toBe(201);
    expect(again.body.id).toBe(next.body.id);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    const active = await call(`/v1/pools/${pool}/leases?status=active`);
    expect(active.body.leases.map((l: { id: string }) => l.id)).toEqual([next.body.id]);
    await call(`/v1/pools/${pool}/leases/${next.body.id}`, { method: "DELETE" });
  });
});
