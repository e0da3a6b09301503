/**
 * Tenant isolation with managed keys: two fresh tenants, each with a key
 * created through the admin API and a pool of the same name, one real lease in
 * each. A tenant's key only ever reaches its own tenant's pools: another
 * tenant's pool, lease, lease events or connect token answers 404 (never 403,
 * which would confirm it exists, and never its data); listings show only the
 * caller's pools; the operators' views need the admin token. A key stops
 * working the moment it is revoked, and a rotated key's previous secret the
 * moment its grace period ends.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeTenant } from "../../src/token";
import type { TenantObject } from "../../src/tenant/object";
import { tryConnect } from "../support/cdp";
import { call, DEV_KEY, DEV2_KEY, newPool, poolName, type Reply } from "../support/http";

const ADMIN = "dev-admin";
const suffix = Math.random().toString(36).slice(2, 8);
const A = `iso-a-${suffix}`;
const B = `iso-b-${suffix}`;
/** The name both tenants give a pool. */
const shared = poolName("iso");
/** A pool only A has. */
const onlyA = poolName("iso-only-a");

interface Lease {
  id: string;
  sessionId: string;
  expiresAt: string;
  connectUrl: string;
}
let keyA = "";
let keyB = "";
let leaseA: Lease;
let leaseB: Lease;

const admin = (path: string, options: Parameters<typeof call>[1] = {}) => call(path, { key: ADMIN, ...options });

async function createKey(tenant: string, name: string): Promise<{ id: string; key: string }> {
  const created = await admin(`/v1/admin/tenants/${tenant}/keys`, { method: "POST", body: { name } });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  return created.body;
}

async function acquire(pool: string, key: string): Promise<Lease> {
  const created = await call(`/v1/pools/${pool}/leases`, { key, method: "POST", body: { ttlSeconds: 300, waitSeconds: 20 } });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  return created.body;
}

/** Every pool name `key`'s tenant is shown by GET /v1/pools, across pages. */
async function listedPools(key: string, limit = 100): Promise<string[]> {
  const names: string[] = [];
  let cursor: string | null = null;
  do {
    const page: Reply = await call(`/v1/pools?limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`, { key });
    expect(page.status).toBe(200);
    names.push(...page.body.pools.map((p: { pool: string }) => p.pool));
    cursor = page.body.nextCursor;
  } while (cursor);
  return names;
}

/** A 404 not_found that says nothing of what A has. */
function expectHidden(reply: Reply, what: string): void {
  expect(reply.status, `${what}: ${JSON.stringify(reply.body)}`).toBe(404);
  expect(reply.body.code, what).toBe("not_found");
  const text = JSON.stringify(reply.body);
  for (const secret of [leaseA.sessionId, leaseA.expiresAt, A]) expect(text, what).not.toContain(secret);
}

/** Opens the connect socket expecting a refusal with `status` (and no socket). */
async function expectRefusedConnect(connectUrl: string, status: number, what: string): Promise<void> {
  const answer = await tryConnect(connectUrl);
  answer.cdp?.socket.close(1000, "not expected");
  expect(answer.cdp, what).toBeUndefined();
  expect(answer.status, `${what}: ${JSON.stringify(answer.body)}`).toBe(status);
  expect(answer.body.code, what).toBe(status === 404 ? "not_found" : "unauthorized");
}

const tokenOf = (lease: Lease) => new URL(lease.connectUrl).searchParams.get("token")!;
/** The lease's connectUrl with another lease id and/or token in it. */
function connectUrlWith(lease: Lease, changes: { id?: string; token?: string }): string {
  const url = new URL(lease.connectUrl.replace(lease.id, changes.id ?? lease.id));
  if (changes.token) url.searchParams.set("token", changes.token);
  return url.toString();
}

beforeAll(async () => {
  keyA = (await createKey(A, "iso")).key;
  keyB = (await createKey(B, "iso")).key;
  // Same name, different configs: whatever B is shown must be B's own.
  for (const [key, maxSessions] of [[keyA, 2], [keyB, 1]] as const) {
    expect((await call(`/v1/pools/${shared}`, { key, method: "PUT", body: { maxSessions, maxWaiters: maxSessions * 10 } })).status).toBe(200);
  }
  expect((await call(`/v1/pools/${onlyA}`, { key: keyA, method: "PUT", body: { maxSessions: 1 } })).status).toBe(200);
  leaseA = await acquire(shared, keyA);
  leaseB = await acquire(shared, keyB);
});

afterAll(async () => {
  await call(`/v1/pools/${shared}/leases`, { key: keyA, method: "DELETE" });
  await call(`/v1/pools/${shared}/leases`, { key: keyB, method: "DELETE" });
});

describe("tenant isolation with managed keys", () => {
  it("B gets 404 for A's pool, never 403 and never A's data", async () => {
    for (const key of [keyB, DEV2_KEY, DEV_KEY]) {
      expectHidden(await call(`/v1/pools/${onlyA}`, { key }), `GET /v1/pools/${onlyA}`);
      expectHidden(await call(`/v1/pools/${onlyA}/leases`, { key }), `GET /v1/pools/${onlyA}/leases`);
      expectHidden(await call(`/v1/pools/${onlyA}/leases`, { key, method: "DELETE" }), `DELETE /v1/pools/${onlyA}/leases`);
    }
    // The pool of the same name that B sees is B's: its config, its one lease.
    const theirs = await call(`/v1/pools/${shared}`, { key: keyB });
    expect(theirs.status).toBe(200);
    expect(theirs.body).toMatchObject({ pool: shared, config: { maxSessions: 1, maxWaiters: 10 }, counts: { leased: 1 } });
    const leases = await call(`/v1/pools/${shared}/leases`, { key: keyB });
    expect(leases.body.leases.map((l: Lease) => l.id)).toEqual([leaseB.id]);
    // And A still sees its own.
    expect((await call(`/v1/pools/${shared}`, { key: keyA })).body).toMatchObject({ config: { maxSessions: 2, maxWaiters: 20 }, counts: { leased: 1 } });
  });

  it("B gets 404 for A's lease and its events, in B's pool of the same name and under A's other pool's name", async () => {
    for (const pool of [shared, onlyA]) {
      const path = `/v1/pools/${pool}/leases/${leaseA.id}`;
      expectHidden(await call(path, { key: keyB }), `GET ${path}`);
      expectHidden(await call(`${path}/events`, { key: keyB }), `GET ${path}/events`);
      expectHidden(await call(`${path}/renew`, { key: keyB, method: "POST", body: { ttlSeconds: 600 } }), `POST ${path}/renew`);
      expectHidden(await call(path, { key: keyB, method: "DELETE" }), `DELETE ${path}`);
    }
    // Untouched: still active, same expiry, and its journal records nothing B did.
    expect((await call(`/v1/pools/${shared}/leases/${leaseA.id}`, { key: keyA })).body).toMatchObject({ id: leaseA.id, status: "active", expiresAt: leaseA.expiresAt });
    const mine = await call(`/v1/pools/${shared}/leases/${leaseA.id}/events`, { key: keyA });
    expect(mine.status).toBe(200);
    expect(mine.body.lease).toBe(leaseA.id);
    expect(mine.body.events.map((e: { event: string }) => e.event)).not.toContain("renewed");
    expect(mine.body.events.map((e: { event: string }) => e.event)).not.toContain("released");
  });

  it("A's connect token opens nothing of B's pool of the same name", async () => {
    // A's token on B's lease: the token names tenant A, whose pool lacks that lease.
    await expectRefusedConnect(connectUrlWith(leaseB, { token: tokenOf(leaseA) }), 404, "A's token, B's lease");
    // A's secret relabelled as tenant B's: B's pool does not have A's lease.
    const relabelled = `${encodeTenant(B)}.${tokenOf(leaseA).split(".")[1]}`;
    await expectRefusedConnect(connectUrlWith(leaseA, { token: relabelled }), 404, "A's relabelled token, A's lease");
    // …and is no token of B's lease either.
    await expectRefusedConnect(connectUrlWith(leaseB, { token: relabelled }), 401, "A's relabelled token, B's lease");
    // B's token on A's lease, the other way round.
    await expectRefusedConnect(connectUrlWith(leaseA, { token: tokenOf(leaseB) }), 404, "B's token, A's lease");
    // Each token is valid for its own lease (a plain GET answers 426 rather than opening a socket).
    for (const lease of [leaseA, leaseB]) {
      const plain = await call(new URL(lease.connectUrl).pathname + new URL(lease.connectUrl).search, { key: null });
      expect(plain.status).toBe(426);
    }
  });

  it("B's GET /v1/pools never lists A's pools, whatever cursor it sends", async () => {
    expect((await listedPools(keyA)).sort()).toEqual([onlyA, shared].sort());
    expect(await listedPools(keyB)).toEqual([shared]);
    expect(await listedPools(keyB, 1)).toEqual([shared]);
    // A cursor that names A's pools pages B's pools, not A's.
    for (const cursor of [`${A}/`, `${A}/${onlyA}`, `${A}/${shared}`, `${B}/`]) {
      const page = await call(`/v1/pools?cursor=${encodeURIComponent(cursor)}`, { key: keyB });
      expect(page.status).toBe(200);
      expect(page.body.pools.map((p: { pool: string }) => p.pool)).not.toContain(onlyA);
      expect(JSON.stringify(page.body)).not.toContain(A);
    }
    // B's entry for the shared name carries B's own capacity and counts.
    const [entry] = (await call("/v1/pools", { key: keyB })).body.pools;
    expect(entry).toMatchObject({ pool: shared, capacity: { max: 1 }, counts: { leased: 1 } });
    expect(entry).not.toHaveProperty("tenant");
    for (const key of [DEV_KEY, DEV2_KEY]) expect(await listedPools(key)).not.toContain(onlyA);
  });

  it("/metrics, /dashboard/data and the admin routes need the admin token, not a tenant's key", async () => {
    const paths = ["/metrics", "/dashboard/data", "/v1/admin/pools", "/v1/admin/registry", `/v1/admin/tenants/${A}`, `/v1/admin/tenants/${A}/keys`, `/v1/admin/pools/${A}/${shared}`];
    for (const path of paths) {
      for (const key of [keyA, keyB, DEV_KEY, null]) {
        const reply = await call(path, { key });
        expect(reply.status, `${path} with ${key === null ? "no key" : "a tenant key"}`).toBe(401);
        expect(reply.headers.get("content-type")).toMatch(/^application\/problem\+json/);
        expect(reply.body.code).toBe("unauthorized");
      }
    }
    // With the token, the operators see both tenants' pools of the same name.
    const metrics = await call("/metrics", { key: ADMIN });
    expect(metrics.status).toBe(200);
    for (const tenant of [A, B]) expect(metrics.body).toContain(`tenant="${tenant}",pool="${shared}"`);
    expect((await call("/dashboard/data", { key: ADMIN })).status).toBe(200);
  });

  it("A's key cannot reach B's pool of the same name: reads, renewals, releases and config stay A's", async () => {
    const path = `/v1/pools/${shared}/leases/${leaseB.id}`;
    for (const reply of [
      await call(path, { key: keyA }),
      await call(`${path}/events`, { key: keyA }),
      await call(`${path}/renew`, { key: keyA, method: "POST", body: { ttlSeconds: 600 } }),
      await call(path, { key: keyA, method: "DELETE" }),
    ]) {
      expect(reply.status).toBe(404);
      expect(reply.body.code).toBe("not_found");
      expect(JSON.stringify(reply.body)).not.toContain(leaseB.sessionId);
    }
    // A's config change changes A's pool only.
    expect((await call(`/v1/pools/${shared}`, { key: keyA, method: "PUT", body: { maxWaiters: 7 } })).body.config.maxWaiters).toBe(7);
    expect((await call(`/v1/pools/${shared}`, { key: keyB })).body.config.maxWaiters).toBe(10);
    // A's key relabelled with B's tenant is no key at all.
    const relabelled = keyA.replace(encodeTenant(A), encodeTenant(B));
    expect(relabelled).not.toBe(keyA);
    expect((await call(`/v1/pools/${shared}`, { key: relabelled })).status).toBe(401);
    // B's lease is untouched.
    expect((await call(path, { key: keyB })).body).toMatchObject({ status: "active", expiresAt: leaseB.expiresAt });
    // And a dev key reaches neither tenant's pools.
    const devOnly = await newPool("iso-dev");
    expect((await call(`/v1/pools/${devOnly}`, { key: keyA })).status).toBe(404);
  });
});

describe("managed keys take effect at once", () => {
  it("a revoked key gets 401 on its very next request; the tenant's other keys work on", async () => {
    const { id, key } = await createKey(A, "to-revoke");
    expect((await call(`/v1/pools/${shared}`, { key })).status).toBe(200);
    const revoked = await admin(`/v1/admin/tenants/${A}/keys/${id}`, { method: "DELETE" });
    expect(revoked.body).toMatchObject({ id, status: "revoked" });
    const next = await call(`/v1/pools/${shared}`, { key });
    expect(next.status).toBe(401);
    expect(next.body.code).toBe("unauthorized");
    expect(next.headers.get("www-authenticate")).toMatch(/^Bearer /);
    // Nothing else either: not a list, not an acquire.
    expect((await call("/v1/pools", { key })).status).toBe(401);
    expect((await call(`/v1/pools/${shared}/leases`, { key, method: "POST", body: {} })).status).toBe(401);
    expect((await call(`/v1/pools/${shared}`, { key: keyA })).status).toBe(200);
  });

  it("a key rotated with graceSeconds 0 refuses its old secret at once and accepts the new one", async () => {
    const { id, key: old } = await createKey(A, "to-rotate");
    expect((await call("/v1/pools", { key: old })).status).toBe(200);
    const rotated = await admin(`/v1/admin/tenants/${A}/keys/${id}/rotate`, { method: "POST", body: { graceSeconds: 0 } });
    expect(rotated.status).toBe(200);
    expect(rotated.body).toMatchObject({ id, status: "active", previousValidUntil: null });
    expect(rotated.body.key).not.toBe(old);
    expect((await call("/v1/pools", { key: old })).status).toBe(401);
    expect((await call("/v1/pools", { key: rotated.body.key })).status).toBe(200);
  });

  it("a key rotated with a grace period accepts its old secret until the period ends, then only the new one", async () => {
    const { id, key: old } = await createKey(B, "graceful");
    const rotated = await admin(`/v1/admin/tenants/${B}/keys/${id}/rotate`, { method: "POST", body: { graceSeconds: 60 } });
    expect(rotated.status).toBe(200);
    const until = Date.parse(rotated.body.previousValidUntil);
    expect(until - Date.now()).toBeGreaterThan(50_000);
    expect(until - Date.now()).toBeLessThanOrEqual(60_000);
    for (const key of [old, rotated.body.key]) expect((await call(`/v1/pools/${shared}`, { key })).status).toBe(200);

    // Past the grace period (the tenant object's clock moved, not slept), only the new secret works.
    const tenant = env.TENANT.get(env.TENANT.idFromName(B));
    await runInDurableObject(tenant, (object: TenantObject) => {
      object.clock = () => Date.now() + 61_000;
    });
    try {
      expect((await call(`/v1/pools/${shared}`, { key: old })).status).toBe(401);
      expect((await call(`/v1/pools/${shared}`, { key: rotated.body.key })).status).toBe(200);
      expect((await admin(`/v1/admin/tenants/${B}/keys/${id}`)).body.previousValidUntil).toBeNull();
    } finally {
      await runInDurableObject(tenant, (object: TenantObject) => {
        object.clock = () => Date.now();
      });
    }
  });
});
