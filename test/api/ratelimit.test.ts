/**
 * The per-key request rate limit: `429 rate_limited` with Retry-After, counted
 * per key, through the Rate Limiting binding (here the local simulation of a
 * binding limited to 5 requests per 10 s) or, where no binding is bound, the
 * tenant object's fallback counter. The Worker is called directly with the
 * test's env, so each test picks its limiter; everything else is real.
 */
import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import worker from "../../src/index";
import { newKey, newTenant } from "../support/tenants";

type TestEnv = Env & { TIGHT_RATE_LIMITER: RateLimit };
const testEnv = env as TestEnv;

async function get(key: string, overrides: Partial<Record<keyof TestEnv, unknown>>, path = "/v1/pools") {
  const ctx = createExecutionContext();
  const response = await worker.fetch(
    new Request(`https://broker.test${path}`, { headers: { authorization: `Bearer ${key}` } }),
    { ...testEnv, ...overrides } as Env,
    ctx,
  );
  await waitOnExecutionContext(ctx);
  const body = (await response.json()) as { code?: string; detail?: string };
  return { status: response.status, retryAfter: response.headers.get("retry-after"), type: response.headers.get("content-type"), body };
}

/**
 * Sends requests until one is refused. A limit of `limit` per fixed window
 * lets at most `limit` through in any window, so the first `limit` always
 * pass and a refusal comes within 2 × limit + 1 requests even if a window ends
 * in between.
 */
async function untilRefused(key: string, limit: number, overrides: Partial<Record<keyof TestEnv, unknown>>) {
  const statuses: number[] = [];
  for (let i = 0; i < 2 * limit + 1; i++) {
    const reply = await get(key, overrides);
    statuses.push(reply.status);
    if (reply.status === 429) return { statuses, refused: reply };
  }
  return { statuses, refused: undefined };
}

describe("per-key rate limit", () => {
  it("answers 429 rate_limited with Retry-After once a key is over the binding's limit", async () => {
    const { key } = await newTenant("rl-binding");
    const { statuses, refused } = await untilRefused(key, 5, { RATE_LIMITER: testEnv.TIGHT_RATE_LIMITER });
    expect(statuses.slice(0, 5)).toEqual([200, 200, 200, 200, 200]);
    expect(refused, `statuses: ${statuses.join(",")}`).toBeDefined();
    expect(refused!.type).toBe("application/problem+json");
    expect(refused!.body.code).toBe("rate_limited");
    expect(refused!.body.detail).toContain("Retry-After");
    expect(Number(refused!.retryAfter)).toBe(10);
  });

  it("counts each key on its own: another key of the same tenant is not slowed down", async () => {
    const { tenant, key } = await newTenant("rl-keys");
    const other = await newKey(tenant, "other");
    const overrides = { RATE_LIMITER: testEnv.TIGHT_RATE_LIMITER };
    expect((await untilRefused(key, 5, overrides)).refused).toBeDefined();
    expect((await get(other.key, overrides)).status).toBe(200);
  });

  it("falls back to the tenant object's counter where no binding is bound, with an exact Retry-After", async () => {
    const { key } = await newTenant("rl-fallback");
    const overrides = { RATE_LIMITER: undefined, RATE_LIMIT_REQUESTS: "3", RATE_LIMIT_PERIOD_SECONDS: "60" };
    const { statuses, refused } = await untilRefused(key, 3, overrides);
    expect(statuses.slice(0, 3)).toEqual([200, 200, 200]);
    expect(refused, `statuses: ${statuses.join(",")}`).toBeDefined();
    expect(refused!.body.code).toBe("rate_limited");
    const retryAfter = Number(refused!.retryAfter);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
  });

  it("applies the fallback to keys from API_KEYS too", async () => {
    // dev2-key's fallback window is counted in tenant dev2's object; a fresh limit value keeps it apart from other runs.
    const overrides = { RATE_LIMITER: undefined, RATE_LIMIT_REQUESTS: "2", RATE_LIMIT_PERIOD_SECONDS: "10" };
    const { statuses, refused } = await untilRefused("dev2-key", 2, overrides);
    expect(statuses.slice(0, 2)).toEqual([200, 200]);
    expect(refused?.body.code).toBe("rate_limited");
  });

  it("is off when RATE_LIMIT_REQUESTS is 0", async () => {
    const { key } = await newTenant("rl-off");
    for (const limiter of [testEnv.TIGHT_RATE_LIMITER, undefined]) {
      for (let i = 0; i < 12; i++) expect((await get(key, { RATE_LIMITER: limiter, RATE_LIMIT_REQUESTS: "0" })).status).toBe(200);
    }
  });

  it("never counts requests that fail authentication against a key", async () => {
    const { key } = await newTenant("rl-auth");
    const overrides = { RATE_LIMITER: testEnv.TIGHT_RATE_LIMITER };
    for (let i = 0; i < 8; i++) expect((await get(`${key}x`, overrides)).status).toBe(401);
    expect((await get(key, overrides)).status).toBe(200);
  });
});
