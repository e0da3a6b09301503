/**
 * Deleting a pool (DELETE /v1/pools/{pool}, and the operators' DELETE
 * /v1/admin/pools/{tenant}/{pool}) through the real Worker with real
 * Chromium: refused while anything is in use; otherwise its idle browsers are
 * closed, it leaves the listings and its tenant's quota, and the name starts
 * over as a new pool.
 */
import { env, evictDurableObject, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { PoolObject } from "../../src/pool/object";
import { liveBrowsers, until } from "../support/api";
import { call, poolName } from "../support/http";
import { ADMIN, newTenant } from "../support/tenants";

const put = (key: string, pool: string, body: Record<string, unknown>) => call(`/v1/pools/${pool}`, { method: "PUT", body, key });
const tenantUsage = async (tenant: string) => (await call(`/v1/admin/tenants/${tenant}`, { key: ADMIN })).body.usage;

describe("deleting a pool", () => {
  it("closes its idle browsers, drops it from the listings and frees its share of the quota", async () => {
    const { tenant, key } = await newTenant("del", { maxPools: 1 });
    const pool = poolName("del");
    expect((await put(key, pool, { maxSessions: 1, minIdle: 1 })).status).toBe(200);
    const warm = await until(tenant, pool, (view) => view.counts.idle === 1);
    expect(warm.counts.idle).toBe(1);
    const session = await runInDurableObject(env.POOL.get(env.POOL.idFromName(`${tenant}/${pool}`)), (_o: PoolObject, state) =>
      state.storage.sql.exec<{ session_id: string }>(`SELECT session_id FROM sessions WHERE state = 'idle'`).one().session_id,
    );
    expect(await liveBrowsers()).toContain(session);

    const deleted = await call(`/v1/pools/${pool}`, { method: "DELETE", key });
    expect(deleted.status).toBe(200);
    expect(deleted.body).toEqual({ pool, deleted: true, closedSessions: 1 });
    expect(await liveBrowsers()).not.toContain(session);
    expect((await call(`/v1/pools/${pool}`, { key })).status).toBe(404);
    expect((await call(`/v1/pools`, { key })).body.pools).toEqual([]);
    expect(await tenantUsage(tenant)).toEqual({ pools: 0, sessions: 0 });
    // maxPools is 1: the freed place takes a new pool.
    expect((await put(key, poolName("del"), { maxSessions: 1 })).status).toBe(200);
  });

  it("is refused with 409 pool_busy while a lease is active, and changes nothing; allowed once released", async () => {
    const { tenant, key } = await newTenant("del-busy");
    const pool = poolName("busy");
    expect((await put(key, pool, { maxSessions: 1 })).status).toBe(200);
    const lease = await call(`/v1/pools/${pool}/leases`, { method: "POST", body: { ttlSeconds: 60 }, key });
    expect(lease.status).toBe(201);
    const refused = await call(`/v1/pools/${pool}`, { method: "DELETE", key });
    expect(refused.status).toBe(409);
    expect(refused.body.code).toBe("pool_busy");
    expect(refused.headers.get("retry-after")).toBe("1");
    const after = await call(`/v1/pools/${pool}`, { key });
    expect(after.body).toMatchObject({ draining: false, counts: { leased: 1 } });
    expect((await call(`/v1/pools/${pool}/leases/${lease.body.id}`, { key })).body.status).toBe("active");
    expect((await call(`/v1/pools/${pool}/leases/${lease.body.id}`, { method: "DELETE", key })).status).toBe(200);
    // The released browser is reset for reuse; once it is idle the pool can go.
    await until(tenant, pool, (view) => view.counts.leased === 0 && view.counts.resetting === 0);
    const deleted = await call(`/v1/pools/${pool}`, { method: "DELETE", key });
    expect(deleted.status).toBe(200);
    expect(deleted.body.closedSessions).toBe(1);
  });

  it("leaves nothing of the old pool behind: the name starts over with the defaults and no leases", async () => {
    const { tenant, key } = await newTenant("del-again");
    const pool = poolName("again");
    expect((await put(key, pool, { maxSessions: 3, defaultTtlSeconds: 30 })).status).toBe(200);
    const lease = await call(`/v1/pools/${pool}/leases`, { method: "POST", body: {}, key });
    await call(`/v1/pools/${pool}/leases/${lease.body.id}`, { method: "DELETE", key });
    await until(tenant, pool, (view) => view.counts.resetting === 0);
    expect((await call(`/v1/pools/${pool}`, { method: "DELETE", key })).status).toBe(200);
    const fresh = await put(key, pool, {});
    expect(fresh.status).toBe(200);
    expect(fresh.body.config).toMatchObject({ maxSessions: 2, defaultTtlSeconds: 60 });
    expect(fresh.body.counts).toMatchObject({ idle: 0, leased: 0, waiting: 0 });
    expect((await call(`/v1/pools/${pool}/leases/${lease.body.id}`, { key })).status).toBe(404);
    expect((await call(`/v1/pools/${pool}/leases`, { key })).body.leases).toEqual([]);
    expect(await tenantUsage(tenant)).toEqual({ pools: 1, sessions: 2 });
    expect((await call(`/v1/pools`, { key })).body.pools.map((p: { pool: string }) => p.pool)).toEqual([pool]);
  });

  it("an acquire racing the deletion: one of them is refused, or the acquire lands in a new pool; nothing is lost", async () => {
    const { tenant, key } = await newTenant("del-race");
    const pool = poolName("race");
    expect((await put(key, pool, { maxSessions: 1 })).status).toBe(200);
    const [deleted, acquired] = await Promise.all([
      call(`/v1/pools/${pool}`, { method: "DELETE", key }),
      call(`/v1/pools/${pool}/leases`, { method: "POST", body: {}, key }),
    ]);
    expect([200, 409]).toContain(deleted.status);
    expect([201, 409]).toContain(acquired.status);
    expect(deleted.status === 409 && acquired.status === 409, "never both refused").toBe(false);
    if (acquired.status === 409) expect(acquired.body.code).toBe("pool_busy");
    const described = await call(`/v1/pools/${pool}`, { key });
    if (acquired.status === 201) {
      // The lease is in the pool that exists now, and the tenant counts that pool.
      expect((await call(`/v1/pools/${pool}/leases/${acquired.body.id}`, { key })).body.status).toBe("active");
      expect(described.body.counts.leased).toBe(1);
      expect(await tenantUsage(tenant)).toEqual({ pools: 1, sessions: deleted.status === 200 ? 2 : 1 });
      await call(`/v1/pools/${pool}/leases/${acquired.body.id}`, { method: "DELETE", key });
    } else {
      expect(described.status).toBe(404);
      expect(await tenantUsage(tenant)).toEqual({ pools: 0, sessions: 0 });
    }
  });

  it("by an operator, on any tenant's pool; a pool that does not exist is 404", async () => {
    const { tenant, key } = await newTenant("del-admin");
    const pool = poolName("adm");
    expect((await put(key, pool, { maxSessions: 1 })).status).toBe(200);
    expect((await call(`/v1/admin/pools/${tenant}/${pool}`, { method: "DELETE", key })).status).toBe(401);
    const deleted = await call(`/v1/admin/pools/${tenant}/${pool}`, { method: "DELETE", key: ADMIN });
    expect(deleted.status).toBe(200);
    expect((await call(`/v1/pools/${pool}`, { key })).status).toBe(404);
    expect((await call(`/v1/admin/pools/${tenant}/${pool}`, { method: "DELETE", key: ADMIN })).status).toBe(404);
    expect((await call(`/v1/pools/${pool}`, { method: "DELETE", key })).status).toBe(404);
    expect((await call(`/v1/admin/pools`, { key: ADMIN })).body.pools.some((p: { tenant: string }) => p.tenant === tenant)).toBe(false);
  });

  it("interrupted before its storage went, comes back (drained) on restart, registered and counted again", async () => {
    const { tenant, key } = await newTenant("del-crash");
    const pool = poolName("crash");
    expect((await put(key, pool, { maxSessions: 2 })).status).toBe(200);
    const stub = env.POOL.get(env.POOL.idFromName(`${tenant}/${pool}`));
    // As if the object died after retiring and unregistering, before deleting its storage.
    await runInDurableObject(stub, (_o: PoolObject, state) => {
      state.storage.sql.exec(`INSERT INTO meta (key, value) VALUES ('draining', '1'), ('lifecycle', 'deleting') ON CONFLICT (key) DO UPDATE SET value = excluded.value`);
    });
    await env.REGISTRY.get(env.REGISTRY.idFromName("registry")).untrackPool(tenant, pool);
    await env.TENANT.get(env.TENANT.idFromName(tenant)).releasePool(pool);
    await evictDurableObject(stub);
    const back = env.POOL.get(env.POOL.idFromName(`${tenant}/${pool}`));
    await back.effectsDone();
    expect((await call(`/v1/pools/${pool}`, { key })).body).toMatchObject({ draining: true, config: { maxSessions: 2 } });
    expect((await call(`/v1/pools`, { key })).body.pools.map((p: { pool: string }) => p.pool)).toEqual([pool]);
    expect(await tenantUsage(tenant)).toEqual({ pools: 1, sessions: 2 });
    expect((await call(`/v1/pools/${pool}`, { method: "DELETE", key })).status).toBe(200);
  });
});
