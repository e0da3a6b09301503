/**
 * Problem types that resolve: every problem+json `type` is the absolute URL of
 * its code's entry in the error catalogue the broker itself serves
 * (`<origin>/docs/errors#<code>`), the catalogue page has an entry for every
 * code of src/problems.ts, and every entry says what to do. The errors are
 * real answers of the Worker (SELF.fetch), pools served by the fault provider
 * so that no browser is launched.
 */
import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { ERROR_CODES, type ErrorCode, NEXT_STEPS, PROBLEMS, type ProblemEntry } from "../../src/problems";
import { call, poolName, type Reply } from "../support/http";
import { faultPool } from "../support/pool";
import { ADMIN, newTenant } from "../support/tenants";

const ORIGIN = "https://broker.test";

/** The answer is problem+json for `code`, its status is one the catalogue lists for it, and its type is the code's catalogue URL. */
function expectTyped(reply: Reply, status: number, code: ErrorCode): void {
  expect({ status: reply.status, code: reply.body?.code }).toEqual({ status, code });
  expect(reply.headers.get("content-type")).toMatch(/^application\/problem\+json/);
  expect(reply.body.type).toBe(`${ORIGIN}/docs/errors#${code}`);
  expect(Object.keys(PROBLEMS[code].statuses)).toContain(String(status));
}

describe("a problem's type is the URL of its entry in the broker's error catalogue", () => {
  it("400 invalid_request, 401 unauthorized, 404 not_found (route and pool), 413, 415", async () => {
    expectTyped(await call("/v1/pools/Bad_Pool/leases", { method: "POST" }), 400, "invalid_request");
    expectTyped(await call("/v1/pools/p/leases", { method: "POST", key: null }), 401, "unauthorized");
    expectTyped(await call("/v1/admin/tenants", { key: "not-the-admin-token" }), 401, "unauthorized");
    expectTyped(await call("/v1/nothing-here"), 404, "not_found");
    expectTyped(await call(`/v1/pools/${poolName("pt")}`), 404, "not_found");
    expectTyped(await call("/v1/pools/p", { method: "PUT", body: { labels: { big: "x".repeat(17 * 1024) } } }), 413, "payload_too_large");
    expectTyped(await call("/v1/pools/p/leases", { method: "POST", rawBody: "{}", headers: { "content-type": "text/plain" } }), 415, "unsupported_media_type");
  });

  it("403 quota_exceeded", async () => {
    const { key } = await newTenant("pt-quota", { maxPools: 1, maxSessions: 2 });
    expectTyped(await call(`/v1/pools/${poolName("pt")}`, { method: "PUT", body: { maxSessions: 3 }, key }), 403, "quota_exceeded");
  });

  it("409 lease_not_active and idempotency_key_reused, 429 pool_exhausted, 503 pool_draining", async () => {
    const pool = await faultPool({ maxSessions: 1 });
    const leases = `/v1/pools/${pool.name}/leases`;
    const first = await call(leases, { method: "POST", headers: { "idempotency-key": "pt-1" }, body: { ttlSeconds: 30 } });
    expect(first.status).toBe(201);
    expectTyped(await call(leases, { method: "POST", headers: { "idempotency-key": "pt-1" }, body: { ttlSeconds: 31 } }), 409, "idempotency_key_reused");
    expectTyped(await call(leases, { method: "POST" }), 429, "pool_exhausted");
    await call(`${leases}/${first.body.id}`, { method: "DELETE" });
    expectTyped(await call(`${leases}/${first.body.id}/renew`, { method: "POST" }), 409, "lease_not_active");
    expect((await call(`/v1/admin/pools/dev/${pool.name}/drain`, { method: "POST", key: ADMIN })).status).toBe(200);
    expectTyped(await call(leases, { method: "POST" }), 503, "pool_draining");
  });

  it("is built from the origin the request was made to", async () => {
    const response = await SELF.fetch("http://localhost:8787/nothing-here");
    expect(response.status).toBe(404);
    expect(((await response.json()) as { type: string }).type).toBe("http://localhost:8787/docs/errors#not_found");
  });
});

describe("GET /docs/errors", () => {
  it("answers HTML with an entry (id = code) for every code of the catalogue, under the /docs CSP", async () => {
    const response = await SELF.fetch(`${ORIGIN}/docs/errors`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/html/);
    expect(response.headers.get("content-security-policy")).toBe("default-src 'none'; style-src 'unsafe-inline'");
    const html = await response.text();
    const ids = [...html.matchAll(/<section[^>]* id="([^"]+)"/g)].map((m) => m[1]);
    expect(ids).toEqual(ERROR_CODES);
    for (const code of ERROR_CODES) expect(html).toContain(`id="${code}"`);
    expect(html).not.toMatch(/<script/i);
    expect(html).toContain('href="/docs"');
  });

  it("is linked from the API reference (/docs), which still renders", async () => {
    const response = await SELF.fetch(`${ORIGIN}/docs`);
    expect(response.status).toBe(200);
    const html = await response.text();
    expect(html).toContain('href="/docs/errors"');
    expect(html).toContain('data-route="GET /docs/errors"');
  });

  it("/openapi.json's Problem schema lists exactly the catalogue's codes", async () => {
    const doc = (await (await SELF.fetch(`${ORIGIN}/openapi.json`)).json()) as any;
    const code = doc.components.schemas.Problem.properties.code;
    expect(code.oneOf.map((entry: { const: string }) => entry.const)).toEqual(ERROR_CODES);
    expect(doc.paths["/docs/errors"].get.security).toEqual([]);
  });
});

describe("the catalogue (src/problems.ts)", () => {
  it.each(ERROR_CODES)("%s has a title, at least one status with when it happens, and what to do", (code) => {
    const entry: ProblemEntry = PROBLEMS[code];
    expect(code).toMatch(/^[a-z][a-z_]*$/);
    expect(entry.title.trim()).not.toBe("");
    const statuses = Object.entries(entry.statuses);
    expect(statuses.length).toBeGreaterThan(0);
    for (const [status, when] of statuses) {
      expect(Number(status)).toBeGreaterThanOrEqual(400);
      expect(String(when).trim().length).toBeGreaterThan(10);
    }
    expect(Object.keys(NEXT_STEPS)).toContain(entry.next);
    expect(entry.todo.trim().length).toBeGreaterThan(10);
  });

  it("an answer that may carry Retry-After (429, 503) is one the caller retries", () => {
    for (const code of ERROR_CODES) {
      const entry: ProblemEntry = PROBLEMS[code];
      const statuses = Object.keys(entry.statuses).map(Number);
      if (statuses.every((s) => s === 429 || s === 503)) expect(entry.next, code).toBe("retry");
    }
  });
});
