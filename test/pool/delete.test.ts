/**
 * Deleting a pool, driven over RPC with the fault-injecting provider so each
 * await inside the deletion can be held open: what other calls see and do
 * while it waits for its browsers to close.
 */
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { ABANDONED_SWEEP_DELAY_MS, type SessionRegistry } from "../../src/registry/object";
import { describe, expect, it, vi } from "vitest";
import type { TenantObject } from "../../src/tenant/object";
import { faultPool, flush } from "../support/pool";

describe("a pool being deleted", () => {
  it("answers 404 to reads and 409 pool_busy to acquires while its browsers close; afterwards the name is a new pool", async () => {
    const pool = await faultPool({ maxSessions: 2, minIdle: 1 });
    await pool.effectsDone();
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
    await pool.effectsDone();
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

  it("a resize queued behind a deletion never re-creates the pool", async () => {
    const pool = await faultPool({ maxSessions: 1 });
    const tenant = env.TENANT.get(env.TENANT.idFromName(pool.tenant));
    // A growth holds the pool's turn (its claim's answer is held), and a deletion and a resize queue behind it.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    // A flag, not a promise: a promise resolved inside the tenant object would run the test on in that object's context.
    const seen = { claim: false };
    await runInDurableObject(tenant, (object: TenantObject) => {
      object.afterClaim = async (name) => {
        if (name !== pool.name) return;
        seen.claim = true;
        await held;
      };
    });
    try {
      const growth = pool.stub.configure(pool.tenant, pool.name, { maxSessions: 2 });
      await vi.waitFor(() => expect(seen.claim).toBe(true), { timeout: 2_000, interval: 5 });
      const deletion = pool.stub.deletePool(pool.tenant, pool.name);
      const resize = pool.stub.reconfigure({ maxSessions: 1 });
      await flush(pool.stub);
      release();
      expect((await growth).ok).toBe(true);
      expect((await deletion).ok).toBe(true);
      expect(await resize).toMatchObject({ ok: false, failure: { status: 404, code: "not_found" } });
      expect((await pool.stub.describe()).ok).toBe(false);
      expect(await tenant.hasPool(pool.name)).toBe(false);
    } finally {
      await runInDurableObject(tenant, (object: TenantObject) => {
        object.afterClaim = undefined;
      });
    }
  });

  it("work that finishes after the deletion writes nothing and sets no alarm", async () => {
    const pool = await faultPool({ maxSessions: 1 });
    pool.provider.listPlan = ["manual"];
    const reconciling = pool.stub.reconcileNow();
    await vi.waitFor(() => expect(pool.provider.pendingListCount).toBe(1), { timeout: 2_000, interval: 5 });
    expect((await pool.stub.deletePool(pool.tenant, pool.name)).ok).toBe(true);
    // The platform's list answers only now, for a pool that is gone.
    expect(await pool.inside(() => pool.provider.answerList())).toBe(true);
    expect(await reconciling).toBeUndefined();
    await pool.effectsDone();
    const left = await runInDurableObject(pool.stub, async (_object, state) => ({
      tables: state.storage.sql.exec(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' ESCAPE '\\'`).toArray(),
      alarm: await state.storage.getAlarm(),
    }));
    expect(left).toEqual({ tables: [], alarm: null });
  });
});
