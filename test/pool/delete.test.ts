/**
 * Deleting a pool, driven over RPC with the fault-injecting provider so each
 * await inside the deletion can be held open: what other calls see and do
 * while it waits for its browsers to close.
 */
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { ABANDONED_SWEEP_DELAY_MS, type SessionRegistry } from "../../src/registry/object";
import { describe, expect, it } from "vitest";
import { faultPool, flush } from "../support/pool";

describe("a pool being deleted", () => {
  it("answers 404 to reads and 409 pool_busy to acquires while its browsers close; afterwards the name is a new pool", async () => {
    const pool = await faultPool({ maxSessions: 2, minIdle: 1 });
    await pool.settled();
    expect((await pool.counts()).idle).toBe(1);
    const provider = pool.provider;
    provider.manualIo = true;

    const deleting = pool.stub.deletePool(pool.tenant, pool.name);
    await flush(pool.stub);
    // The retire step ran: the idle browser's close is started and held open.
    expect(await pool.inside(() => provider.pendingIoCount)).toBe(1);
    const described = await pool.stub.describe();
    expect(described.ok ? "found" : described.failure.code).toBe("not_found");
    const refused = await pool.acquire();
    expect(refused.ok ? "granted" : [refused.failure.code, refused.failure.retryAfter]).toEqual(["pool_busy", 1]);
    const reconfigured = await pool.stub.configure(pool.tenant, pool.name, { maxSessions: 1 });
    expect(reconfigured.ok ? "configured" : reconfigured.failure.code).toBe("pool_busy");

    await pool.inside(() => provider.takeIo(0)!.succeed());
    const deleted = await deleting;
    expect(deleted.ok && deleted.value).toEqual({ pool: pool.name, deleted: true, closedSessions: 1 });
    const acquired = await pool.acquire();
    expect(acquired.ok).toBe(true);
    // A new pool: default config (the old one's minIdle is gone), one lease, nothing else.
    const view = await pool.stub.describe();
    expect(view.ok && view.value.config).toMatchObject({ maxSessions: 2, minIdle: 0 });
    expect(await pool.counts()).toMatchObject({ leased: 1, idle: 0, waiting: 0 });
    await pool.expectConsistent();
  });

  it("a close that fails still lets the deletion finish: the registry closes the abandoned browser at its next sweep", async () => {
    const pool = await faultPool({ maxSessions: 1, minIdle: 1 });
    await pool.settled();
    const [alive] = [...pool.provider.live.keys()];
    const registry = env.REGISTRY.get(env.REGISTRY.idFromName("registry"));
    await runInDurableObject(registry, (object: SessionRegistry) => {
      object.useProvider(pool.provider);
    });
    const registration = () =>
      runInDurableObject(registry, (_o, state) =>
        state.storage.sql.exec<{ abandoned_at: number | null }>(`SELECT abandoned_at FROM sessions WHERE session_id = ?`, alive!).toArray()[0],
      );
    expect(await registration()).toMatchObject({ abandoned_at: null });
    pool.provider.failCloses = 1;
    const deleted = await pool.stub.deletePool(pool.tenant, pool.name);
    expect(deleted.ok).toBe(true);
    // The browser still runs on the (fake) platform, and no pool claims it any more:
    // the registry holds it as abandoned (ours, owner gone) and sweeps soon.
    expect(pool.provider.live.has(alive!)).toBe(true);
    expect((await pool.stub.describe()).ok).toBe(false);
    expect((await registration())?.abandoned_at).not.toBeNull();
    const alarm = await runInDurableObject(registry, (_o, state) => state.storage.getAlarm());
    expect(alarm).not.toBeNull();
    expect(alarm!).toBeLessThanOrEqual(Date.now() + ABANDONED_SWEEP_DELAY_MS);
    await runDurableObjectAlarm(registry);
    expect(pool.provider.closed).toContain(alive);
    expect(await registration()).toBeUndefined();
  });
});
