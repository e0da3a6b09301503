/**
 * Every error of the API over HTTP: the status, the stable `code`, a detail
 * that says what to fix, `application/problem+json`, and no change of state.
 * Launch failures and the platform limit are injected with the fault provider;
 * everything else runs against pools whose browsers are real Chromium.
 */
import { MAX_STATE_BYTES } from "../../src/browser/state";
import { describe, expect, it } from "vitest";
import { describePool, expectConsistent, until } from "../support/api";
import { FaultProvider } from "../support/fault-provider";
import { call, DEV_KEY, poolName, type Reply } from "../support/http";
import { faultPool, poolStub } from "../support/pool";

function expectProblem(reply: Reply, status: number, code: string, detail?: RegExp): void {
  expect({ status: reply.status, code: reply.body?.code }).toEqual({ status, code });
  expect(reply.headers.get("content-type")).toMatch(/^application\/problem\+json/);
  expect(reply.body).toMatchObject({ type: `https://broker.test/docs/errors#${code}`, title: expect.any(String), status, detail: expect.any(String) });
  expect(JSON.stringify(reply.body)).not.toMatch(/\bat .*\.(ts|js):\d+/); // no stack trace
  if (detail) expect(reply.body.detail).toMatch(detail);
}

/** A pool served by the fault provider (no browsers launched), addressable over HTTP as tenant dev. */
async function quietPool(config = {}) {
  return faultPool(config, new FaultProvider());
}

describe("401 unauthorized", () => {
  it.each([
    ["no Authorization header", { key: null }],
    ["an unknown key", { key: "not-a-key" }],
    ["a non-Bearer scheme", { key: null, headers: { authorization: `Basic ${btoa(`${DEV_KEY}:`)}` } }],
    ["an empty Bearer token", { key: "" }],
  ])("%s", async (_what, options) => {
    const name = poolName();
    const reply = await call(`/v1/pools/${name}/leases`, { method: "POST", ...options });
    expectProblem(reply, 401, "unauthorized");
    expect(reply.headers.get("www-authenticate")).toMatch(/^Bearer/);
    // Nothing was created on the caller's behalf.
    expect(await poolStub("dev", name).describe()).toMatchObject({ ok: false, failure: { status: 404 } });
  });
});

describe("400 invalid_request names the field", () => {
  const lease = "00000000-0000-4000-8000-000000000000";
  it.each([
    ["a pool name with capitals", "POST", "/v1/pools/Bad_Pool/leases", undefined, /path\.pool/],
    ["a pool name that is too long", "GET", `/v1/pools/${"a".repeat(64)}`, undefined, /path\.pool/],
    ["a lease id that is not a UUID", "GET", "/v1/pools/p/leases/42", undefined, /path\.id/],
    ["ttlSeconds as a string", "POST", "/v1/pools/p/leases", { ttlSeconds: "60" }, /body\.ttlSeconds/],
    ["ttlSeconds of 0", "POST", "/v1/pools/p/leases", { ttlSeconds: 0 }, /body\.ttlSeconds/],
    ["ttlSeconds above the hard limit", "POST", "/v1/pools/p/leases", { ttlSeconds: 86_401 }, /body\.ttlSeconds/],
    ["waitSeconds above 60", "POST", "/v1/pools/p/leases", { waitSeconds: 61 }, /body\.waitSeconds/],
    ["a fractional waitSeconds", "POST", "/v1/pools/p/leases", { waitSeconds: 1.5 }, /body\.waitSeconds/],
    ["an unknown field", "POST", "/v1/pools/p/leases", { ttl: 60 }, /body.*ttl/],
    ["too many labels", "POST", "/v1/pools/p/leases", { labels: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, "v"])) }, /body\.labels.*16/],
    ["a label key with a space", "POST", "/v1/pools/p/leases", { labels: { "a b": "v" } }, /body\.labels/],
    ["a body that is an array", "POST", "/v1/pools/p/leases", [1, 2], /body/],
    ["renew with a negative ttl", "POST", `/v1/pools/p/leases/${lease}/renew`, { ttlSeconds: -1 }, /body\.ttlSeconds/],
    ["a list limit of 0", "GET", "/v1/pools/p/leases?limit=0", undefined, /query\.limit/],
    ["a list status that does not exist", "GET", "/v1/pools/p/leases?status=lost", undefined, /query\.status/],
    ["an unknown query parameter", "GET", "/v1/pools/p/leases?sort=asc", undefined, /query/],
    ["maxSessions of 0", "PUT", "/v1/pools/p", { maxSessions: 0 }, /body\.maxSessions/],
    ["maxSessions above the hard maximum", "PUT", "/v1/pools/p", { maxSessions: 10_000 }, /body\.maxSessions/],
    ["minIdle above maxSessions", "PUT", "/v1/pools/p", { maxSessions: 2, minIdle: 3 }, /minIdle/],
    ["an unknown config field", "PUT", "/v1/pools/p", { size: 3 }, /body/],
  ])("%s", async (_what, method, path, body, detail) => {
    const reply = await call(path, { method, body });
    expectProblem(reply, 400, "invalid_request", detail);
  });

  it("malformed JSON", async () => {
    const reply = await call("/v1/pools/p/leases", { method: "POST", rawBody: '{"ttlSeconds": 6', headers: { "content-type": "application/json" } });
    expectProblem(reply, 400, "invalid_request", /not valid JSON/);
  });

  it("an Idempotency-Key with control characters or over 255 characters", async () => {
    for (const key of ["has space", "x".repeat(256)]) {
      const reply = await call("/v1/pools/p/leases", { method: "POST", headers: { "idempotency-key": key } });
      expectProblem(reply, 400, "invalid_request", /Idempotency-Key/);
    }
  });

  it("leaves the pool untouched", async () => {
    const pool = await quietPool({ maxSessions: 1 });
    const before = await describePool("dev", pool.name);
    await call(`/v1/pools/${pool.name}/leases`, { method: "POST", body: { ttlSeconds: "soon" } });
    await call(`/v1/pools/${pool.name}`, { method: "PUT", body: { maxSessions: 1, minIdle: 5 } });
    const after = await describePool("dev", pool.name);
    expect(after.counts).toEqual(before.counts);
    expect(after.config).toEqual(before.config);
    expect(pool.provider.launches).toBe(0);
  });
});

describe("404 not_found", () => {
  it("an unknown lease, for read, renew and release", async () => {
    const pool = await quietPool();
    const path = `/v1/pools/${pool.name}/leases/${crypto.randomUUID()}`;
    expectProblem(await call(path), 404, "not_found", /lease/);
    expectProblem(await call(`${path}/renew`, { method: "POST" }), 404, "not_found");
    expectProblem(await call(path, { method: "DELETE" }), 404, "not_found");
  });

  it("a pool that was never used", async () => {
    expectProblem(await call(`/v1/pools/${poolName()}`), 404, "not_found", /pool/);
  });

  it("an unknown route or method", async () => {
    expectProblem(await call("/v1/nothing-here"), 404, "not_found");
    expectProblem(await call("/v2/pools/p/leases"), 404, "not_found");
    expectProblem(await call("/v1/pools/p/leases/x/y/z"), 404, "not_found");
  });
});

describe("409 conflicts", () => {
  it("lease_not_active: renewing a released lease, and the lease stays released", async () => {
    const pool = await quietPool();
    const lease = (await call(`/v1/pools/${pool.name}/leases`, { method: "POST" })).body;
    await call(`/v1/pools/${pool.name}/leases/${lease.id}`, { method: "DELETE" });
    expectProblem(await call(`/v1/pools/${pool.name}/leases/${lease.id}/renew`, { method: "POST" }), 409, "lease_not_active", /released/);
    expect((await call(`/v1/pools/${pool.name}/leases/${lease.id}`)).body.status).toBe("released");
  });

  it("pool_busy: shrinking maxSessions below the sessions in use, and the config is unchanged", async () => {
    const pool = await quietPool({ maxSessions: 3 });
    await call(`/v1/pools/${pool.name}/leases`, { method: "POST" });
    await call(`/v1/pools/${pool.name}/leases`, { method: "POST" });
    const reply = await call(`/v1/pools/${pool.name}`, { method: "PUT", body: { maxSessions: 1 } });
    expectProblem(reply, 409, "pool_busy", /maxSessions 1/);
    expect(reply.headers.get("retry-after")).toBe("1");
    expect((await describePool("dev", pool.name)).config.maxSessions).toBe(3);
    await expectConsistent("dev", pool.name);
  });
});

describe("413 and 415", () => {
  it("413 payload_too_large for a body over 16 KiB, before anything is parsed", async () => {
    const pool = await quietPool();
    const reply = await call(`/v1/pools/${pool.name}`, { method: "PUT", body: { labels: { big: "x".repeat(17 * 1024) } } });
    expectProblem(reply, 413, "payload_too_large", /16384 bytes/);
    expect(pool.provider.launches).toBe(0);
  });

  it("413 for an acquire over 16 KiB + 512 KiB (a body that may carry a browser state), before anything is parsed", async () => {
    const pool = await quietPool();
    const reply = await call(`/v1/pools/${pool.name}/leases`, { method: "POST", body: { labels: { big: "x".repeat(MAX_STATE_BYTES + 17 * 1024) } } });
    expectProblem(reply, 413, "payload_too_large", new RegExp(`${MAX_STATE_BYTES + 16 * 1024} bytes`));
    expect(pool.provider.launches).toBe(0);
  });

  it("415 unsupported_media_type for a body that is not JSON", async () => {
    const pool = await quietPool();
    for (const type of ["text/plain", "application/x-www-form-urlencoded"]) {
      const reply = await call(`/v1/pools/${pool.name}/leases`, { method: "POST", rawBody: '{"ttlSeconds":60}', headers: { "content-type": type } });
      expectProblem(reply, 415, "unsupported_media_type", /application\/json/);
    }
    expect(pool.provider.launches).toBe(0);
  });
});

describe("429 pool_exhausted", () => {
  it("when no session is free and the caller will not wait, with Retry-After from the next expiry", async () => {
    const pool = await quietPool({ maxSessions: 1 });
    await call(`/v1/pools/${pool.name}/leases`, { method: "POST", body: { ttlSeconds: 40 } });
    const reply = await call(`/v1/pools/${pool.name}/leases`, { method: "POST" });
    expectProblem(reply, 429, "pool_exhausted");
    const retryAfter = Number(reply.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThanOrEqual(39);
    expect(retryAfter).toBeLessThanOrEqual(40);
    expect((await describePool("dev", pool.name)).counts).toMatchObject({ leased: 1, waiting: 0 });
  });

  it("when the wait queue is full (maxWaiters)", async () => {
    const pool = await quietPool({ maxSessions: 1, maxWaiters: 1 });
    const holder = (await call(`/v1/pools/${pool.name}/leases`, { method: "POST" })).body;
    const queued = call(`/v1/pools/${pool.name}/leases`, { method: "POST", body: { waitSeconds: 30 } });
    // The queued request passes the Worker (auth, rate limit) before it reaches the pool: wait for it there.
    await until("dev", pool.name, (view) => view.counts.waiting === 1);
    const refused = await call(`/v1/pools/${pool.name}/leases`, { method: "POST", body: { waitSeconds: 30 } });
    expectProblem(refused, 429, "pool_exhausted", /queue/);
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    await call(`/v1/pools/${pool.name}/leases/${holder.id}`, { method: "DELETE" });
    expect((await queued).status).toBe(201);
  });
});

describe("502/503 browser_unavailable", () => {
  it("502 when the launch fails, and the slot is free again", async () => {
    const pool = await quietPool({ maxSessions: 1 });
    pool.provider.plan = [{ kind: "fail", message: "Chromium crashed at startup\n    at launch (chrome.js:1:1)" }];
    const reply = await call(`/v1/pools/${pool.name}/leases`, { method: "POST" });
    expectProblem(reply, 502, "browser_unavailable", /Chromium crashed at startup/);
    expect(reply.body.detail).not.toContain("chrome.js");
    expect((await describePool("dev", pool.name)).counts).toMatchObject({ launching: 0, leased: 0 });
    expect((await call(`/v1/pools/${pool.name}/leases`, { method: "POST" })).status).toBe(201);
  });

  it("503 with Retry-After when the platform's browser limit is hit", async () => {
    const pool = await quietPool({ maxSessions: 1 });
    pool.provider.plan = [{ kind: "limit", retryAfterSeconds: 7 }];
    const reply = await call(`/v1/pools/${pool.name}/leases`, { method: "POST" });
    expectProblem(reply, 503, "browser_unavailable", /limit/);
    expect(Number(reply.headers.get("retry-after"))).toBe(7);
    expect((await describePool("dev", pool.name)).counts).toMatchObject({ launching: 0, leased: 0 });
    await expectConsistent("dev", pool.name);
  });
});
