/**
 * Listing pools: GET /v1/pools (a tenant's own) and GET /v1/admin/pools
 * (every tenant's, admin token), fed by the account registry that each pool
 * object registers with when it is created.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { PoolObject } from "../../src/pool/object";
import { call, DEV2_KEY, poolName } from "../support/http";

async function createPool(name: string, key?: string) {
  const put = await call(`/v1/pools/${name}`, { method: "PUT", body: { maxSessions: 1 }, ...(key ? { key } : {}) });
  expect(put.status).toBe(200);
}

/** Every page of a listing, following nextCursor. */
async function allPages(path: string, key: string, limit: number) {
  const pools: any[] = [];
  let cursor: string | null = null;
  for (let pages = 0; pages < 50; pages += 1) {
    const page: any = await call(`${path}?limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`, { key });
    expect(page.status).toBe(200);
    expect(page.body.pools.length).toBeLessThanOrEqual(limit);
    pools.push(...page.body.pools);
    cursor = page.body.nextCursor;
    if (!cursor) break;
  }
  return pools;
}

describe("listing pools", () => {
  it("a tenant lists its own pools with counts and health, never another tenant's", async () => {
    const mine = [poolName("list"), poolName("list")];
    const theirs = poolName("list");
    for (const name of mine) await createPool(name);
    await createPool(theirs, DEV2_KEY);
    const lease = await call(`/v1/pools/${mine[0]}/leases`, { method: "POST", body: { ttlSeconds: 60 } });
    expect(lease.status).toBe(201);

    const listed = await allPages("/v1/pools", "dev-key", 2);
    const names = listed.map((p) => p.pool);
    expect(names).toEqual(expect.arrayContaining(mine));
    expect(names).not.toContain(theirs);
    expect(names).toEqual([...names].sort());
    expect(new Set(names).size).toBe(names.length);
    const first = listed.find((p) => p.pool === mine[0]);
    expect(first).toMatchObject({ counts: { leased: 1 }, capacity: { max: 1 }, consistent: true });
    expect(first.tenant).toBeUndefined();
    expect(Date.parse(first.createdAt)).toBeGreaterThan(0);

    const other = await allPages("/v1/pools", DEV2_KEY, 100);
    expect(other.map((p) => p.pool)).toContain(theirs);
    expect(other.map((p) => p.pool)).not.toEqual(expect.arrayContaining(mine));
    await call(`/v1/pools/${mine[0]}/leases/${lease.body.id}`, { method: "DELETE" });
  });

  it("an operator lists every tenant's pools with the admin token; an API key cannot", async () => {
    const a = poolName("admin");
    const b = poolName("admin");
    await createPool(a);
    await createPool(b, DEV2_KEY);
    const listed = await allPages("/v1/admin/pools", "dev-admin", 3);
    expect(listed).toEqual(
      expect.arrayContaining([expect.objectContaining({ tenant: "dev", pool: a }), expect.objectContaining({ tenant: "dev2", pool: b })]),
    );
    const keys = listed.map((p) => `${p.tenant}/${p.pool}`);
    expect(keys).toEqual([...keys].sort());
    expect((await call("/v1/admin/pools", { key: "dev-key" })).status).toBe(401);
    expect((await call("/v1/admin/pools", { key: null })).status).toBe(401);
  });

  it("rejects a bad page size with 400 naming the field", async () => {
    const reply = await call("/v1/pools?limit=0");
    expect(reply.status).toBe(400);
    expect(reply.body).toMatchObject({ code: "invalid_request", detail: expect.stringContaining("query.limit") });
    expect((await call("/v1/pools?unknown=1")).status).toBe(400);
  });

  it("a pool whose registration was lost registers again from its alarm", async () => {
    const name = poolName("lost");
    await createPool(name);
    const stub = env.POOL.get(env.POOL.idFromName(`dev/${name}`));
    await stub.effectsDone();
    // Lose it: the registry forgets the pool and the pool forgets it was registered.
    const registry = env.REGISTRY.get(env.REGISTRY.idFromName("registry"));
    await runInDurableObject(registry, (_r, state) => state.storage.sql.exec(`DELETE FROM pools WHERE tenant = 'dev' AND pool = ?`, name));
    await runInDurableObject(stub, (object: PoolObject) => {
      (object as unknown as { db: { setMeta(k: string, v: string): void } }).db.setMeta("pool_registered", "0");
    });
    expect((await allPages("/v1/pools", "dev-key", 100)).map((p) => p.pool)).not.toContain(name);
    await runInDurableObject(stub, (object: PoolObject) => object.alarm());
    await stub.effectsDone();
    expect((await allPages("/v1/pools", "dev-key", 100)).map((p) => p.pool)).toContain(name);
  });
});
