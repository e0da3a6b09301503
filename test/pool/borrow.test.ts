/**
 * Validate on borrow, with the fault-injecting provider: an idle session is
 * checked before it is granted unless it proved alive within ALIVE_BYPASS_MS;
 * a dead one is closed and the same acquire is served by the next idle
 * session or a launch. (Real Chromium killed behind the pool's back:
 * test/api/borrow.test.ts.)
 */
import { describe, expect, it } from "vitest";
import { ALIVE_BYPASS_MS, CHECK_TIMEOUT_MS } from "../../src/pool/machine";
import { faultPool, flush, granted } from "../support/pool";


describe("validate on borrow", () => {
  it("grants a session that proved alive a moment ago without checking it", async () => {
    const pool = await faultPool({ maxSessions: 1 });
    const first = granted(await pool.acquire());
    await pool.stub.release(first.id);
    await pool.effectsDone();
    pool.clock.now += ALIVE_BYPASS_MS;
    expect(granted(await pool.acquire()).sessionId).toBe(first.sessionId);
    expect(pool.provider.pings).toEqual([]);
  });

  it("checks a staler idle session before granting it", async () => {
    const pool = await faultPool({ maxSessions: 1 });
    const first = granted(await pool.acquire());
    await pool.stub.release(first.id);
    await pool.effectsDone();
    pool.clock.now += ALIVE_BYPASS_MS + 1;
    expect(granted(await pool.acquire()).sessionId).toBe(first.sessionId);
    expect(pool.provider.pings).toEqual([first.sessionId]);
    await pool.expectConsistent();
  });

  it("closes dead idle sessions and serves the caller with a launch within the same acquire (waitSeconds 0)", async () => {
    const pool = await faultPool({ maxSessions: 3, minIdle: 2 });
    await pool.effectsDone();
    const dead = [...pool.provider.live.keys()];
    expect(dead).toHaveLength(2);
    for (const sessionId of dead) pool.provider.crash(sessionId);
    pool.clock.now += ALIVE_BYPASS_MS + 1;

    const first = granted(await pool.acquire());
    expect(dead).not.toContain(first.sessionId);
    expect(pool.provider.live.has(first.sessionId!)).toBe(true);
    await pool.effectsDone();
    const second = granted(await pool.acquire());
    expect([...dead, first.sessionId]).not.toContain(second.sessionId);
    expect(pool.provider.live.has(second.sessionId!)).toBe(true);
    // Both dead browsers were checked, found dead, and their slots given back.
    expect([...pool.provider.closed].sort()).toEqual([...dead].sort());
    await pool.expectConsistent();
  });

  it("hands the next live idle session to a caller whose first pick was dead", async () => {
    const pool = await faultPool({ maxSessions: 2, minIdle: 2 });
    await pool.effectsDone();
    const [older, newer] = [...pool.provider.live.keys()];
    pool.provider.crash(older!);
    pool.clock.now += ALIVE_BYPASS_MS + 1;
    const lease = granted(await pool.acquire());
    expect(lease.sessionId).toBe(newer);
    expect(pool.provider.pings).toContain(newer);
    await pool.expectConsistent();
  });

  it("a check that does not answer within CHECK_TIMEOUT_MS counts as dead", async () => {
    const pool = await faultPool({ maxSessions: 1, minIdle: 1 });
    await pool.effectsDone();
    const [stale] = [...pool.provider.live.keys()];
    pool.clock.now += ALIVE_BYPASS_MS + 1;
    pool.provider.manualIo = true;
    const waiting = pool.acquire({ waitSeconds: 0 });
    await flush(pool.stub);
    expect(await pool.counts()).toMatchObject({ resetting: 1, waiting: 1 });
    // The ping hangs. At the check's deadline the session is closed and a launch serves the caller.
    await pool.advance(CHECK_TIMEOUT_MS);
    pool.provider.manualIo = false;
    for (let io = pool.provider.takeIo(0); io; io = pool.provider.takeIo(0)) {
      if (io.kind === "close") await pool.inside(() => io.succeed());
      else await pool.inside(() => io.fail("too late"));
    }
    const lease = granted(await waiting);
    expect(lease.sessionId).not.toBe(stale);
    await pool.expectConsistent();
  });
});
