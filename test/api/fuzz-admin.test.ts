/**
 * Hostile input against the operators' routes, property-based (fast-check), as
 * test/api/fuzz.test.ts does for the tenant API: the pool admin routes
 * (/v1/admin/pools/{tenant}/{pool}/…) and the tenant routes (quotas, managed
 * keys). Malformed JSON, wrong types, huge, fractional and negative numbers,
 * unknown fields, odd content types, oversized bodies, path tricks, and
 * requests without the admin token. Every answer must be a 4xx
 * application/problem+json with a code and a detail (never a 5xx; 401 when the
 * admin token is missing or wrong), and nothing may change: the tenant's quota,
 * usage and keys, the pool's config, drain state and counts, and its lease.
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LeaseId } from "../../src/api/schemas";
import { MAX_ACTIVE_KEYS, MAX_ROTATION_GRACE_SECONDS } from "../../src/tenant/object";
import {
  badLeaseId,
  badPoolName,
  badSeconds,
  expectProblem,
  FUZZ_RUNS as RUNS,
  malformedJson,
  oddContentType,
  unknownFieldOf,
} from "../support/fuzz";
import { call, DEV_KEY, DEV2_KEY } from "../support/http";

const ADMIN = "dev-admin";
const TENANT_NAME = /^[A-Za-z0-9_.-]{1,100}$/;
const KEY_ID = /^key_[0-9a-f]{16}$/;
const POOL_FIELDS = ["maxSessions", "minIdle", "maxWaiters", "defaultTtlSeconds", "maxTtlSeconds", "reuse", "launchTimeoutSeconds", "idleTimeoutSeconds"];

const suffix = Math.random().toString(36).slice(2, 8);
/** The tenant under fire: a quota of its own, an active key, a revoked key, one pool with one lease. */
const tenant = `fuzz-admin-${suffix}`;
/** A tenant at its limit of active keys: creating one more is refused. */
const full = `fuzz-full-${suffix}`;
const pool = "fuzzed";
let key = "";
let keyId = "";
let revokedId = "";
let leaseId = "";

const admin = (path: string, options: Parameters<typeof call>[1] = {}) => call(path, { key: ADMIN, ...options });

async function snapshot() {
  const [described, keys, fullTenant, fullKeys, pooled, events] = await Promise.all([
    admin(`/v1/admin/tenants/${tenant}`),
    admin(`/v1/admin/tenants/${tenant}/keys`),
    admin(`/v1/admin/tenants/${full}`),
    admin(`/v1/admin/tenants/${full}/keys`),
    admin(`/v1/admin/pools/${tenant}/${pool}`),
    admin(`/v1/admin/pools/${tenant}/${pool}/leases/${leaseId}/events`),
  ]);
  for (const reply of [described, keys, fullTenant, fullKeys, pooled, events]) expect(reply.status).toBe(200);
  const { config, counts, draining, consistent } = pooled.body;
  return {
    tenant: described.body,
    keys: keys.body.keys,
    full: fullTenant.body,
    fullKeys: fullKeys.body.keys,
    pool: { config, counts, draining, consistent },
    lease: events.body.lease,
    events: events.body.events.length,
  };
}

// ---- generators -------------------------------------------------------------

/** Quota fields take integers in range, or null (back to the default): anything else. */
const badCount = fc.oneof(
  fc.string(),
  fc.boolean(),
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.integer(), { maxKeys: 2 }),
  fc.integer({ max: 0 }),
  fc.integer({ min: 100_001 }),
  fc.double({ noInteger: true, noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 }),
  fc.constantFrom(Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER, 1e300, -0.5, 2.5, "7", "null"),
);
const badGrace = fc.oneof(
  fc.string(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.nat(), { maxLength: 3 }),
  fc.integer({ max: -1 }),
  fc.integer({ min: MAX_ROTATION_GRACE_SECONDS + 1 }),
  fc.double({ noInteger: true, noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 }),
  fc.constantFrom(1e300, -0.5, 0.5, "60"),
);
/** Key names are 1-100 printable ASCII characters: anything else. */
const badKeyName = fc.oneof(
  fc.string({ minLength: 101, maxLength: 300 }),
  fc.constantFrom("", "tab\there", "new\nline", "nul\u0000", "é", "emoji 🙂", "\u007f"),
  fc.string({ unit: "binary", minLength: 1, maxLength: 20 }).filter((s) => !/^[\x20-\x7e]{1,100}$/.test(s)),
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.string(), { maxLength: 2 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.string(), { maxKeys: 2 }),
);
/** A value a pool config field refuses on its own: wrong type or out of range (`reuse` takes only booleans). */
const badPoolField = fc.oneof(
  fc.record({ field: fc.constantFrom(...POOL_FIELDS.filter((f) => f !== "reuse")), value: badSeconds }),
  fc.record({ field: fc.constant("reuse"), value: fc.oneof(fc.string(), fc.integer(), fc.constant(null), fc.array(fc.boolean())) }),
);
/**
 * Valid values the pool refuses in context: above MAX_SESSIONS_PER_POOL (20),
 * a growth past the tenant's session quota (the pool has all of it), minIdle
 * above maxSessions, defaultTtlSeconds above maxTtlSeconds (600) and the reverse.
 */
const refusedPoolPatch = fc.oneof(
  fc.integer({ min: 21, max: 120 }).map((n) => ({ maxSessions: n })),
  fc.integer({ min: 3, max: 20 }).map((n) => ({ maxSessions: n })),
  fc.integer({ min: 3, max: 120 }).map((n) => ({ minIdle: n })),
  fc.integer({ min: 601, max: 3600 }).map((n) => ({ defaultTtlSeconds: n })),
  fc.integer({ min: 1, max: 59 }).map((n) => ({ maxTtlSeconds: n })),
);
const hugeBody = fc.integer({ min: 16 * 1024 + 1, max: 64 * 1024 }).map((size) => JSON.stringify({ name: "x".repeat(size) }));

/** Tenant names the admin routes must refuse: invalid once decoded, control characters, too long. */
const badTenantName = fc.oneof(
  fc.constantFrom("a%2Fb", "%2F", "a%2F..%2Fb", "%00", "%ZZ", "%C3", "spa%20ce", "a:b", "~x", "%C3%A9", "a".repeat(101), "b".repeat(5000), "tenant%3Fx%3D1", "a%23b"),
  fc.string({ minLength: 1, maxLength: 20 }).filter((s) => !TENANT_NAME.test(s)).map(encodeURIComponent),
  fc.string({ unit: fc.constantFrom(..."abc-_."), minLength: 101, maxLength: 400 }),
);
/** Key ids the routes must refuse as malformed (400): not `key_` and 16 lowercase hex digits. */
const badKeyId = fc.oneof(
  fc.constantFrom("key_XYZ", "key_", "key_0123456789ABCDEF", "key_0123456789abcde", "key_0123456789abcdef0", "KEY_0123456789abcdef", "key-0123456789abcdef", "key_0123456789abcdeg"),
  fc.constantFrom("key_0123456789abcdef%2F..", "%2e%2e%2F", "key_%00", "k".repeat(5000), "key_" + "a".repeat(5000), "..%2F..%2Fkeys"),
  fc.string({ minLength: 1, maxLength: 30 }).filter((s) => !KEY_ID.test(s) && s !== "." && s !== "..").map(encodeURIComponent),
);
/** Segments the URL itself resolves away (`..`, `.`, and their percent-encoded forms): the request lands on another path. */
const dotSegment = fc.constantFrom("..", ".", "%2e%2e", "%2E.", ".%2e", "%2e");
const absentKeyId = fc.stringMatching(/^[0-9a-f]{16}$/).map((hex) => `key_${hex}`);
/** Whether a query value is a page size GET /v1/admin/pools accepts (it coerces: " 7", "1e1" and "0x10" are numbers). */
const isPageSize = (text: string) => {
  const n = Number(text);
  return Number.isInteger(n) && n >= 1 && n <= 100;
};
/** The fields each body-taking target knows, by index in `targets()` below. */
const knownFields = [["maxPools", "maxSessions"], ["name"], ["graceSeconds"], POOL_FIELDS] as const;

beforeAll(async () => {
  // The tenant's session quota is exactly its pool's size, so growing the pool is refused.
  expect((await admin(`/v1/admin/tenants/${tenant}`, { method: "PUT", body: { maxPools: 5, maxSessions: 2 } })).status).toBe(200);
  const created = await admin(`/v1/admin/tenants/${tenant}/keys`, { method: "POST", body: { name: "fuzzed" } });
  expect(created.status).toBe(201);
  ({ key, id: keyId } = created.body);
  const revoked = await admin(`/v1/admin/tenants/${tenant}/keys`, { method: "POST", body: { name: "revoked" } });
  revokedId = revoked.body.id;
  expect((await admin(`/v1/admin/tenants/${tenant}/keys/${revokedId}`, { method: "DELETE" })).body.status).toBe("revoked");
  expect((await call(`/v1/pools/${pool}`, { key, method: "PUT", body: { maxSessions: 2, maxTtlSeconds: 600 } })).status).toBe(200);
  const lease = await call(`/v1/pools/${pool}/leases`, { key, method: "POST", body: { ttlSeconds: 600, waitSeconds: 20 } });
  expect(lease.status, JSON.stringify(lease.body)).toBe(201);
  leaseId = lease.body.id;
  for (let i = 0; i < MAX_ACTIVE_KEYS; i += 1) {
    expect((await admin(`/v1/admin/tenants/${full}/keys`, { method: "POST", body: { name: `k${i}` } })).status).toBe(201);
  }
});

afterAll(async () => {
  await call(`/v1/pools/${pool}/leases`, { key, method: "DELETE" });
});

describe("hostile input on the admin routes", () => {
  it("bodies of the wrong shape, type, size or value are refused with 4xx, and change nothing", async () => {
    const before = await snapshot();
    const json = "application/json";
    const targets = () =>
      [
        ["PUT", `/v1/admin/tenants/${tenant}`],
        ["POST", `/v1/admin/tenants/${tenant}/keys`],
        ["POST", `/v1/admin/tenants/${tenant}/keys/${keyId}/rotate`],
        ["PUT", `/v1/admin/pools/${tenant}/${pool}`],
      ] as const;
    // Routes that take no body still refuse an oversized one before acting.
    const bodiless = () =>
      [
        ["POST", `/v1/admin/pools/${tenant}/${pool}/drain`],
        ["POST", `/v1/admin/pools/${tenant}/${pool}/resume`],
        ["POST", `/v1/admin/pools/${tenant}/${pool}/purge-idle`],
        ["DELETE", `/v1/admin/pools/${tenant}/${pool}/leases/${leaseId}`],
        ["DELETE", `/v1/admin/tenants/${tenant}/keys/${keyId}`],
      ] as const;
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.record({ kind: fc.constant("quota"), field: fc.constantFrom("maxPools", "maxSessions"), value: badCount, other: fc.option(fc.integer({ min: 1, max: 100 })) }),
          fc.record({ kind: fc.constant("key-name"), name: badKeyName }),
          fc.record({ kind: fc.constant("grace"), value: badGrace }),
          fc.record({ kind: fc.constant("pool-field"), bad: badPoolField, other: fc.option(fc.constantFrom({ maxWaiters: 7 }, { reuse: false }, { minIdle: 1 })) }),
          fc.record({ kind: fc.constant("pool-refused"), patch: refusedPoolPatch }),
          fc
            .nat(3)
            .chain((target) =>
              fc.record({ kind: fc.constant("unknown-field"), target: fc.constant(target), field: unknownFieldOf(...knownFields[target]!), value: fc.jsonValue(), valid: fc.boolean() }),
            ),
          fc.record({ kind: fc.constant("malformed"), target: fc.nat(3), text: malformedJson }),
          fc.record({ kind: fc.constant("content-type"), target: fc.nat(3), type: oddContentType }),
          fc.record({ kind: fc.constant("huge"), target: fc.nat(3 + 5), text: hugeBody }),
          fc.record({ kind: fc.constant("too-many-keys"), name: fc.string({ unit: "grapheme-ascii", minLength: 1, maxLength: 100 }) }),
          fc.record({ kind: fc.constant("rotate-revoked"), graceSeconds: fc.option(fc.integer({ min: 0, max: MAX_ROTATION_GRACE_SECONDS }), { nil: undefined }) }),
        ),
        async (input) => {
          // A valid body for each target, which the refusals below must not apply even in part.
          const valid = [{ maxPools: 9 }, { name: "valid" }, { graceSeconds: 0 }, { maxWaiters: 7 }] as const;
          switch (input.kind) {
            case "quota": {
              const body = { [input.field]: input.value, ...(input.other === null ? {} : { [input.field === "maxPools" ? "maxSessions" : "maxPools"]: input.other }) };
              return expectProblem("PUT", `/v1/admin/tenants/${tenant}`, { key: ADMIN, body: JSON.stringify(body), contentType: json, status: 400 });
            }
            case "key-name":
              return expectProblem("POST", `/v1/admin/tenants/${tenant}/keys`, { key: ADMIN, body: JSON.stringify({ name: input.name }), contentType: json, status: 400 });
            case "grace":
              return expectProblem("POST", `/v1/admin/tenants/${tenant}/keys/${keyId}/rotate`, { key: ADMIN, body: JSON.stringify({ graceSeconds: input.value }), contentType: json, status: 400 });
            case "pool-field":
              return expectProblem("PUT", `/v1/admin/pools/${tenant}/${pool}`, {
                key: ADMIN,
                body: JSON.stringify({ ...input.other, [input.bad.field]: input.bad.value }),
                contentType: json,
                status: 400,
              });
            case "pool-refused":
              // 400 for a rule of the config, 403 quota_exceeded for a growth the tenant cannot have.
              return expectProblem("PUT", `/v1/admin/pools/${tenant}/${pool}`, { key: ADMIN, body: JSON.stringify(input.patch), contentType: json });
            case "unknown-field": {
              const [method, path] = targets()[input.target]!;
              const body = { ...(input.valid ? valid[input.target] : {}), [input.field]: input.value };
              return expectProblem(method, path, { key: ADMIN, body: JSON.stringify(body), contentType: json, status: 400 });
            }
            case "malformed": {
              const [method, path] = targets()[input.target]!;
              return expectProblem(method, path, { key: ADMIN, body: input.text, contentType: json, status: 400 });
            }
            case "content-type": {
              const [method, path] = targets()[input.target]!;
              return expectProblem(method, path, { key: ADMIN, body: JSON.stringify(valid[input.target]), contentType: input.type, status: 415 });
            }
            case "huge": {
              const [method, path] = input.target < 4 ? targets()[input.target]! : bodiless()[input.target - 4]!;
              return expectProblem(method, path, { key: ADMIN, body: input.text, contentType: json, status: 413 });
            }
            case "too-many-keys":
              return expectProblem("POST", `/v1/admin/tenants/${full}/keys`, {
                key: ADMIN,
                body: JSON.stringify({ name: input.name }),
                contentType: json,
                status: 409,
              });
            case "rotate-revoked":
              return expectProblem("POST", `/v1/admin/tenants/${tenant}/keys/${revokedId}/rotate`, {
                key: ADMIN,
                body: JSON.stringify(input.graceSeconds === undefined ? {} : { graceSeconds: input.graceSeconds }),
                contentType: json,
                status: 409,
              });
          }
        },
      ),
      { numRuns: RUNS },
    );
    expect(await snapshot()).toEqual(before);
  });

  it("bad tenant names, key ids, pool names, lease ids, dot segments and queries are refused with 4xx, and change nothing", async () => {
    const before = await snapshot();
    const keyRoutes = (t: string, id: string) =>
      [
        ["GET", `/v1/admin/tenants/${t}/keys/${id}`],
        ["DELETE", `/v1/admin/tenants/${t}/keys/${id}`],
        ["POST", `/v1/admin/tenants/${t}/keys/${id}/rotate`],
      ] as const;
    const tenantRoutes = (t: string) =>
      [
        ["GET", `/v1/admin/tenants/${t}`],
        ["PUT", `/v1/admin/tenants/${t}`],
        ["GET", `/v1/admin/tenants/${t}/keys`],
        ["POST", `/v1/admin/tenants/${t}/keys`],
        ...keyRoutes(t, keyId),
      ] as const;
    const poolRoutes = (t: string, p: string, lease: string) =>
      [
        ["GET", `/v1/admin/pools/${t}/${p}`],
        ["PUT", `/v1/admin/pools/${t}/${p}`],
        ["POST", `/v1/admin/pools/${t}/${p}/drain`],
        ["POST", `/v1/admin/pools/${t}/${p}/resume`],
        ["POST", `/v1/admin/pools/${t}/${p}/purge-idle`],
        ["DELETE", `/v1/admin/pools/${t}/${p}/leases/${lease}`],
        ["GET", `/v1/admin/pools/${t}/${p}/leases/${lease}/events`],
        // Last, so the dot-segment rows below (1-5) stay off it: the fuzz pool holds a lease, so even the real one answers 409.
        ["DELETE", `/v1/admin/pools/${t}/${p}`],
      ] as const;
    // Bodies that would be accepted, so only the path can be the reason for a refusal.
    const bodyFor = (method: string, path: string) => {
      if (method === "PUT" && path.startsWith("/v1/admin/tenants/")) return { maxPools: 9 };
      if (method === "PUT") return { maxWaiters: 7 };
      if (path.endsWith("/rotate")) return { graceSeconds: 0 };
      if (method === "POST" && path.endsWith("/keys")) return { name: "valid" };
      return undefined;
    };
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.tuple(badTenantName, fc.nat(6)).map(([t, i]) => tenantRoutes(t)[i]!),
          fc.tuple(badTenantName, fc.nat(7)).map(([t, i]) => poolRoutes(t, pool, leaseId)[i]!),
          fc.tuple(badKeyId, fc.nat(2)).map(([id, i]) => keyRoutes(tenant, id)[i]!),
          // Well-formed ids of keys that do not exist: 404, in this tenant and in one that has no keys.
          fc.tuple(absentKeyId, fc.nat(2), fc.constantFrom(tenant, `nobody-${suffix}`)).map(([id, i, t]) => keyRoutes(t, id)[i]!),
          fc.tuple(badPoolName, fc.nat(7)).map(([p, i]) => poolRoutes(tenant, p, leaseId)[i]!),
          // The pool exists for this tenant only; a lease id may be malformed, or well formed and unknown.
          fc.tuple(fc.nat(7), fc.constantFrom("dev", "dev2", `nobody-${suffix}`)).map(([i, t]) => poolRoutes(t, pool, leaseId)[i]!),
          fc.tuple(badLeaseId.filter((id) => !LeaseId.safeParse(id).success && id !== ".."), fc.nat(1)).map(([id, i]) => poolRoutes(tenant, pool, id)[5 + i]!),
          fc.uuid().map((id) => ["DELETE", `/v1/admin/pools/${tenant}/${pool}/leases/${id}`] as const),
          fc.uuid().map((id) => ["GET", `/v1/admin/pools/${tenant}/${pool}/leases/${id}/events`] as const),
          // `..` and `.` are resolved by the URL before routing: whatever route the rest names must refuse a change.
          fc.tuple(dotSegment, fc.nat(2)).map(
            ([dot, i]) =>
              (
                [
                  ["DELETE", `/v1/admin/tenants/${tenant}/keys/${dot}`],
                  ["POST", `/v1/admin/tenants/${tenant}/keys/${dot}/rotate`],
                  ["POST", `/v1/admin/tenants/${dot}/keys`],
                ] as const
              )[i]!,
          ),
          fc.tuple(dotSegment, fc.nat(4)).map(([dot, i]) => poolRoutes(tenant, dot, leaseId)[1 + i]!),
          fc.tuple(dotSegment, fc.nat(4)).map(([dot, i]) => poolRoutes(dot, pool, leaseId)[1 + i]!),
          fc
            .record({ limit: fc.oneof(fc.integer({ max: 0 }), fc.integer({ min: 101 }), fc.string({ minLength: 1 }).filter((s) => !isPageSize(s))) })
            .chain((q) =>
              fc.constantFrom(
                ["GET", `/v1/admin/pools?limit=${encodeURIComponent(String(q.limit))}`] as const,
                ["GET", `/v1/admin/tenants?limit=${encodeURIComponent(String(q.limit))}`] as const,
              ),
            ),
          fc.string({ minLength: 301, maxLength: 400 }).map((cursor) => ["GET", `/v1/admin/pools?cursor=${encodeURIComponent(cursor)}`] as const),
          fc
            .string({ minLength: 1, maxLength: 10 })
            .filter((k) => !["limit", "cursor"].includes(k))
            .map((k) => ["GET", `/v1/admin/pools?${encodeURIComponent(k)}=1`] as const),
        ),
        async ([method, path]) => {
          const body = bodyFor(method, path);
          await expectProblem(method, path, { key: ADMIN, ...(body ? { body: JSON.stringify(body), contentType: "application/json" } : {}) });
        },
      ),
      { numRuns: RUNS },
    );
    expect(await snapshot()).toEqual(before);
  });

  it("without the admin token every operators' route answers 401, and changes nothing", async () => {
    const before = await snapshot();
    // What each route would do with the admin token: these bodies are all valid.
    const routes = () =>
      [
        ["GET", `/v1/admin/tenants/${tenant}`],
        ["PUT", `/v1/admin/tenants/${tenant}`, { maxPools: 9, maxSessions: null }],
        ["GET", `/v1/admin/tenants/${tenant}/keys`],
        ["POST", `/v1/admin/tenants/${tenant}/keys`, { name: "intruder" }],
        ["GET", `/v1/admin/tenants/${tenant}/keys/${keyId}`],
        ["POST", `/v1/admin/tenants/${tenant}/keys/${keyId}/rotate`, { graceSeconds: 0 }],
        ["DELETE", `/v1/admin/tenants/${tenant}/keys/${keyId}`],
        ["GET", `/v1/admin/pools/${tenant}/${pool}`],
        ["PUT", `/v1/admin/pools/${tenant}/${pool}`, { maxSessions: 1, maxWaiters: 0 }],
        ["POST", `/v1/admin/pools/${tenant}/${pool}/drain`],
        ["POST", `/v1/admin/pools/${tenant}/${pool}/resume`],
        ["POST", `/v1/admin/pools/${tenant}/${pool}/purge-idle`],
        ["DELETE", `/v1/admin/pools/${tenant}/${pool}/leases/${leaseId}`],
        ["GET", `/v1/admin/pools/${tenant}/${pool}/leases/${leaseId}/events`],
        ["DELETE", `/v1/admin/pools/${tenant}/${pool}`],
        ["GET", "/v1/admin/pools"],
        ["GET", "/v1/admin/tenants"],
        ["GET", "/v1/admin/registry"],
        ["GET", "/metrics"],
        ["GET", "/dashboard"],
        ["GET", "/dashboard/data"],
      ] as const;
    const printable = fc.string({ unit: "grapheme-ascii", maxLength: 60 }).filter((s) => s.trim() !== ADMIN);
    const credential = fc.oneof(
      fc.constant({ label: "no credentials" }),
      // API keys, the tenant's own managed key among them, are not the admin token.
      fc.constantFrom(DEV_KEY, DEV2_KEY, key, "dev-admi", "dev-admin2", "DEV-ADMIN", "dev_admin", `${ADMIN}${ADMIN}`).map((k) => ({ label: "wrong token", authorization: `Bearer ${k}` })),
      printable.map((k) => ({ label: "random token", authorization: `Bearer ${k}` })),
      fc.constantFrom(`Basic ${btoa(`admin:${ADMIN}`)}`, `Basic ${btoa(ADMIN)}`, ADMIN, `Token ${ADMIN}`, `Bearer ${ADMIN} ${ADMIN}`, `Bearer ${ADMIN},x`, `Bearer=${ADMIN}`).map((authorization) => ({
        label: "malformed header",
        authorization,
      })),
      printable.map((k) => ({ label: "wrong cookie", cookie: `broker_admin=${encodeURIComponent(k)}` })),
      // The dashboard's cookie authorises reads only: a cross-site form could carry it.
      fc.constant({ label: "admin cookie on a write", cookie: `broker_admin=${ADMIN}`, writesOnly: true }),
    );
    await fc.assert(
      fc.asyncProperty(credential, fc.nat(routes().length - 1), async (cred, index) => {
        const all = routes();
        const writes = all.filter(([method]) => method !== "GET");
        const route = "writesOnly" in cred ? writes[index % writes.length]! : all[index]!;
        const [method, path, body] = route;
        const headers: Record<string, string> = {};
        if ("cookie" in cred) headers.cookie = cred.cookie;
        if ("authorization" in cred) headers.authorization = cred.authorization;
        await expectProblem(method, path, {
          key: null,
          headers,
          ...(body ? { body: JSON.stringify(body), contentType: "application/json" } : {}),
          status: 401,
          inspect: (response, what) => {
            expect(response.headers.get("www-authenticate"), what).toMatch(/^Bearer /);
            expect(response.headers.get("set-cookie"), what).toBeNull();
          },
        });
      }),
      { numRuns: RUNS },
    );
    // The dashboard's token exchange refuses a wrong token, and sets no cookie.
    await fc.assert(
      fc.asyncProperty(printable, async (token) => {
        await expectProblem("GET", `/dashboard?token=${encodeURIComponent(token)}`, {
          key: null,
          status: 401,
          inspect: (response, what) => expect(response.headers.get("set-cookie"), what).toBeNull(),
        });
      }),
      { numRuns: RUNS },
    );
    expect(await snapshot()).toEqual(before);
    // The tenant's own key still works, and its tenant still sees exactly one pool.
    const own = await call("/v1/pools", { key });
    expect(own.status).toBe(200);
    expect(own.body.pools.map((p: { pool: string }) => p.pool)).toEqual([pool]);
  });
});
