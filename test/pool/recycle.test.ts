/**
 * Recycling: a browser that served maxSessionUses leases, or lived
 * maxSessionAgeSeconds, is closed instead of reused, and the warm target
 * (minIdle) launches its replacement. Leased browsers are never cut short.
 */
import { describe, expect, it } from "vitest";
import { faultPool, granted } from "../support/pool";


describe("recycling", () => {
  it("closes a browser after maxSessionUses leases and launches its replacement", async () => {
    const pool = await faultPool({ maxSessions: 1, minIdle: 1, maxSessionUses: 2 });
    await pool.effectsDone();
    const [first] = [...pool.provider.live.keys()];
    for (let use = 1; use <= 2; use += 1) {
      const lease = granted(await pool.acquire());
      expect(lease.sessionId).toBe(first);
      await pool.stub.release(lease.id);
      await pool.effectsDone();
    }
    // Its second release closed it instead of resetting it; the warm target launched a new one.
    expect(pool.provider.closed).toEqual([first]);
    expect(pool.provider.resets).toHaveLength(1);
    expect(await pool.counts()).toMatchObject({ idle: 1, closing: 0 });
    expect(granted(await pool.acquire()).sessionId).not.toBe(first);
    await pool.expectConsistent();
  });

  it("closes an idle browser once it is maxSessionAgeSeconds old, and replaces it", async () => {
    const pool = await faultPool({ maxSessions: 1, minIdle: 1, maxSessionAgeSeconds: 120, idleTimeoutSeconds: 300 });
    await pool.effectsDone();
    const [first] = [...pool.provider.live.keys()];
    await pool.advance(119_000);
    expect(pool.provider.closed).toEqual([]);
    await pool.advance(1_000);
    await pool.effectsDone();
    expect(pool.provider.closed).toEqual([first]);
    expect(await pool.counts()).toMatchObject({ idle: 1 });
    expect([...pool.provider.live.keys()]).not.toContain(first);
    await pool.expectConsistent();
  });

  it("never cuts a lease short: a browser past its age is closed at its release", async () => {
    const pool = await faultPool({ maxSessions: 1, maxSessionAgeSeconds: 60, connectWithinSeconds: 0 });
    const lease = granted(await pool.acquire({ ttlSeconds: 300 }));
    await pool.advance(120_000);
    expect(await pool.stub.getLease(lease.id)).toMatchObject({ ok: true, value: { status: "active" } });
    await pool.stub.release(lease.id);
    await pool.effectsDone();
    expect(pool.provider.closed).toEqual([lease.sessionId]);
    expect(pool.provider.resets).toEqual([]);
  });

  it("0 means no limit", async () => {
    const pool = await faultPool({ maxSessions: 1, maxSessionUses: 0, maxSessionAgeSeconds: 0 });
    const first = granted(await pool.acquire());
    await pool.stub.release(first.id);
    for (let use = 0; use < 5; use += 1) {
      await pool.effectsDone();
      const lease = granted(await pool.acquire());
      expect(lease.sessionId).toBe(first.sessionId);
      await pool.stub.release(lease.id);
    }
    expect(pool.provider.closed).toEqual([]);
  });
});
