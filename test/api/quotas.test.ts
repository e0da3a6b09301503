/**
 * Tenant quotas through the real Worker: how many pools a tenant may have and
 * how many sessions its pools together may hold (the sum of their
 * maxSessions). A refused change leaves nothing behind; concurrent changes
 * never let the tenant's recorded usage drift from its pools' real sizes.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { PoolObject } from "../../src/pool/object";
import type { TenantObject } from "../../src/tenant/object";
import { call, poolName } from "../support/http";
import { ADMIN, newTenant } from "../support/tenants";

const tenantView = async (tenant: string) => (await call(`/v1/admin/tenants/${tenant}`, { key: ADMIN })).body;
const put = (key: string, pool: string, body: Record<string, unknown>) => call(`/v1/pools/${pool}`, { method: "PUT", body, key });

/** What the tenant object records must equal what the pools really are. */
async function expectUsageMatchesPools(tenant: string, key: string) {
  const listed = await call(`/v1/pools`, { key });
  const sizes = await Promise.all(
    listed.body.pools.map(async (p: { pool: string }) => (await call(`/v1/pools/${p.pool}`, { key })).body.config.maxSessions as number),
  );
  const view = await tenantView(tenant);
  expect(view.usage).toEqual({ pools: sizes.length, sessions: sizes.reduce((a, b) => a + b, 0) });
}

describe("tenant quotas", () => {
  it("refuse a pool that would take the tenant over its session quota with 403 quota_exceeded, creating nothing", async () => {
    const { tenant, key } = await newTenant("q-sessions", { maxSessions: 3 });
    const a = poolName("qa");
    const b = poolName("qb");
    expect((await put(key, a, { maxSessions: 2 })).status).toBe(200);
    const refused = await put(key, b, { maxSessions: 2 });
    expect(refused.status).toBe(403);
    expect(refused.headers.get("content-type")).toBe("application/problem+json");
    expect(refused.body.code).toBe("quota_exceeded");
    expect(refused.body.detail).toContain("at most 1");
    expect((await call(`/v1/pools/${b}`, { key })).status).toBe(404);
    expect((await put(key, b, { maxSessions: 1 })).status).toBe(200);
    expect((await tenantView(tenant)).usage).toEqual({ pools: 2, sessions: 3 });
  });

  it("refuse growing a pool past the quota, and let a shrink make room for another pool", async () => {
    const { tenant, key } = await newTenant("q-grow", { maxSessions: 4 });
    const a = poolName("qa");
    const b = poolName("qb");
    expect((await put(key, a, { maxSessions: 3 })).status).toBe(200);
    expect((await put(key, b, { maxSessions: 1 })).status).toBe(200);
    const grow = await put(key, b, { maxSessions: 2 });
    expect(grow.status).toBe(403);
    expect((await call(`/v1/pools/${b}`, { key })).body.config.maxSessions).toBe(1);
    expect((await put(key, a, { maxSessions: 1 })).status).toBe(200);
    expect((await tenantView(tenant)).usage.sessions).toBe(2);
    expect((await put(key, b, { maxSessions: 3 })).status).toBe(200);
    await expectUsageMatchesPools(tenant, key);
  });

  it("refuse a pool beyond maxPools, whether created by PUT or by a first acquire", async () => {
    const { tenant, key } = await newTenant("q-pools", { maxPools: 1 });
    expect((await put(key, poolName("qa"), { maxSessions: 1 })).status).toBe(200);
    const byPut = await put(key, poolName("qb"), {});
    expect(byPut.status).toBe(403);
    expect(byPut.body.detail).toContain("at most 1 pools");
    const fresh = poolName("qc");
    const byAcquire = await call(`/v1/pools/${fresh}/leases`, { method: "POST", body: {}, key });
    expect(byAcquire.status).toBe(403);
    expect(byAcquire.body.code).toBe("quota_exceeded");
    expect((await call(`/v1/pools/${fresh}`, { key })).status).toBe(404);
    expect((await call(`/v1/pools`, { key })).body.pools).toHaveLength(1);
    expect((await tenantView(tenant)).usage.pools).toBe(1);
  });

  it("admit exactly as many pools as the quota allows when many are created at once", async () => {
    const { tenant, key } = await newTenant("q-race", { maxSessions: 4 });
    const names = Array.from({ length: 10 }, () => poolName("qr"));
    const replies = await Promise.all(names.map((name) => put(key, name, { maxSessions: 1 })));
    const created = names.filter((_, i) => replies[i]!.status === 200);
    expect(created).toHaveLength(4);
    expect(replies.filter((r) => r.status === 403)).toHaveLength(6);
    for (const [i, name] of names.entries()) {
      expect((await call(`/v1/pools/${name}`, { key })).status).toBe(replies[i]!.status === 200 ? 200 : 404);
    }
    await expectUsageMatchesPools(tenant, key);
  });

  it("records a pool's last size when resizes of one pool race each other", async () => {
    const { tenant, key } = await newTenant("q-resize", { maxSessions: 10 });
    const pool = poolName("qs");
    expect((await put(key, pool, { maxSessions: 1 })).status).toBe(200);
    const sizes = [5, 2, 8, 1, 3, 7, 4, 6];
    const replies = await Promise.all(sizes.map((maxSessions) => put(key, pool, { maxSessions })));
    expect(replies.map((r) => r.status)).toEqual(sizes.map(() => 200));
    await expectUsageMatchesPools(tenant, key);
  });

  it("records the size of the change applied last even when a claim's answer is held up", async () => {
    const { tenant, key } = await newTenant("q-held", { maxSessions: 10 });
    const pool = poolName("qh");
    expect((await put(key, pool, { maxSessions: 1 })).status).toBe(200);
    // The tenant records a claim for 5, then holds its answer until released; a
    // resize to 2 sent meanwhile must not be applied before the one to 5 is.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let recordedFive!: () => void;
    const fiveRecorded = new Promise<void>((resolve) => (recordedFive = resolve));
    let sawTwo!: () => void;
    const twoArrived = new Promise<void>((resolve) => (sawTwo = resolve));
    const tenantStub = env.TENANT.get(env.TENANT.idFromName(tenant));
    await runInDurableObject(tenantStub, (object: TenantObject) => {
      object.afterClaim = async (_pool, size) => {
        if (size === 5) {
          recordedFive();
          await held;
        }
        if (size === 2) sawTwo();
      };
    });
    const toFive = put(key, pool, { maxSessions: 5 });
    await fiveRecorded;
    const toTwo = put(key, pool, { maxSessions: 2 });
    // The resize to 2 must wait for the one to 5 (its claim never arrives while 5 is held);
    // if it does arrive, let it finish first, which is the interleaving that would lose the order.
    const overtaken = await Promise.race([twoArrived.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 1000))]);
    if (overtaken) await toTwo;
    release();
    expect((await toFive).status).toBe(200);
    expect((await toTwo).status).toBe(200);
    expect((await call(`/v1/pools/${pool}`, { key })).body.config.maxSessions).toBe(2);
    await expectUsageMatchesPools(tenant, key);
  });

  it("a late report of a pool's old size cannot undo a growth being claimed", async () => {
    const { tenant, key } = await newTenant("q-report", { maxSessions: 10 });
    const pool = poolName("qp");
    expect((await put(key, pool, { maxSessions: 2 })).status).toBe(200);
    const poolStub = env.POOL.get(env.POOL.idFromName(`${tenant}/${pool}`));
    // The pool owes the tenant a report of its size (as after a failed report).
    await runInDurableObject(poolStub, async (object: PoolObject, state) => {
      (object as unknown as { db: { setMeta(k: string, v: string): void } }).db.setMeta("tenant_claimed", "none");
    });
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const tenantStub = env.TENANT.get(env.TENANT.idFromName(tenant));
    await runInDurableObject(tenantStub, (object: TenantObject) => {
      object.afterClaim = async (_pool, size) => {
        if (size === 5) await held;
      };
    });
    const grow = put(key, pool, { maxSessions: 5 });
    // The growth is recorded at the tenant (its answer held back). Watched from here, through
    // the API: promises effectsDone inside another object carry that object's context.
    for (let i = 0; i < 500 && (await tenantView(tenant)).usage.sessions !== 5; i++) await scheduler.wait(10);
    // The alarm's retry of the owed report runs while the growth's claim is held up.
    // Let the pool's own alarm fire, and wait until it has run.
    // (It has run when the alarm is no longer the one set here: it re-arms itself for the report's retry.)
    const due = Date.now();
    await runInDurableObject(poolStub, (_o: PoolObject, state) => state.storage.setAlarm(due));
    const alarmAt = () => runInDurableObject(poolStub, (_o: PoolObject, state) => state.storage.getAlarm());
    for (let i = 0; i < 500 && (await alarmAt()) === due; i++) await scheduler.wait(10);
    expect(await alarmAt()).not.toBe(due);
    // Released from inside the tenant object, so its answer continues in its own context.
    await runInDurableObject(tenantStub, () => release());
    expect((await grow).status).toBe(200);
    await poolStub.effectsDone();
    await expectUsageMatchesPools(tenant, key);
    expect((await tenantView(tenant)).usage.sessions).toBe(5);
  });

  it("a claim left by a creation that never completed is freed by deleting that pool name (404)", async () => {
    const { tenant, key } = await newTenant("q-phantom", { maxPools: 1 });
    const ghost = poolName("ghost");
    // As if the tenant granted a creation whose pool object then never recorded the pool.
    const granted = await env.TENANT.get(env.TENANT.idFromName(tenant)).claimPool(tenant, ghost, 2);
    expect(granted.ok).toBe(true);
    expect((await tenantView(tenant)).usage).toEqual({ pools: 1, sessions: 2 });
    expect((await put(key, poolName("qn"), {})).status).toBe(403);
    const deleted = await call(`/v1/pools/${ghost}`, { method: "DELETE", key });
    expect(deleted.status).toBe(404);
    expect((await tenantView(tenant)).usage).toEqual({ pools: 0, sessions: 0 });
    expect((await put(key, poolName("qn"), {})).status).toBe(200);
  });

  it("apply to operators' resizes too", async () => {
    const { tenant, key } = await newTenant("q-admin", { maxSessions: 2 });
    const pool = poolName("qa");
    expect((await put(key, pool, { maxSessions: 2 })).status).toBe(200);
    const refused = await call(`/v1/admin/pools/${tenant}/${pool}`, { method: "PUT", body: { maxSessions: 3 }, key: ADMIN });
    expect(refused.status).toBe(403);
    expect((await call(`/v1/admin/tenants/${tenant}`, { method: "PUT", body: { maxSessions: 3 }, key: ADMIN })).status).toBe(200);
    expect((await call(`/v1/admin/pools/${tenant}/${pool}`, { method: "PUT", body: { maxSessions: 3 }, key: ADMIN })).status).toBe(200);
    await expectUsageMatchesPools(tenant, key);
  });

  it("are the deployment's defaults until set, and return to them when set to null", async () => {
    const { tenant } = await newTenant("q-defaults");
    const before = await tenantView(tenant);
    const allDefaults = { maxPools: true, maxSessions: true, weight: true, recordingRetentionDays: true, profileRetentionDays: true };
    expect(before.defaults).toEqual(allDefaults);
    expect(before.quota).toEqual({
      maxPools: Number(env.TENANT_MAX_POOLS),
      maxSessions: Number(env.TENANT_MAX_SESSIONS),
      weight: 1,
      recordingRetentionDays: 7,
      profileRetentionDays: 30,
    });
    const set = await call(`/v1/admin/tenants/${tenant}`, { method: "PUT", body: { maxPools: 7 }, key: ADMIN });
    expect(set.body).toMatchObject({ quota: { maxPools: 7 }, defaults: { ...allDefaults, maxPools: false } });
    const reset = await call(`/v1/admin/tenants/${tenant}`, { method: "PUT", body: { maxPools: null }, key: ADMIN });
    expect(reset.body.quota).toEqual(before.quota);
    expect(reset.body.defaults).toEqual(allDefaults);
  });

  it("keep profiles profileRetentionDays (1 to 365, default 30), which the tenant reads too", async () => {
    const { tenant, key } = await newTenant("q-profiles");
    const set = await call(`/v1/admin/tenants/${tenant}`, { method: "PUT", body: { profileRetentionDays: 90 }, key: ADMIN });
    expect(set.status).toBe(200);
    expect(set.body.quota.profileRetentionDays).toBe(90);
    expect(set.body.defaults.profileRetentionDays).toBe(false);
    expect((await call(`/v1/tenant`, { key })).body.quota.profileRetentionDays).toBe(90);
    for (const days of [0, 366, 1.5]) {
      const refused = await call(`/v1/admin/tenants/${tenant}`, { method: "PUT", body: { profileRetentionDays: days }, key: ADMIN });
      expect({ days, status: refused.status, detail: refused.body.detail }).toMatchObject({ days, status: 400, detail: expect.stringContaining("body.profileRetentionDays") });
    }
    const reset = await call(`/v1/admin/tenants/${tenant}`, { method: "PUT", body: { profileRetentionDays: null }, key: ADMIN });
    expect(reset.body.quota.profileRetentionDays).toBe(30);
    expect(reset.body.defaults.profileRetentionDays).toBe(true);
  });

  it("lowering a quota below usage keeps what exists and refuses only what comes next", async () => {
    const { tenant, key } = await newTenant("q-lower", { maxSessions: 4 });
    const pool = poolName("ql");
    expect((await put(key, pool, { maxSessions: 4 })).status).toBe(200);
    await call(`/v1/admin/tenants/${tenant}`, { method: "PUT", body: { maxSessions: 2 }, key: ADMIN });
    expect((await call(`/v1/pools/${pool}`, { key })).body.config.maxSessions).toBe(4);
    expect((await put(key, pool, { minIdle: 0 })).status).toBe(200);
    expect((await put(key, poolName("ql"), { maxSessions: 1 })).status).toBe(403);
    expect((await put(key, pool, { maxSessions: 2 })).status).toBe(200);
    expect((await tenantView(tenant)).usage.sessions).toBe(2);
  });

  it("a pool the tenant has no record of (created before quotas) reports its size from its alarm", async () => {
    const { tenant, key } = await newTenant("q-legacy", { maxSessions: 10 });
    const pool = poolName("qg");
    expect((await put(key, pool, { maxSessions: 3 })).status).toBe(200);
    // Forget the claim on both sides, as for a pool that predates tenant objects.
    const tenantStub = env.TENANT.get(env.TENANT.idFromName(tenant));
    await runInDurableObject(tenantStub, (_o, state) => state.storage.sql.exec(`DELETE FROM pools`));
    const poolStub = env.POOL.get(env.POOL.idFromName(`${tenant}/${pool}`));
    await runInDurableObject(poolStub, (object: PoolObject) => {
      (object as unknown as { db: { setMeta(k: string, v: string): void } }).db.setMeta("tenant_claimed", "none");
    });
    expect((await tenantView(tenant)).usage).toEqual({ pools: 0, sessions: 0 });
    await runInDurableObject(poolStub, (object: PoolObject) => object.alarm());
    await poolStub.effectsDone();
    expect((await tenantView(tenant)).usage).toEqual({ pools: 1, sessions: 3 });
  });
});
