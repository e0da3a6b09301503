/**
 * Observations are confirmed before they destroy: the platform's session list
 * lags and omits, and one such observation must never fail a lease or free a
 * slot whose browser still runs (the freed slot would be launched into, and
 * the pool would run more browsers than maxSessions).
 */
import { describe, expect, it } from "vitest";
import { faultPool, granted } from "../support/pool";

/** Another Worker's browser on the same account: the list is not empty, so it is trusted (and judged). */
function someoneElse(pool: { provider: { spawnForeign(): string } }): void {
  pool.provider.spawnForeign();
}


describe("a list that omits or lags", () => {
  it("omits a leased session once: the lease stays active and the pool never runs more than maxSessions", async () => {
    const pool = await faultPool({ maxSessions: 1, connectWithinSeconds: 0 });
    const lease = granted(await pool.acquire());
    someoneElse(pool);
    pool.provider.listPlan = [`omit:${lease.sessionId}`];
    pool.clock.now += 1;
    const report = await pool.stub.reconcileNow();
    expect(report).toMatchObject({ vanished: 0, suspect: 1 });
    // The probe found it running: no longer suspect, still leased, its slot still taken.
    expect(pool.provider.probes).toEqual([lease.sessionId]);
    expect(await pool.stub.getLease(lease.id)).toMatchObject({ ok: true, value: { status: "active" } });
    expect(await pool.acquire()).toMatchObject({ ok: false, failure: { code: "pool_exhausted" } });
    expect(pool.provider.launches).toBe(1);
    expect(pool.provider.live.has(lease.sessionId!)).toBe(true);
    await pool.expectConsistent();
  });

  it("answers an empty list while it tracks sessions by probing them, and ends nothing", async () => {
    const pool = await faultPool({ maxSessions: 2, connectWithinSeconds: 0 });
    const a = granted(await pool.acquire());
    const b = granted(await pool.acquire());
    pool.provider.listPlan = ["empty"];
    pool.clock.now += 1;
    expect(await pool.stub.reconcileNow()).toMatchObject({ untrusted: true, vanished: 0 });
    expect([...pool.provider.probes].sort()).toEqual([a.sessionId, b.sessionId].sort());
    for (const lease of [a, b]) expect(await pool.stub.getLease(lease.id)).toMatchObject({ ok: true, value: { status: "active" } });
    await pool.expectConsistent();
  });

  it("a session really gone is freed once a probe confirms it, within the same reconciliation", async () => {
    const pool = await faultPool({ maxSessions: 1, connectWithinSeconds: 0 });
    const lease = granted(await pool.acquire());
    someoneElse(pool);
    pool.provider.crash(lease.sessionId!);
    pool.clock.now += 1;
    expect(await pool.stub.reconcileNow()).toMatchObject({ vanished: 1, suspect: 1 });
    expect(await pool.stub.getLease(lease.id)).toMatchObject({ ok: true, value: { status: "failed", endReason: "browser_gone" } });
    expect(granted(await pool.acquire()).sessionId).not.toBe(lease.sessionId);
    await pool.expectConsistent();
  });

  it("a probe that cannot tell leaves the session suspect; a second list that misses it confirms", async () => {
    const pool = await faultPool({ maxSessions: 1, connectWithinSeconds: 0 });
    const lease = granted(await pool.acquire());
    someoneElse(pool);
    pool.provider.crash(lease.sessionId!);
    pool.provider.probesFail = true;
    pool.clock.now += 1;
    expect(await pool.stub.reconcileNow()).toMatchObject({ vanished: 0, suspect: 1 });
    expect(await pool.stub.getLease(lease.id)).toMatchObject({ ok: true, value: { status: "active" } });
    expect(await pool.counts()).toMatchObject({ leased: 1 });
    pool.clock.now += 60_000;
    expect(await pool.stub.reconcileNow()).toMatchObject({ vanished: 1 });
    expect(await pool.stub.getLease(lease.id)).toMatchObject({ ok: true, value: { status: "failed", endReason: "browser_gone" } });
    await pool.expectConsistent();
  });
});
