/**
 * No deadline waits on I/O, and the alarm heals itself (issue: the incident
 * must not come back through the platform's own failures). Each test injects
 * one failure the platform really has: a session list that never answers, an
 * object that never answers, a setAlarm that fails, an alarm deleted behind the
 * pool's back, an effect whose code throws.
 */
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { PoolObject } from "../../src/pool/object";
import { RECONCILE_INTERVAL_MS } from "../../src/pool/machine";
import { RECONCILE_RETRY_MS } from "../../src/pool/shell";
import { injectFaults } from "../api/stub-faults";
import { faultPool, flush, granted, type TestPool } from "../support/pool";

let restore: (() => void) | undefined;
afterEach(() => {
  restore?.();
  restore = undefined;
});


/** Shortens the pool object's deadlines on its own I/O (real time), so a test need not wait 10 s for one. */
function shortenTimeouts(pool: TestPool, timeouts: Partial<PoolObject["timeouts"]>): Promise<void> {
  return runInDurableObject(pool.stub, (object: PoolObject) => void Object.assign(object.timeouts, timeouts));
}

const storedAlarm = (pool: TestPool) => runInDurableObject(pool.stub, (_o, state) => state.storage.getAlarm());
const reconciling = (pool: TestPool) =>
  runInDurableObject(
    pool.stub,
    (object: PoolObject) => (object as unknown as { shell: { reconciling?: Promise<void> } }).shell.reconciling !== undefined,
  );

describe("no deadline waits on I/O", () => {
  it("a list() that never answers: a 1 s lease expires and a 1 s waiter is answered on time, and the next reconciliation is still tried", async () => {
    const pool = await faultPool({ maxSessions: 1, connectWithinSeconds: 0 });
    await shortenTimeouts(pool, { list: 300 });
    // Just before the first reconciliation is due: a lease and a waiter that end with it.
    pool.clock.now += RECONCILE_INTERVAL_MS - 1_000;
    const lease = granted(await pool.acquire({ ttlSeconds: 1 }));
    const waiter = pool.acquire({ waitSeconds: 1 });
    await flush(pool.stub);
    pool.provider.listPlan = ["hang"];

    pool.clock.now += 1_000;
    await runDurableObjectAlarm(pool.stub);
    // The alarm has returned while the list is still hanging: reconciliation runs beside it.
    expect(await reconciling(pool)).toBe(true);
    expect(await pool.stub.getLease(lease.id)).toMatchObject({ ok: true, value: { status: "expired" } });
    const answer = await waiter;
    expect(answer.ok ? "granted" : answer.failure.code).toMatch(/granted|pool_exhausted/);
    await pool.expectConsistent();

    // The list's deadline passes; the next reconciliation is due RECONCILE_RETRY_MS later, and runs.
    await pool.stub.reconciled();
    expect(await storedAlarm(pool)).toBeLessThanOrEqual(pool.clock.now + RECONCILE_RETRY_MS);
    await pool.advance(RECONCILE_RETRY_MS);
    const described = await pool.stub.describe();
    expect(described.ok && described.value.lastReconciledAt).toBe(new Date(pool.clock.now).toISOString());
    expect(pool.provider.listPlan).toEqual([]);
  });

  it("a registry that never answers: leases are granted and released, and a deletion answers (503, nothing deleted) by its deadline", async () => {
    const pool = await faultPool({ maxSessions: 1, connectWithinSeconds: 0 });
    await shortenTimeouts(pool, { rpc: 200 });
    const never = () => new Promise<never>(() => {});
    const track = { kind: "registry" as const, method: "track", times: 100, answer: never };
    const faults = injectFaults(track, { kind: "registry", method: "untrackPool", times: 1, answer: never });
    restore = faults.restore;
    const lease = granted(await pool.acquire());
    expect(faults.calls(track)).toBeGreaterThan(0);
    await pool.stub.release(lease.id);
    await pool.effectsDone();
    expect(await pool.counts()).toMatchObject({ idle: 1, leased: 0 });

    const first = await pool.stub.deletePool(pool.tenant, pool.name);
    expect(first).toMatchObject({ ok: false, failure: { status: 503, code: "unavailable" } });
    // Nothing was deleted; with the registry back, the deletion goes through.
    faults.restore();
    expect((await pool.stub.describe()).ok).toBe(true);
    expect(await pool.stub.deletePool(pool.tenant, pool.name)).toMatchObject({ ok: true, value: { deleted: true } });
  });

  it("a tenant object that never answers: creating a pool answers 503 quota_unavailable by its deadline, and leaves nothing behind", async () => {
    const pool = await faultPool({ maxSessions: 1 });
    await pool.stub.deletePool(pool.tenant, pool.name);
    await shortenTimeouts(pool, { rpc: 200 });
    const faults = injectFaults({ kind: "tenant", method: "claimPool", times: 1, answer: () => new Promise<never>(() => {}) });
    restore = faults.restore;
    expect(await pool.acquire()).toMatchObject({ ok: false, failure: { status: 503, code: "quota_unavailable" } });
    expect((await pool.stub.describe()).ok).toBe(false);
  });
});

describe("the alarm heals itself", () => {
  it("a setAlarm that rejects once is retried until the alarm is set", async () => {
    const pool = await faultPool({ maxSessions: 1 });
    let failures = 0;
    await runInDurableObject(pool.stub, (_o, state) => {
      const storage = state.storage as { setAlarm: DurableObjectStorage["setAlarm"] };
      const real = storage.setAlarm.bind(state.storage);
      storage.setAlarm = (time, options) => {
        if (failures === 0) {
          failures += 1;
          return Promise.reject(new Error("injected: storage refused the alarm"));
        }
        return real(time, options);
      };
      return state.storage.deleteAlarm();
    });
    const lease = granted(await pool.acquire({ ttlSeconds: 30 }));
    expect(failures).toBe(1);
    // The retry is the pool's own (a timer); nothing else is asked of it meanwhile.
    await vi.waitFor(async () => expect(await storedAlarm(pool)).toBe(Date.parse(lease.expiresAt!)), { timeout: 3_000, interval: 20 });
  });

  it("an alarm deleted behind the pool's back is restored by the next transition", async () => {
    const pool = await faultPool({ maxSessions: 2 });
    const lease = granted(await pool.acquire({ ttlSeconds: 30 }));
    expect(await storedAlarm(pool)).toBe(Date.parse(lease.expiresAt!));
    await runInDurableObject(pool.stub, (_o, state) => state.storage.deleteAlarm());
    expect(await storedAlarm(pool)).toBeNull();
    // A renewal moves the deadline later: the old code would write nothing (the alarm "was" earlier).
    const renewed = await pool.stub.renew(lease.id, 40);
    expect(renewed.ok).toBe(true);
    await flush(pool.stub);
    expect(await storedAlarm(pool)).toBe(Date.parse(renewed.ok ? renewed.value.expiresAt! : ""));
  });

  it("an alarm whose step throws still re-arms before it fails", async () => {
    const pool = await faultPool({ maxSessions: 1, connectWithinSeconds: 0 });
    const lease = granted(await pool.acquire({ ttlSeconds: 120 }));
    await runInDurableObject(pool.stub, (object: PoolObject) => {
      const telemetry = (object as unknown as { telemetry: { watchHealth: () => void } }).telemetry;
      telemetry.watchHealth = () => {
        throw new Error("injected: a step of the alarm throws");
      };
    });
    pool.clock.now += 1_000;
    await runInDurableObject(pool.stub, (_o, state) => state.storage.deleteAlarm());
    await expect(runInDurableObject(pool.stub, (object: PoolObject) => object.alarm())).rejects.toThrow(/injected/);
    expect(await storedAlarm(pool)).toBe(Math.min(Date.parse(lease.expiresAt!), pool.clock.now - 1_000 + RECONCILE_INTERVAL_MS));
  });

  it("one effect that throws never skips the others: the other session is reset, the waiter answered, the alarm armed", async () => {
    const pool = await faultPool({ maxSessions: 2, connectWithinSeconds: 0 });
    const a = granted(await pool.acquire());
    const b = granted(await pool.acquire());
    const waiter = pool.acquire({ waitSeconds: 10 });
    await flush(pool.stub);
    // Release-all asks for two resets in one transition; the first one's code throws before it starts.
    pool.provider.throwNext = ["reset"];
    await runInDurableObject(pool.stub, (_o, state) => state.storage.deleteAlarm());
    expect(await pool.stub.releaseAll()).toMatchObject({ ok: true, value: { released: 2 } });
    await pool.effectsDone();
    const served = granted(await waiter);
    expect([a.sessionId, b.sessionId]).toContain(served.sessionId);
    // The browser whose reset threw is closed (a failed reset), never handed out dirty.
    expect(pool.provider.resets).toHaveLength(1);
    expect(pool.provider.closed).toHaveLength(1);
    expect(pool.provider.closed[0]).not.toBe(served.sessionId);
    expect(await storedAlarm(pool)).not.toBeNull();
    await pool.expectConsistent();
  });

  it("a launch whose code throws before it starts fails like a failed launch: the caller is told, the slot is free", async () => {
    const pool = await faultPool({ maxSessions: 1 });
    pool.provider.throwNext = ["launch"];
    expect(await pool.acquire()).toMatchObject({ ok: false, failure: { status: 502, code: "browser_unavailable" } });
    expect(await pool.counts()).toMatchObject({ launching: 0 });
    expect(granted(await pool.acquire()).status).toBe("active");
    await pool.expectConsistent();
  });
});
