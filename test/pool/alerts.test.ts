/**
 * Alerts raised by the pool object: a lasting exhaustion, a launch-failure
 * streak, capacity reclaimed by reconciliation, an invariant violation; each
 * deduplicated and rate-limited. Read from the pool's journal (`alert` rows);
 * webhook delivery to a real receiver is tested end to end in
 * test/e2e/alerts.test.ts.
 */
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { PoolObject } from "../../src/pool/object";
import { faultPool, type TestPool } from "../support/pool";

async function withAlertSettings(pool: TestPool, vars: Record<string, string>): Promise<void> {
  await runInDurableObject(pool.stub, (object: PoolObject) => {
    const holder = object as unknown as { env: Env };
    holder.env = { ...holder.env, ...vars } as Env;
  });
}

async function alerts(pool: TestPool): Promise<{ kind: string; summary: string }[]> {
  return runInDurableObject(pool.stub, (_object, state) =>
    state.storage.sql
      .exec<{ detail: string }>(`SELECT detail FROM journal WHERE event = 'alert' ORDER BY seq`)
      .toArray()
      .map((r) => JSON.parse(r.detail) as { kind: string; summary: string }),
  );
}

describe("alerts", () => {
  it("a pool exhausted for ALERT_EXHAUSTED_SECONDS raises pool_exhausted once per episode; the alarm is due for it", async () => {
    const pool = await faultPool({ maxSessions: 1 });
    await withAlertSettings(pool, { ALERT_EXHAUSTED_SECONDS: "5", ALERT_MIN_INTERVAL_SECONDS: "0" });
    const held = await pool.acquire({ ttlSeconds: 300 });
    expect(held.ok).toBe(true);
    const refusedAt = pool.clock.now;
    expect(await pool.acquire({ waitSeconds: 0 })).toMatchObject({ ok: false, failure: { code: "pool_exhausted" } });
    const alarm = await runInDurableObject(pool.stub, (_o, state) => state.storage.getAlarm());
    expect(alarm).toBeLessThanOrEqual(refusedAt + 5_000);

    await pool.advance(4_000);
    expect(await alerts(pool)).toEqual([]);
    await pool.advance(1_000);
    expect((await alerts(pool)).map((a) => a.kind)).toEqual(["pool_exhausted"]);
    await pool.advance(10_000);
    expect(await alerts(pool)).toHaveLength(1);

    // The episode ends when a session is free again; a new one alerts again.
    if (held.ok) await pool.stub.release(held.value.lease.id);
    await pool.effectsDone();
    const again = await pool.acquire({ ttlSeconds: 300 });
    expect(again.ok).toBe(true);
    await pool.acquire({ waitSeconds: 0 });
    await pool.advance(5_000);
    expect((await alerts(pool)).map((a) => a.kind)).toEqual(["pool_exhausted", "pool_exhausted"]);
  });

  it("a pool that recovers before the window raises nothing", async () => {
    const pool = await faultPool({ maxSessions: 1 });
    await withAlertSettings(pool, { ALERT_EXHAUSTED_SECONDS: "5" });
    const held = await pool.acquire({ ttlSeconds: 300 });
    await pool.acquire({ waitSeconds: 0 });
    if (held.ok) await pool.stub.release(held.value.lease.id);
    await pool.effectsDone();
    await pool.advance(6_000);
    expect(await alerts(pool)).toEqual([]);
  });

  it("rate-limits each kind to one per ALERT_MIN_INTERVAL_SECONDS", async () => {
    const pool = await faultPool({ maxSessions: 1 });
    await withAlertSettings(pool, { ALERT_EXHAUSTED_SECONDS: "1", ALERT_MIN_INTERVAL_SECONDS: "600" });
    for (let episode = 0; episode < 3; episode += 1) {
      const held = await pool.acquire({ ttlSeconds: 300 });
      await pool.acquire({ waitSeconds: 0 });
      await pool.advance(1_000);
      if (held.ok) await pool.stub.release(held.value.lease.id);
      await pool.effectsDone();
    }
    expect(await alerts(pool)).toHaveLength(1);
  });

  it("ALERT_LAUNCH_FAILURE_STREAK failed launches in a row raise launch_failure_streak once; a success resets the streak", async () => {
    const pool = await faultPool({ maxSessions: 1 });
    await withAlertSettings(pool, { ALERT_LAUNCH_FAILURE_STREAK: "3", ALERT_MIN_INTERVAL_SECONDS: "0" });
    pool.provider.plan = [{ kind: "fail" }, { kind: "fail" }, { kind: "fail" }, { kind: "fail" }];
    for (let i = 0; i < 4; i += 1) expect(await pool.acquire()).toMatchObject({ ok: false, failure: { code: "browser_unavailable" } });
    expect((await alerts(pool)).map((a) => a.kind)).toEqual(["launch_failure_streak"]);
    expect((await pool.acquire()).ok).toBe(true);
    pool.provider.plan = [{ kind: "fail" }, { kind: "fail" }, { kind: "fail" }];
    await pool.stub.releaseAll();
    await pool.effectsDone();
    // No idle session left, so every acquire launches (and fails).
    await pool.stub.purgeIdle();
    await pool.effectsDone();
    for (let i = 0; i < 3; i += 1) expect(await pool.acquire()).toMatchObject({ ok: false, failure: { code: "browser_unavailable" } });
    expect((await alerts(pool)).map((a) => a.kind)).toEqual(["launch_failure_streak", "launch_failure_streak"]);
  });

  it("reconciliation that frees a vanished browser's capacity raises capacity_reclaimed", async () => {
    const pool = await faultPool({ maxSessions: 1 });
    const held = await pool.acquire({ ttlSeconds: 300 });
    if (!held.ok) throw new Error(held.failure.detail);
    pool.provider.crash(held.value.lease.sessionId!);
    await pool.advance(60_000);
    const raised = await alerts(pool);
    expect(raised.map((a) => a.kind)).toContain("capacity_reclaimed");
  });

  it("an invariant violation raises invariant_violation at the next alarm", async () => {
    const pool = await faultPool({ maxSessions: 1 });
    const held = await pool.acquire({ ttlSeconds: 300 });
    if (!held.ok) throw new Error(held.failure.detail);
    await runInDurableObject(pool.stub, (_o, state) => state.storage.sql.exec(`UPDATE leases SET status = 'released' WHERE id = ?`, held.value.lease.id));
    await pool.advance(1_000);
    expect((await alerts(pool)).map((a) => a.kind)).toContain("invariant_violation");
  });
});
