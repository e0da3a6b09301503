/**
 * The pool's circuit breaker (capacity.ts; config breakerThreshold, default
 * 5): that many launches failing in a row open it for a cooldown (30 s,
 * doubled on each reopening). While open, an acquire that needs a launch is
 * answered 503 browser_unavailable at once and nothing is launched, while
 * idle sessions are still granted. After the cooldown it is half-open: one
 * probe launch is let through; its success closes the breaker, its failure
 * opens it again. The platform's 429s are its pacing, not failures: they never
 * open it. Against a real pool object with the fault provider and a virtual
 * clock; the pool's view and invariants are checked after each step.
 *
 * (The account's governor has a breaker of its own, opening after 10 failed
 * launches; no test here fails that many.)
 */
import { describe, expect, it } from "vitest";
import { BREAKER_COOLDOWN_MS } from "../../src/pool/capacity";
import { faultPool, granted, type TestPool } from "../support/pool";

async function breaker(pool: TestPool) {
  const described = await pool.stub.describe();
  if (!described.ok) throw new Error(described.failure.detail);
  return described.value.breaker;
}

/** An acquire whose launch fails: the caller is told 502. */
async function failedLaunch(pool: TestPool): Promise<void> {
  const result = await pool.acquire({ waitSeconds: 0 });
  expect(result.ok || result.failure).toMatchObject({ status: 502, code: "browser_unavailable" });
}

/** Five launches fail in a row: the breaker opens. */
async function openBreaker(pool: TestPool): Promise<void> {
  pool.provider.defaultPlan = { kind: "fail" };
  for (let i = 0; i < 5; i += 1) await failedLaunch(pool);
  expect(await breaker(pool)).toMatchObject({ state: "open" });
}

/** Opens the breaker and waits out its cooldown: the next launch is its probe, which waits for the test. */
async function halfOpen(pool: TestPool): Promise<void> {
  await openBreaker(pool);
  await pool.advance(BREAKER_COOLDOWN_MS);
  expect(await breaker(pool)).toMatchObject({ state: "half_open" });
  pool.provider.defaultPlan = { kind: "manual" };
}

describe("the pool's circuit breaker", () => {
  it("opens after breakerThreshold launches fail in a row", async () => {
    const pool = await faultPool({ maxSessions: 2 });
    pool.provider.defaultPlan = { kind: "fail" };
    for (let i = 0; i < 4; i += 1) await failedLaunch(pool);
    expect(await breaker(pool)).toEqual({ state: "closed", retryAfterSeconds: null, streak: 4 });
    await pool.expectConsistent();

    await failedLaunch(pool);
    expect(await breaker(pool)).toEqual({ state: "open", retryAfterSeconds: BREAKER_COOLDOWN_MS / 1000, streak: 5 });
    await pool.expectConsistent();
  });

  it("answers an acquire that needs a launch 503 at once while open, and launches nothing", async () => {
    const pool = await faultPool({ maxSessions: 2 });
    await openBreaker(pool);
    const launches = pool.provider.launches;

    // Even a caller willing to wait is answered at once.
    const result = await pool.acquire({ waitSeconds: 30 });
    expect(result.ok || result.failure).toMatchObject({ status: 503, code: "browser_unavailable", retryAfter: BREAKER_COOLDOWN_MS / 1000 });
    expect(pool.provider.launches).toBe(launches);
    expect(await pool.counts()).toMatchObject({ launching: 0, waiting: 0 });
    await pool.expectConsistent();
  });

  it("still grants an idle session while open", async () => {
    const pool = await faultPool({ maxSessions: 2 });
    const held = granted(await pool.acquire());
    await openBreaker(pool);
    expect((await pool.stub.release(held.id)).ok).toBe(true);
    await pool.effectsDone();
    const launches = pool.provider.launches;

    const lease = granted(await pool.acquire({ waitSeconds: 30 }));
    expect(lease.sessionId).toBe(held.sessionId);
    expect(pool.provider.launches).toBe(launches);
    expect(await breaker(pool)).toMatchObject({ state: "open" });
    await pool.expectConsistent();
  });

  it("lets exactly one probe launch through once the cooldown has passed", async () => {
    const pool = await faultPool({ maxSessions: 3 });
    await halfOpen(pool);
    const launches = pool.provider.launches;

    const probing = pool.acquire({ waitSeconds: 30 });
    const probe = await pool.nextLaunch();
    // A second caller that needs a launch while the probe is under way is answered at once.
    const second = await pool.acquire({ waitSeconds: 30 });
    expect(second.ok || second.failure).toMatchObject({ status: 503, code: "browser_unavailable" });
    expect(pool.provider.launches).toBe(launches + 1);
    expect(await pool.counts()).toMatchObject({ launching: 1, waiting: 1 });
    await pool.expectConsistent();

    await pool.inside(() => void probe.succeed());
    granted(await probing);
  });

  it("closes when the probe launch succeeds", async () => {
    const pool = await faultPool({ maxSessions: 3 });
    await halfOpen(pool);
    const probing = pool.acquire({ waitSeconds: 30 });
    const probe = await pool.nextLaunch();

    await pool.inside(() => void probe.succeed());
    granted(await probing);
    expect(await breaker(pool)).toEqual({ state: "closed", retryAfterSeconds: null, streak: 0 });
    await pool.expectConsistent();

    // Launches go again, more than one at a time.
    pool.provider.defaultPlan = { kind: "ok" };
    granted(await pool.acquire());
    granted(await pool.acquire());
    await pool.expectConsistent();
  });

  it("opens again for twice the cooldown when the probe launch fails", async () => {
    const pool = await faultPool({ maxSessions: 3 });
    await halfOpen(pool);
    const probing = pool.acquire({ waitSeconds: 30 });
    const probe = await pool.nextLaunch();

    await pool.inside(() => probe.fail());
    const result = await probing;
    expect(result.ok || result.failure).toMatchObject({ status: 502, code: "browser_unavailable" });
    expect(await breaker(pool)).toMatchObject({ state: "open", retryAfterSeconds: (2 * BREAKER_COOLDOWN_MS) / 1000 });
    await pool.expectConsistent();

    // Still open after the first cooldown's length.
    await pool.advance(BREAKER_COOLDOWN_MS);
    expect(await breaker(pool)).toMatchObject({ state: "open" });
    await pool.advance(BREAKER_COOLDOWN_MS);
    expect(await breaker(pool)).toMatchObject({ state: "half_open" });
    await pool.expectConsistent();
  });

  it("never opens for the platform's 429s", async () => {
    const pool = await faultPool({ maxSessions: 2 });
    pool.provider.defaultPlan = { kind: "limit", retryAfterSeconds: 1 };
    for (let i = 0; i < 6; i += 1) {
      const result = await pool.acquire({ waitSeconds: 0 });
      expect(result.ok || result.failure).toMatchObject({ status: 503, code: "browser_unavailable" });
      // Past the pause the platform asked for.
      await pool.advance(1_000);
    }
    expect(pool.provider.launches).toBe(6);
    expect(await breaker(pool)).toEqual({ state: "closed", retryAfterSeconds: null, streak: 0 });
    await pool.expectConsistent();

    pool.provider.defaultPlan = { kind: "ok" };
    granted(await pool.acquire());
  });

  it("never opens with breakerThreshold 0", async () => {
    const pool = await faultPool({ maxSessions: 2, breakerThreshold: 0 });
    pool.provider.defaultPlan = { kind: "fail" };
    for (let i = 0; i < 7; i += 1) await failedLaunch(pool);
    expect(await breaker(pool)).toEqual({ state: "closed", retryAfterSeconds: null, streak: 7 });
    await pool.expectConsistent();

    pool.provider.defaultPlan = { kind: "ok" };
    granted(await pool.acquire());
    expect(pool.provider.launches).toBe(8);
    await pool.expectConsistent();
  });
});
