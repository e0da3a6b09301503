/**
 * GET /v1/pools/{pool}/pressure (views.ts pressureView): how loaded a pool is,
 * for a client deciding whether to ask now. Through the Worker (SELF.fetch)
 * into pools served by the fault provider on a virtual clock; the answer must
 * agree with the pool's own counts (GET /v1/pools/{pool}).
 */
import { describe, expect, it } from "vitest";
import { ADMISSION_MIN_SAMPLES } from "../../src/pool/capacity";
import { call, poolName } from "../support/http";
import { faultPool, granted } from "../support/pool";

describe("GET /v1/pools/{pool}/pressure", () => {
  it("answers running, queued, max and available consistent with the pool's counts, and the breaker", async () => {
    const pool = await faultPool({ maxSessions: 3 });
    granted(await pool.acquire());
    const released = granted(await pool.acquire());
    expect((await pool.stub.release(released.id)).ok).toBe(true);
    await pool.effectsDone();

    const pressure = await call(`/v1/pools/${pool.name}/pressure`);
    const described = await call(`/v1/pools/${pool.name}`);
    expect(pressure.status).toBe(200);
    const { counts, capacity, config } = described.body;
    expect(counts).toMatchObject({ leased: 1, idle: 1, waiting: 0 });
    expect(pressure.body).toMatchObject({
      pool: pool.name,
      running: counts.launching + counts.idle + counts.leased + counts.resetting + counts.closing,
      leased: counts.leased,
      idle: counts.idle,
      queued: counts.waiting,
      max: config.maxSessions,
      // One idle session, and one free slot to launch into.
      available: capacity.available,
      breaker: { state: "closed", retryAfterSeconds: null, streak: 0 },
      draining: false,
    });
    expect(pressure.body.available).toBe(2);
    expect(pressure.body.account).toEqual(expect.objectContaining({ governor: expect.any(String) }));
  });

  it("expects a new caller to wait its place in the queue × the mean hold ÷ the sessions", async () => {
    const pool = await faultPool({ maxSessions: 1 });
    // Ten leases, each held 20 s.
    for (let i = 0; i < ADMISSION_MIN_SAMPLES; i += 1) {
      const lease = granted(await pool.acquire({ ttlSeconds: 60 }));
      await pool.advance(20_000);
      expect((await pool.stub.release(lease.id)).ok).toBe(true);
      await pool.effectsDone();
    }
    const held = granted(await pool.acquire({ ttlSeconds: 60 }));
    // Calls on one stub arrive in order: the counts are read after this caller queued.
    const waiting = pool.acquire({ waitSeconds: 60 });
    expect((await pool.counts()).waiting).toBe(1);

    const pressure = await call(`/v1/pools/${pool.name}/pressure`);
    // A new caller would be second in the queue: 2 × 20 s ÷ 1 session.
    expect(pressure.body).toMatchObject({ running: 1, queued: 1, available: 0, expectedWaitSeconds: 40 });

    expect((await pool.stub.release(held.id)).ok).toBe(true);
    granted(await waiting);
  });

  it("answers 404 not_found for a pool that does not exist", async () => {
    const reply = await call(`/v1/pools/${poolName("absent")}/pressure`);
    expect(reply.status).toBe(404);
    expect(reply.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(reply.body.code).toBe("not_found");
  });
});
