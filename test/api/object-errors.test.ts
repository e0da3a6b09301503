/**
 * Durable Object calls that fail (overloaded, a lost connection, a reset for a
 * code update, a storage timeout, an internal error) reach the caller as 503
 * problem+json with Retry-After and a stable code, never as a 500; reads,
 * acquire and release are retried once (never an overloaded call), other
 * writes never; an acquire whose answer was lost is retried with the same
 * lease id and answers with that one lease. Faults are injected through
 * src/stubs.ts's hook (./stub-faults.ts); everything else is the real
 * Worker and real objects.
 */
import { abortAllDurableObjects } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import { OVERLOADED_RETRY_AFTER_SECONDS, UNAVAILABLE_RETRY_AFTER_SECONDS } from "../../src/api/calls";
import { providerFactory } from "../../src/browser/factory";
import { describePool, expectConsistent } from "../support/api";
import { FaultProvider } from "../support/fault-provider";
import { call, newPool, type Reply } from "../support/http";
import { logged } from "../support/logs";
import { faultPool } from "../support/pool";
import { ADMIN, newTenant } from "../support/tenants";
import { type FaultRule, type Faults, injectFaults, type ObjectErrorKind, objectErrors } from "./stub-faults";

let faults: Faults | undefined;
afterEach(() => {
  faults?.restore();
  faults = undefined;
});

function inject(...rules: FaultRule[]): Faults {
  faults = injectFaults(...rules);
  return faults;
}

const NOT_OVERLOADED = ["retryable", "codeUpdated", "storageTimeout", "internal"] as const satisfies readonly ObjectErrorKind[];
const ALL = ["overloaded", ...NOT_OVERLOADED] as const;
const CAUSE: Record<ObjectErrorKind, string> = {
  overloaded: "overloaded",
  retryable: "retryable",
  codeUpdated: "code_updated",
  storageTimeout: "storage_timeout",
  internal: "internal",
};

function expect503(reply: Reply, code: "overloaded" | "unavailable"): void {
  expect({ status: reply.status, code: reply.body?.code }).toEqual({ status: 503, code });
  expect(reply.headers.get("content-type")).toBe("application/problem+json");
  expect(reply.body).toMatchObject({ type: expect.any(String), title: "Service Unavailable", status: 503, detail: expect.any(String) });
  expect(Number(reply.headers.get("retry-after"))).toBe(code === "overloaded" ? OVERLOADED_RETRY_AFTER_SECONDS : UNAVAILABLE_RETRY_AFTER_SECONDS);
  expect(JSON.stringify(reply.body)).not.toMatch(/\bat .*\.(ts|js):\d+/); // no stack trace
}

describe("a read whose object call fails", () => {
  it.each(NOT_OVERLOADED)("%s, once: retried, and answers 200", async (kind) => {
    const name = await newPool("oe-read");
    const rule: FaultRule = { kind: "pool", name: `dev/${name}`, method: "describe", times: 1, error: objectErrors[kind] };
    inject(rule);
    const reply = await call(`/v1/pools/${name}`);
    expect(reply.status).toBe(200);
    expect(reply.body.pool).toBe(name);
    expect(faults!.calls(rule)).toBe(2);
  });

  it("overloaded, once: 503 overloaded at once, with Retry-After, the object asked only once", async () => {
    const name = await newPool("oe-read");
    const rule: FaultRule = { kind: "pool", name: `dev/${name}`, method: "describe", times: 1, error: objectErrors.overloaded };
    inject(rule);
    expect503(await call(`/v1/pools/${name}`), "overloaded");
    expect(faults!.calls(rule)).toBe(1);
  });

  it.each(ALL)("%s, twice: 503 problem+json with Retry-After and the stable code, never 500; each failure logged with its stack", async (kind) => {
    const name = await newPool("oe-read");
    const rule: FaultRule = { kind: "pool", name: `dev/${name}`, method: "describe", times: 2, error: objectErrors[kind] };
    inject(rule);
    let reply: Reply | undefined;
    const lines = await logged(async () => {
      reply = await call(`/v1/pools/${name}`);
    });
    const code = kind === "overloaded" ? "overloaded" : "unavailable";
    expect503(reply!, code);
    const attempts = kind === "overloaded" ? 1 : 2;
    expect(faults!.calls(rule)).toBe(attempts);
    const failures = lines.filter((line) => line.event === "object_call_failed" && line.name === `dev/${name}`);
    expect(failures).toHaveLength(attempts);
    expect(failures.at(-1)).toMatchObject({
      object: "pool",
      method: "describe",
      attempt: attempts,
      cause: CAUSE[kind],
      retrying: false,
      answered: `503 ${code}`,
      error: (objectErrors[kind]() as Error).message,
      stack: expect.stringContaining("Error"),
    });
  });
});

describe("writes", () => {
  it("a write other than acquire and release is made at most once: configure and renew answer 503, nothing changed", async () => {
    const pool = await faultPool({ maxSessions: 2 });
    const lease = await call(`/v1/pools/${pool.name}/leases`, { method: "POST", body: { ttlSeconds: 60 } });
    expect(lease.status).toBe(201);
    const configure: FaultRule = { kind: "pool", name: `dev/${pool.name}`, method: "configure", times: 1, error: objectErrors.retryable };
    const renew: FaultRule = { kind: "pool", name: `dev/${pool.name}`, method: "renew", times: 1, error: objectErrors.retryable };
    inject(configure, renew);
    expect503(await call(`/v1/pools/${pool.name}`, { method: "PUT", body: { maxSessions: 3 } }), "unavailable");
    expect503(await call(`/v1/pools/${pool.name}/leases/${lease.body.id}/renew`, { method: "POST", body: { ttlSeconds: 600 } }), "unavailable");
    expect([faults!.calls(configure), faults!.calls(renew)]).toEqual([1, 1]);
    expect((await describePool("dev", pool.name)).config.maxSessions).toBe(2);
    expect((await call(`/v1/pools/${pool.name}/leases/${lease.body.id}`)).body.expiresAt).toBe(lease.body.expiresAt);
  });

  it("an overloaded acquire is not retried: 503 overloaded, and no lease was made", async () => {
    const pool = await faultPool({ maxSessions: 1 });
    const rule: FaultRule = { kind: "pool", name: `dev/${pool.name}`, method: "acquire", times: 1, error: objectErrors.overloaded };
    inject(rule);
    expect503(await call(`/v1/pools/${pool.name}/leases`, { method: "POST" }), "overloaded");
    expect(faults!.calls(rule)).toBe(1);
    expect((await call(`/v1/pools/${pool.name}/leases`)).body.leases).toEqual([]);
  });
});

describe("acquire and release whose answer is lost", () => {
  it("an acquire is retried with the same lease id and answers 201 with the one lease it made", async () => {
    const pool = await faultPool({ maxSessions: 2 });
    const rule: FaultRule = { kind: "pool", name: `dev/${pool.name}`, method: "acquire", times: 1, when: "after", error: objectErrors.retryable };
    inject(rule);
    const reply = await call(`/v1/pools/${pool.name}/leases`, { method: "POST", body: { ttlSeconds: 60 } });
    expect(reply.status).toBe(201);
    expect(reply.body.status).toBe("active");
    expect(faults!.calls(rule)).toBe(2);
    const [first, second] = faults!.args(rule).map(([input]) => (input as { leaseId: string }).leaseId);
    expect(second).toBe(first);
    expect(reply.body.id).toBe(first);
    const leases = (await call(`/v1/pools/${pool.name}/leases`)).body.leases as { id: string }[];
    expect(leases.map((l) => l.id)).toEqual([first]);
    expect((await describePool("dev", pool.name)).counts).toMatchObject({ leased: 1, launching: 0 });
    expect(pool.provider.launches).toBe(1);
    await expectConsistent("dev", pool.name);
  });

  it("with an Idempotency-Key: the retried acquire is the key's one lease; the key replays it and still refuses another body", async () => {
    const pool = await faultPool({ maxSessions: 2 });
    const rule: FaultRule = { kind: "pool", name: `dev/${pool.name}`, method: "acquire", times: 1, when: "after", error: objectErrors.codeUpdated };
    inject(rule);
    const headers = { "idempotency-key": `lost-${crypto.randomUUID()}` };
    const first = await call(`/v1/pools/${pool.name}/leases`, { method: "POST", body: { ttlSeconds: 60 }, headers });
    expect(first.status).toBe(201);
    expect(first.headers.get("idempotent-replayed")).toBeNull();
    const replay = await call(`/v1/pools/${pool.name}/leases`, { method: "POST", body: { ttlSeconds: 60 }, headers });
    expect(replay.status).toBe(201);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(replay.body.id).toBe(first.body.id);
    const other = await call(`/v1/pools/${pool.name}/leases`, { method: "POST", body: { ttlSeconds: 30 }, headers });
    expect({ status: other.status, code: other.body.code }).toEqual({ status: 409, code: "idempotency_key_reused" });
    expect(((await call(`/v1/pools/${pool.name}/leases`)).body.leases as unknown[]).length).toBe(1);
    await expectConsistent("dev", pool.name);
  });

  it("a release is retried and answers 200 with the released lease", async () => {
    const pool = await faultPool({ maxSessions: 1 });
    const lease = await call(`/v1/pools/${pool.name}/leases`, { method: "POST" });
    const rule: FaultRule = { kind: "pool", name: `dev/${pool.name}`, method: "release", times: 1, when: "after", error: objectErrors.retryable };
    inject(rule);
    const reply = await call(`/v1/pools/${pool.name}/leases/${lease.body.id}`, { method: "DELETE" });
    expect(reply.status).toBe(200);
    expect(reply.body).toMatchObject({ id: lease.body.id, status: "released" });
    expect(faults!.calls(rule)).toBe(2);
    await expectConsistent("dev", pool.name);
  });
});

describe("a pool object aborted mid-acquire, then a retry with the same key returns the same lease", () => {
  it("the Worker's own retry fails too (503); the client's retry with the Idempotency-Key gets 201, the same lease, replayed", async () => {
    // The restarted object must find the leased browser still running, as it would on the platform
    // (locally, aborting the object also ends a real browser it launched): the restarted instance
    // gets the same fault provider, whose browsers outlive the object.
    const provider = new FaultProvider();
    const realCreate = providerFactory.create;
    providerFactory.create = () => provider;
    try {
      const pool = await faultPool({ maxSessions: 1 }, provider);
      const rule: FaultRule = {
        kind: "pool",
        name: `dev/${pool.name}`,
        method: "acquire",
        times: 2,
        when: "after",
        afterCall: () => abortAllDurableObjects(),
        error: objectErrors.retryable,
      };
      inject(rule);
      const headers = { "idempotency-key": `abort-${crypto.randomUUID()}` };
      const body = { ttlSeconds: 120, waitSeconds: 20 };
      expect503(await call(`/v1/pools/${pool.name}/leases`, { method: "POST", body, headers }), "unavailable");
      expect(faults!.calls(rule)).toBe(2);
      const ids = faults!.args(rule).map(([input]) => (input as { leaseId: string }).leaseId);
      expect(ids[1]).toBe(ids[0]);

      const again = await call(`/v1/pools/${pool.name}/leases`, { method: "POST", body, headers });
      expect(again.status).toBe(201);
      expect(again.headers.get("idempotent-replayed")).toBe("true");
      expect(again.body).toMatchObject({ id: ids[0], status: "active" });
      expect(faults!.calls(rule)).toBe(3);
      const leases = (await call(`/v1/pools/${pool.name}/leases`)).body.leases as { id: string; status: string }[];
      expect(leases.map((l) => [l.id, l.status])).toEqual([[ids[0], "active"]]);
      expect(provider.launches).toBe(1);
      expect((await call(`/v1/pools/${pool.name}/leases/${ids[0]}`, { method: "DELETE" })).status).toBe(200);
      await expectConsistent("dev", pool.name);
    } finally {
      providerFactory.create = realCreate;
      // Objects restarted during the test hold the fault provider: restart them once more with the real one.
      await abortAllDurableObjects();
    }
  });
});

describe("the Worker's own bugs", () => {
  it("an answer the Worker cannot use (a bug outside the object call) is still the logged 500, not retried", async () => {
    const name = await newPool("oe-bug");
    const rule: FaultRule = { kind: "pool", name: `dev/${name}`, method: "describe", times: 1, answer: () => undefined };
    inject(rule);
    const reply = await call(`/v1/pools/${name}`);
    expect({ status: reply.status, code: reply.body.code }).toEqual({ status: 500, code: "internal_error" });
    expect(faults!.calls(rule)).toBe(1);
  });
});

describe("every route that calls an object", () => {
  type Case = { what: string; path: string; key: string; rule: () => FaultRule };
  const cases: Case[] = [
    { what: "GET /v1/pools (registry)", path: "/v1/pools", key: "dev-key", rule: () => ({ kind: "registry", method: "listPools", times: 0 }) },
    { what: "GET /v1/tenant (tenant)", path: "/v1/tenant", key: "dev-key", rule: () => ({ kind: "tenant", name: "dev", method: "describe", times: 0 }) },
    { what: "GET /metrics (registry)", path: "/metrics", key: ADMIN, rule: () => ({ kind: "registry", method: "listPools", times: 0 }) },
    { what: "GET /dashboard/data (registry)", path: "/dashboard/data", key: ADMIN, rule: () => ({ kind: "registry", method: "listPools", times: 0 }) },
    { what: "GET /v1/admin/registry", path: "/v1/admin/registry", key: ADMIN, rule: () => ({ kind: "registry", method: "stats", times: 0 }) },
    { what: "GET /v1/admin/tenants/dev", path: "/v1/admin/tenants/dev", key: ADMIN, rule: () => ({ kind: "tenant", name: "dev", method: "describe", times: 0 }) },
    { what: "GET /v1/admin/tenants", path: "/v1/admin/tenants?limit=5", key: ADMIN, rule: () => ({ kind: "registry", method: "listTenants", times: 0 }) },
  ];

  it.each(cases)("$what: a failure is retried; two answer 503 unavailable", async ({ path, key, rule: make }) => {
    const once = { ...make(), times: 1, error: objectErrors.retryable };
    inject(once);
    expect((await call(path, { key })).status).toBe(200);
    expect(faults!.calls(once)).toBe(2);
    const twice = { ...make(), times: 2, error: objectErrors.storageTimeout };
    inject(twice);
    expect503(await call(path, { key }), "unavailable");
  });

  it("an admin pool read is retried; an admin action (drain) is made at most once", async () => {
    const name = await newPool("oe-admin");
    const describe: FaultRule = { kind: "pool", name: `dev/${name}`, method: "describe", times: 1, error: objectErrors.internal };
    const drain: FaultRule = { kind: "pool", name: `dev/${name}`, method: "drain", times: 1, error: objectErrors.internal };
    inject(describe, drain);
    expect((await call(`/v1/admin/pools/dev/${name}`, { key: ADMIN })).status).toBe(200);
    expect503(await call(`/v1/admin/pools/dev/${name}/drain`, { method: "POST", key: ADMIN }), "unavailable");
    expect([faults!.calls(describe), faults!.calls(drain)]).toEqual([2, 1]);
    expect((await describePool("dev", name)).draining).toBe(false);
  });

  it("authenticating a managed key: a failure is retried; two answer 503, not 401 or 500", async () => {
    const { tenant, key } = await newTenant("oe-auth");
    const once: FaultRule = { kind: "tenant", name: tenant, method: "authenticate", times: 1, error: objectErrors.retryable };
    inject(once);
    expect((await call("/v1/pools", { key })).status).toBe(200);
    expect(faults!.calls(once)).toBe(2);
    inject({ ...once, times: 2 });
    expect503(await call("/v1/pools", { key }), "unavailable");
    inject({ ...once, times: 1, error: objectErrors.overloaded });
    expect503(await call("/v1/pools", { key }), "overloaded");
  });
});
