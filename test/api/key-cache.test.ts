/**
 * MANAGED_KEY_CACHE_MS: an operator's opt-in trade of revocation latency for
 * one tenant-object call per request. Off by default (keys.test.ts: a revoked
 * key fails with the very next request); set, a key found valid passes for at
 * most that long (never more than 1 s) without the tenant object being asked,
 * and a revoked key is refused once the window has passed. The Worker is
 * called directly with the test's env, so each test picks the setting.
 */
import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import worker from "../../src/index";
import { keyCacheMs, MAX_KEY_CACHE_MS } from "../../src/api/auth";
import { call } from "../support/http";
import { ADMIN, newTenant } from "../support/tenants";

async function get(key: string, overrides: Partial<Record<keyof Env, unknown>>): Promise<number> {
  const ctx = createExecutionContext();
  const response = await worker.fetch(new Request("https://broker.test/v1/pools", { headers: { authorization: `Bearer ${key}` } }), { ...env, ...overrides } as Env, ctx);
  await waitOnExecutionContext(ctx);
  await response.arrayBuffer();
  return response.status;
}

async function revoke(tenant: string, keyId: string): Promise<void> {
  expect((await call(`/v1/admin/tenants/${tenant}/keys/${keyId}`, { method: "DELETE", key: ADMIN })).status).toBe(200);
}

describe("MANAGED_KEY_CACHE_MS", () => {
  it("lets a revoked key pass only within the window after it was last found valid, then refuses it", async () => {
    const { tenant, key, keyId } = await newTenant("keycache");
    const cached = { MANAGED_KEY_CACHE_MS: "1000" };
    const checkedAt = Date.now();
    expect(await get(key, cached)).toBe(200);
    await revoke(tenant, keyId);

    // Within the window the tenant's object is not asked: the revoked key still passes (what the setting gives up).
    const passed = await get(key, cached);
    const askedAt = Date.now();
    if (askedAt < checkedAt + MAX_KEY_CACHE_MS) expect(passed).toBe(200);
    // Without the cache the same isolate asks the object, which refuses the key at once.
    expect(await get(key, { MANAGED_KEY_CACHE_MS: "0" })).toBe(401);

    // The window is a clock: once it has passed, the object is asked again and refuses the key.
    await scheduler.wait(Math.max(0, checkedAt + MAX_KEY_CACHE_MS + 50 - Date.now()));
    expect(await get(key, cached)).toBe(401);
    expect(await get(key, cached)).toBe(401);
  });

  it("asks the tenant's object every time where it counts the requests (no Rate Limiting binding)", async () => {
    const { tenant, key, keyId } = await newTenant("keycachefb");
    const noBinding = { MANAGED_KEY_CACHE_MS: "1000", RATE_LIMITER: undefined };
    expect(await get(key, noBinding)).toBe(200);
    await revoke(tenant, keyId);
    expect(await get(key, noBinding)).toBe(401);
  });

  it("never caches a refusal: a key refused once passes as soon as it is valid", async () => {
    const { key } = await newTenant("keycacheneg");
    const cached = { MANAGED_KEY_CACHE_MS: "1000" };
    const forged = `${key.slice(0, -4)}AAAA` === key ? `${key.slice(0, -4)}BBBB` : `${key.slice(0, -4)}AAAA`;
    expect(await get(forged, cached)).toBe(401);
    expect(await get(key, cached)).toBe(200);
    expect(await get(forged, cached)).toBe(401);
  });

  it.each([
    [undefined, 0],
    ["0", 0],
    ["250", 250],
    ["60000", MAX_KEY_CACHE_MS],
    ["-5", 0],
    ["soon", 0],
  ])("reads %s as %i ms", (value, ms) => {
    expect(keyCacheMs({ ...env, MANAGED_KEY_CACHE_MS: value } as unknown as Env)).toBe(ms);
  });
});
