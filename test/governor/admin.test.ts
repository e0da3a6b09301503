/**
 * The account's capacity through the real Worker (admin token): GET and PUT
 * /v1/admin/capacity, and a tenant's weight set with its quota reaching the
 * governor. These use the "account" governor the rest of the suite shares, so
 * they set only limits nothing can reach, put them back, and hold permits of
 * tenants of their own only.
 */
import { env } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import { call } from "../support/http";
import { ADMIN, tenantName } from "../support/tenants";
import { type FaultRule, injectFaults, objectErrors } from "../api/stub-faults";

const account = () => env.GOVERNOR.get(env.GOVERNOR.idFromName("account"));
const weightIn = async (tenant: string) => (await account().describe()).tenants.find((t) => t.tenant === tenant)?.weight;

afterEach(async () => {
  await account().setLimits({ maxConcurrentSessions: null, launchesPerSecond: null });
});

describe("GET and PUT /v1/admin/capacity", () => {
  it("need the admin token, not an API key", async () => {
    for (const method of ["GET", "PUT"]) {
      for (const key of ["dev-key", null]) {
        const reply = await call("/v1/admin/capacity", { method, key, ...(method === "PUT" ? { body: { limits: { launchesPerSecond: 5 } } } : {}) });
        expect(reply.status).toBe(401);
        expect(reply.body.code).toBe("unauthorized");
      }
    }
  });

  it("GET shows the limits, where they come from, usage, the breaker and tenants' shares", async () => {
    const reply = await call("/v1/admin/capacity", { key: ADMIN });
    expect(reply.status).toBe(200);
    const configured = { maxConcurrentSessions: Number(env.ACCOUNT_MAX_CONCURRENT_SESSIONS), launchesPerSecond: Number(env.ACCOUNT_LAUNCHES_PER_SECOND) };
    expect(reply.body).toMatchObject({
      limits: configured,
      configured,
      overrides: { maxConcurrentSessions: null, launchesPerSecond: null },
      platform: null,
      usage: { used: expect.any(Number), headroom: expect.any(Number), launchTokens: expect.any(Number), blockedUntil: null },
      breaker: { state: "closed", streak: expect.any(Number), retryAfterSeconds: 0 },
      tenants: expect.any(Array),
    });
  });

  it("PUT overrides the vars' limits, and null puts the vars back", async () => {
    const set = await call("/v1/admin/capacity", { method: "PUT", key: ADMIN, body: { limits: { maxConcurrentSessions: 100_000, launchesPerSecond: 1000 } } });
    expect(set.status, JSON.stringify(set.body)).toBe(200);
    expect(set.body).toMatchObject({ limits: { maxConcurrentSessions: 100_000, launchesPerSecond: 1000 }, overrides: { maxConcurrentSessions: 100_000, launchesPerSecond: 1000 } });
    // A partial body changes only what it names.
    const partial = await call("/v1/admin/capacity", { method: "PUT", key: ADMIN, body: { limits: { launchesPerSecond: null } } });
    expect(partial.body.overrides).toEqual({ maxConcurrentSessions: 100_000, launchesPerSecond: null });
    expect(partial.body.limits.launchesPerSecond).toBe(Number(env.ACCOUNT_LAUNCHES_PER_SECOND));
    expect((await call("/v1/admin/capacity", { key: ADMIN })).body.overrides.maxConcurrentSessions).toBe(100_000);
  });

  it("PUT refuses bad limits with 400 invalid_request naming the field, changing nothing", async () => {
    const before = (await call("/v1/admin/capacity", { key: ADMIN })).body.overrides;
    for (const [body, field] of [
      [{ limits: { maxConcurrentSessions: 0 } }, "body.limits.maxConcurrentSessions"],
      [{ limits: { maxConcurrentSessions: 2.5 } }, "body.limits.maxConcurrentSessions"],
      [{ limits: { maxConcurrentSessions: 100_001 } }, "body.limits.maxConcurrentSessions"],
      [{ limits: { launchesPerSecond: 0 } }, "body.limits.launchesPerSecond"],
      [{ limits: { launchesPerSecond: -1 } }, "body.limits.launchesPerSecond"],
      [{ limits: { launchesPerSecond: 1001 } }, "body.limits.launchesPerSecond"],
      [{ limits: { launchesPerSecond: "fast" } }, "body.limits.launchesPerSecond"],
      [{ limits: { burst: 3 } }, "body.limits"],
      [{ maxConcurrentSessions: 3 }, "body"],
      [{}, "body.limits"],
    ] as const) {
      const reply = await call("/v1/admin/capacity", { method: "PUT", key: ADMIN, body });
      expect(reply.status, JSON.stringify(body)).toBe(400);
      expect(reply.headers.get("content-type")).toBe("application/problem+json");
      expect(reply.body.code).toBe("invalid_request");
      expect(reply.body.detail).toContain(field);
    }
    const notJson = await call("/v1/admin/capacity", { method: "PUT", key: ADMIN, rawBody: "{}", headers: { "content-type": "text/plain" } });
    expect(notJson.status).toBe(415);
    expect(notJson.body.code).toBe("unsupported_media_type");
    expect((await call("/v1/admin/capacity", { key: ADMIN })).body.overrides).toEqual(before);
  });
});

describe("a tenant's weight", () => {
  it("is part of its quota: 1 by default, set by PUT, back to 1 with null; out-of-range weights are refused", async () => {
    const tenant = tenantName("gw");
    const path = `/v1/admin/tenants/${tenant}`;
    expect((await call(path, { key: ADMIN })).body).toMatchObject({ quota: { weight: 1 }, defaults: { weight: true } });
    expect((await call(path, { method: "PUT", key: ADMIN, body: { weight: 2.5 } })).body).toMatchObject({ quota: { weight: 2.5 }, defaults: { weight: false } });
    for (const weight of [0, -1, 1001, "heavy"]) {
      const reply = await call(path, { method: "PUT", key: ADMIN, body: { weight } });
      expect(reply.status).toBe(400);
      expect(reply.body.detail).toContain("body.weight");
    }
    expect((await call(path, { method: "PUT", key: ADMIN, body: { weight: null } })).body).toMatchObject({ quota: { weight: 1 }, defaults: { weight: true } });
  });

  it("is read by the governor, and read again as soon as an operator changes it", async () => {
    const tenant = tenantName("gw");
    expect((await call(`/v1/admin/tenants/${tenant}`, { method: "PUT", key: ADMIN, body: { weight: 2 } })).status).toBe(200);
    const permitId = crypto.randomUUID();
    expect((await account().acquire({ tenant, pool: "weighed", permitId, kind: "warm" })).granted).toBe(true);
    try {
      expect(await weightIn(tenant)).toBe(2);
      // The PUT tells the governor to forget the cached weight, so the next decision reads 5.
      expect((await call(`/v1/admin/tenants/${tenant}`, { method: "PUT", key: ADMIN, body: { weight: 5 } })).status).toBe(200);
      expect(await weightIn(tenant)).toBe(5);
    } finally {
      await account().release(tenant, "weighed", [permitId]);
    }
  });

  it("is saved even when the governor cannot be told (it reads the weight again when its cache expires)", async () => {
    const tenant = tenantName("gw");
    const rule: FaultRule = { kind: "governor", method: "forgetWeight", times: 2, error: objectErrors.retryable };
    const faults = injectFaults(rule);
    try {
      const reply = await call(`/v1/admin/tenants/${tenant}`, { method: "PUT", key: ADMIN, body: { weight: 3 } });
      expect(reply.status).toBe(200);
      expect(reply.body.quota.weight).toBe(3);
      // Tried twice (a repeatable call is retried once), then given up.
      expect(faults.calls(rule)).toBe(2);
    } finally {
      faults.restore();
    }
  });
});
