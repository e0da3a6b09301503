/**
 * The Worker mints a lease id per HTTP request and may call `acquire` again with
 * it when the first call's answer was lost (a broken call, an object reset):
 * the repeated call must answer with that request's lease, never a second one.
 */
import { describe, expect, it } from "vitest";
import { faultPool, flush } from "../support/pool";

describe("an acquire repeated with its lease id", () => {
  it("returns the lease the first call created, and creates no other", async () => {
    const pool = await faultPool({ maxSessions: 2 });
    const leaseId = crypto.randomUUID();
    const first = await pool.acquire({ leaseId });
    const again = await pool.acquire({ leaseId });
    expect(first).toMatchObject({ ok: true, value: { lease: { id: leaseId, status: "active" } } });
    expect(again).toMatchObject({ ok: true, value: { lease: { id: leaseId, status: "active", sessionId: first.ok ? first.value.lease.sessionId : "" } } });
    const listed = await pool.stub.listLeases({ limit: 10 });
    expect(listed.ok && listed.value.leases.map((l) => l.id)).toEqual([leaseId]);
    expect(await pool.counts()).toMatchObject({ leased: 1, launching: 0 });
    await pool.expectConsistent();
  });

  it("joins the wait of a first call still waiting, and both are answered with the grant", async () => {
    const pool = await faultPool({ maxSessions: 1 });
    pool.provider.defaultPlan = { kind: "manual" };
    const leaseId = crypto.randomUUID();
    const first = pool.acquire({ leaseId, waitSeconds: 10 });
    const launch = await pool.nextLaunch();
    const again = pool.acquire({ leaseId, waitSeconds: 10 });
    await flush(pool.stub);
    expect(pool.provider.launches).toBe(1);
    const sessionId = await pool.inside(() => launch.succeed());
    for (const answer of [await first, await again]) {
      expect(answer).toMatchObject({ ok: true, value: { lease: { id: leaseId, status: "active", sessionId } } });
    }
    await pool.expectConsistent();
  });

  it("tells a repeat of a request whose lease failed meanwhile to retry (503), without a new lease", async () => {
    const pool = await faultPool({ maxSessions: 1 });
    pool.provider.plan = [{ kind: "fail" }];
    const leaseId = crypto.randomUUID();
    expect(await pool.acquire({ leaseId })).toMatchObject({ ok: false, failure: { status: 502 } });
    expect(await pool.acquire({ leaseId })).toMatchObject({ ok: false, failure: { status: 503, code: "browser_unavailable", retryAfter: 1 } });
    expect(pool.provider.launches).toBe(1);
    await pool.expectConsistent();
  });
});
