/**
 * Managed API keys through the real Worker: the admin API creates, lists,
 * rotates and revokes them; the tenant object stores only hashes and is asked
 * on every request, so revocation and rotation take effect at once.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { TenantObject } from "../../src/tenant/object";
import { connect } from "../support/cdp";
import { logged } from "../support/logs";
import { call, newPool, poolName } from "../support/http";
import { ADMIN, newKey, newTenant, tenantName } from "../support/tenants";

const keysOf = (tenant: string) => `/v1/admin/tenants/${tenant}/keys`;

describe("managed API keys", () => {
  it("are shown once when created, listed by hint only, and authenticate as their tenant", async () => {
    const tenant = tenantName("keys");
    const created = await call(keysOf(tenant), { method: "POST", body: { name: "ci fleet" }, key: ADMIN });
    expect(created.status).toBe(201);
    expect(created.headers.get("cache-control")).toBe("no-store");
    expect(created.body).toMatchObject({ tenant, name: "ci fleet", status: "active", revokedAt: null, lastUsedAt: null });
    const { key, id } = created.body as { key: string; id: string };
    expect(key).toMatch(/^bsk_[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/);
    expect(id).toMatch(/^key_[0-9a-f]{16}$/);

    const listed = await call(keysOf(tenant), { key: ADMIN });
    expect(listed.status).toBe(200);
    expect(listed.body.keys).toHaveLength(1);
    expect(listed.body.keys[0]).toMatchObject({ id, name: "ci fleet", status: "active" });
    expect(key.startsWith(listed.body.keys[0].hint.replace("…", ""))).toBe(true);
    // The secret is in no answer but the first, and the stored form is a digest, not the key.
    expect(JSON.stringify(listed.body)).not.toContain(key.split(".")[1]);
    const stored = await runInDurableObject(env.TENANT.get(env.TENANT.idFromName(tenant)), (_o, state) =>
      state.storage.sql.exec<{ digest: string }>(`SELECT digest FROM keys`).toArray(),
    );
    expect(stored).toHaveLength(1);
    expect(stored[0]!.digest).toMatch(/^[0-9a-f]{64}$/);
    expect(stored[0]!.digest).not.toContain(key.split(".")[1]);

    // The key acts as its tenant: its pool is the tenant's, invisible to the dev tenant.
    const pool = await newPool("keys", { maxSessions: 1 }, key);
    expect((await call(`/v1/pools/${pool}`, { key })).status).toBe(200);
    expect((await call(`/v1/pools/${pool}`)).status).toBe(404);
    const mine = await call(`/v1/pools`, { key });
    expect(mine.body.pools.map((p: { pool: string }) => p.pool)).toEqual([pool]);
    expect((await call(`${keysOf(tenant)}/${id}`, { key: ADMIN })).body.lastUsedAt).not.toBeNull();
  });

  it("stop working with the very next request once revoked; revoking again changes nothing", async () => {
    const { tenant, key, keyId } = await newTenant("revoke");
    expect((await call(`/v1/pools`, { key })).status).toBe(200);
    const revoked = await call(`${keysOf(tenant)}/${keyId}`, { method: "DELETE", key: ADMIN });
    expect(revoked.status).toBe(200);
    expect(revoked.body).toMatchObject({ id: keyId, status: "revoked" });
    const refused = await call(`/v1/pools`, { key });
    expect(refused.status).toBe(401);
    expect(refused.body.code).toBe("unauthorized");
    expect(refused.headers.get("www-authenticate")).toContain("Bearer");
    const again = await call(`${keysOf(tenant)}/${keyId}`, { method: "DELETE", key: ADMIN });
    expect(again.body.revokedAt).toBe(revoked.body.revokedAt);
    const rotate = await call(`${keysOf(tenant)}/${keyId}/rotate`, { method: "POST", body: {}, key: ADMIN });
    expect(rotate.status).toBe(409);
    expect(rotate.body.code).toBe("key_revoked");
    // A revoked key's tenant keeps its other keys.
    const other = await newKey(tenant);
    expect((await call(`/v1/pools`, { key: other.key })).status).toBe(200);
  });

  it("rotate to a new secret under the same id; without grace the old secret fails at once", async () => {
    const { tenant, key, keyId } = await newTenant("rotate");
    const rotated = await call(`${keysOf(tenant)}/${keyId}/rotate`, { method: "POST", body: {}, key: ADMIN });
    expect(rotated.status).toBe(200);
    expect(rotated.body).toMatchObject({ id: keyId, status: "active", previousValidUntil: null });
    expect(rotated.body.rotatedAt).not.toBeNull();
    expect(rotated.body.key).not.toBe(key);
    expect((await call(`/v1/pools`, { key })).status).toBe(401);
    expect((await call(`/v1/pools`, { key: rotated.body.key })).status).toBe(200);
  });

  it("keep the previous secret valid for the grace period, and only for it", async () => {
    const { tenant, key, keyId } = await newTenant("grace");
    const rotated = await call(`${keysOf(tenant)}/${keyId}/rotate`, { method: "POST", body: { graceSeconds: 3600 }, key: ADMIN });
    expect(rotated.status).toBe(200);
    expect(Date.parse(rotated.body.previousValidUntil) - Date.now()).toBeGreaterThan(3500_000);
    expect((await call(`/v1/pools`, { key })).status).toBe(200);
    expect((await call(`/v1/pools`, { key: rotated.body.key })).status).toBe(200);
    // Move the tenant object's clock past the grace period.
    await runInDurableObject(env.TENANT.get(env.TENANT.idFromName(tenant)), (object: TenantObject) => {
      object.clock = () => Date.now() + 3601_000;
    });
    expect((await call(`/v1/pools`, { key })).status).toBe(401);
    expect((await call(`/v1/pools`, { key: rotated.body.key })).status).toBe(200);
  });

  it("keep their leases across a rotation: release-all with the new secret ends the key's leases, not another key's", async () => {
    const { tenant, key, keyId } = await newTenant("owner");
    const other = await newKey(tenant, "other");
    const pool = await newPool("owner", { maxSessions: 2 }, key);
    const mine = await call(`/v1/pools/${pool}/leases`, { method: "POST", body: { ttlSeconds: 60 }, key });
    expect(mine.status).toBe(201);
    const theirs = await call(`/v1/pools/${pool}/leases`, { method: "POST", body: { ttlSeconds: 60 }, key: other.key });
    expect(theirs.status).toBe(201);
    // A managed tenant's lease is a real browser its connect URL reaches.
    const cdp = await connect(mine.body.connectUrl);
    expect((await cdp.send<{ product: string }>("Browser.getVersion")).product).toMatch(/Chrome/);
    cdp.socket.close();
    await cdp.closed;
    const rotated = await call(`${keysOf(tenant)}/${keyId}/rotate`, { method: "POST", body: {}, key: ADMIN });
    const released = await call(`/v1/pools/${pool}/leases`, { method: "DELETE", key: rotated.body.key });
    expect(released.body).toEqual({ released: 1 });
    expect((await call(`/v1/pools/${pool}/leases/${mine.body.id}`, { key: other.key })).body.status).toBe("released");
    expect((await call(`/v1/pools/${pool}/leases/${theirs.body.id}`, { key: other.key })).body.status).toBe("active");
    expect((await call(`/v1/pools/${pool}/leases/${theirs.body.id}`, { method: "DELETE", key: other.key })).status).toBe(200);
  });

  it("are managed with the admin token only, per tenant: another tenant's key id is not found", async () => {
    const a = await newTenant("adm-a");
    const b = await newTenant("adm-b");
    for (const [method, suffix] of [
      ["GET", ""],
      ["POST", ""],
      ["GET", `/${a.keyId}`],
      ["POST", `/${a.keyId}/rotate`],
      ["DELETE", `/${a.keyId}`],
    ] as const) {
      expect((await call(`${keysOf(a.tenant)}${suffix}`, { method, key: a.key })).status).toBe(401);
      expect((await call(`${keysOf(a.tenant)}${suffix}`, { method, key: null })).status).toBe(401);
    }
    expect((await call(`/v1/admin/tenants/${a.tenant}`, { method: "PUT", body: { maxPools: 1 }, key: a.key })).status).toBe(401);
    const crossed = await call(`${keysOf(b.tenant)}/${a.keyId}`, { method: "DELETE", key: ADMIN });
    expect(crossed.status).toBe(404);
    expect((await call(`/v1/pools`, { key: a.key })).status).toBe(200);
    expect((await call(`${keysOf(a.tenant)}/key_0000000000000000`, { key: ADMIN })).status).toBe(404);
    const malformed = await call(`${keysOf(a.tenant)}/not-a-key-id`, { key: ADMIN });
    expect(malformed.status).toBe(400);
    expect(malformed.body.detail).toContain("path.id");
  });

  it("refuse a well-formed key of a tenant that does not exist, and leave no object storage behind", async () => {
    const tenant = tenantName("ghost");
    const forged = `bsk_${btoa(tenant).replace(/=+$/, "")}.${"A".repeat(43)}`;
    const reply = await call(`/v1/pools`, { key: forged });
    expect(reply.status).toBe(401);
    const stub = env.TENANT.get(env.TENANT.idFromName(tenant));
    expect(await stub.known()).toBe(false);
    const tables = await runInDurableObject(stub, (_o, state) =>
      state.storage.sql.exec(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' ESCAPE '\\'`).toArray(),
    );
    expect(tables).toEqual([]);
  });

  it(`are limited to 50 active keys per tenant (too_many_keys); revoking one makes room`, async () => {
    const tenant = tenantName("many");
    const ids: string[] = [];
    for (let i = 0; i < 50; i++) ids.push((await newKey(tenant, `k${i}`)).id);
    const refused = await call(keysOf(tenant), { method: "POST", body: {}, key: ADMIN });
    expect(refused.status).toBe(409);
    expect(refused.body.code).toBe("too_many_keys");
    await call(`${keysOf(tenant)}/${ids[0]}`, { method: "DELETE", key: ADMIN });
    expect((await call(keysOf(tenant), { method: "POST", body: {}, key: ADMIN })).status).toBe(201);
    const view = await call(`/v1/admin/tenants/${tenant}`, { key: ADMIN });
    expect(view.body.keys).toEqual({ active: 50, revoked: 1 });
  });

  it("every tenant is listed for operators, those with keys and those with only pools, page by page", async () => {
    const a = await newTenant("list-a");
    const b = tenantName("list-b");
    await newPool("list", {});
    expect((await call(`/v1/admin/tenants/${b}`, { method: "PUT", body: { maxPools: 3 }, key: ADMIN })).status).toBe(200);
    const seen: { tenant: string; quota: { maxPools: number } }[] = [];
    let cursor: string | null = null;
    do {
      const page: any = await call(`/v1/admin/tenants?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`, { key: ADMIN });
      expect(page.status).toBe(200);
      expect(page.body.tenants.length).toBeLessThanOrEqual(2);
      seen.push(...page.body.tenants);
      cursor = page.body.nextCursor;
    } while (cursor);
    const names = seen.map((t) => t.tenant);
    expect(names).toEqual([...names].sort());
    expect(new Set(names).size).toBe(names.length);
    expect(names).toEqual(expect.arrayContaining([a.tenant, b, "dev"]));
    expect(seen.find((t) => t.tenant === b)!.quota.maxPools).toBe(3);
    expect((await call(`/v1/admin/tenants`, { key: a.key })).status).toBe(401);
  });

  it("leave an audit line per change (created, rotated, revoked, quota), never with the secret", async () => {
    let secrets: string[] = [];
    let tenant = "";
    let id = "";
    const lines = await logged(async () => {
      const created = await newTenant("audit", { maxPools: 4 });
      tenant = created.tenant;
      id = created.keyId;
      const rotated = await call(`${keysOf(tenant)}/${id}/rotate`, { method: "POST", body: { graceSeconds: 60 }, key: ADMIN });
      await call(`${keysOf(tenant)}/${id}`, { method: "DELETE", key: ADMIN });
      secrets = [created.key, rotated.body.key];
    });
    const mine = lines.filter((line) => line.tenant === tenant);
    expect(mine.map((line) => line.event)).toEqual(["quota_set", "key_created", "key_rotated", "key_revoked"]);
    expect(mine[1]).toMatchObject({ key: id, name: "test" });
    expect(mine[2]).toMatchObject({ key: id, graceSeconds: 60 });
    for (const secret of secrets) expect(JSON.stringify(lines)).not.toContain(secret.split(".")[1]);
  });

  it("a tenant reads its own quota, usage and rate limit (GET /v1/tenant), never another's", async () => {
    const { tenant, key } = await newTenant("self", { maxPools: 5, maxSessions: 7 });
    await newPool("self", { maxSessions: 3 }, key);
    const own = await call(`/v1/tenant`, { key });
    expect(own.status).toBe(200);
    expect(own.body).toEqual({
      tenant,
      quota: { maxPools: 5, maxSessions: 7, weight: 1, recordingRetentionDays: 7, profileRetentionDays: 30 },
      usage: { pools: 1, sessions: 3 },
      rateLimit: { requests: Number(env.RATE_LIMIT_REQUESTS), periodSeconds: Number(env.RATE_LIMIT_PERIOD_SECONDS) },
    });
    const other = await call(`/v1/tenant`, { key: "dev2-key" });
    expect(other.body.tenant).toBe("dev2");
    expect((await call(`/v1/tenant`, { key: null })).status).toBe(401);
  });

  it("the dev keys from API_KEYS still work beside managed keys", async () => {
    const name = poolName("static");
    expect((await call(`/v1/pools/${name}`, { method: "PUT", body: {} })).status).toBe(200);
    expect((await call(`/v1/pools/${name}`, { key: "dev-key" })).status).toBe(200);
    expect((await call(`/v1/pools/${name}`, { key: "not-a-key" })).status).toBe(401);
  });
});
