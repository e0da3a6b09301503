/**
 * Placement (src/placement.ts, src/api/placement.ts): a pool's location hint
 * reaches the Durable Object namespace's `get()`, through `poolOf` and
 * through `PUT /v1/pools/{pool}`, and is fixed once the pool exists. The
 * Worker is called with an env whose POOL records every `get()`'s options and
 * otherwise is the real namespace: locally the hint changes nothing, so the
 * pool must work as any other.
 */
import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import { placeNamespace } from "../../src/api/placement";
import worker from "../../src/index";
import { DEFAULT_CONFIG, mergeConfig } from "../../src/pool/config";
import { regionHint, REGION_HINTS } from "../../src/placement";
import { poolOf } from "../../src/stubs";
import { call, poolName } from "../support/http";

/** The test's env: POOL is the real namespace, and every `get()` it serves is recorded with its options. */
function recordingEnv(): { env: Env; gets: (DurableObjectNamespaceGetDurableObjectOptions | undefined)[] } {
  const gets: (DurableObjectNamespaceGetDurableObjectOptions | undefined)[] = [];
  const real = env.POOL;
  const POOL = new Proxy(real, {
    get(target, property) {
      if (property === "get") {
        return (id: DurableObjectId, options?: DurableObjectNamespaceGetDurableObjectOptions) => {
          gets.push(options);
          return options === undefined ? target.get(id) : target.get(id, options);
        };
      }
      const value = Reflect.get(target, property);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { env: { ...env, POOL } as Env, gets };
}

/** A request to the Worker with `testEnv`, as the dev tenant. */
async function send(testEnv: Env, method: string, path: string, body?: unknown) {
  const ctx = createExecutionContext();
  const response = await worker.fetch(
    new Request(`https://broker.test${path}`, {
      method,
      headers: { authorization: "Bearer dev-key", ...(body === undefined ? {} : { "content-type": "application/json" }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    }),
    testEnv,
    ctx,
  );
  await waitOnExecutionContext(ctx);
  return { status: response.status, body: (await response.json()) as any };
}

describe("placement", () => {
  it("poolOf passes the location hint to the namespace's get, and none when not given", async () => {
    const { env: testEnv, gets } = recordingEnv();
    const pool = poolName("placed");
    const stub = poolOf(testEnv, "dev", pool, "weur");
    expect(gets).toEqual([{ locationHint: "weur" }]);
    // Locally the hint is a no-op: the object works as any other.
    expect((await stub.configure("dev", pool, { locationHint: "weur" })).ok).toBe(true);
    poolOf(testEnv, "dev", pool);
    expect(gets).toEqual([{ locationHint: "weur" }, undefined]);
    expect((await call(`/v1/pools/${pool}`, { method: "DELETE" })).status).toBe(200);
  });

  it("PUT /v1/pools/{pool} creates the pool through a stub with its locationHint, shows it, and leases from it", async () => {
    const { env: testEnv, gets } = recordingEnv();
    const pool = poolName("placed");
    const created = await send(testEnv, "PUT", `/v1/pools/${pool}`, { maxSessions: 1, locationHint: "weur" });
    expect(created.status, JSON.stringify(created.body)).toBe(200);
    expect(created.body.config).toMatchObject({ maxSessions: 1, locationHint: "weur" });
    // Every get() on the way (the placement check and the creation) carried the hint.
    expect(gets.length).toBeGreaterThan(0);
    expect(gets.every((options) => options?.locationHint === "weur")).toBe(true);

    const lease = await send(testEnv, "POST", `/v1/pools/${pool}/leases`, { ttlSeconds: 30 });
    expect(lease.status, JSON.stringify(lease.body)).toBe(201);
    expect((await call(`/v1/pools/${pool}/leases/${lease.body.id}`, { method: "DELETE" })).status).toBe(200);
    // The released browser is reset for a moment; the pool refuses deletion (409 pool_busy) until then.
    await vi.waitFor(async () => expect((await call(`/v1/pools/${pool}`, { method: "DELETE" })).status).toBe(200), { timeout: 20_000, interval: 250 });
  });

  it("a pool's locationHint is fixed at creation: another, or one for a pool created without, is 409 placement_fixed naming both", async () => {
    const placed = poolName("placed");
    expect((await call(`/v1/pools/${placed}`, { method: "PUT", body: { locationHint: "weur" } })).status).toBe(200);
    const moved = await call(`/v1/pools/${placed}`, { method: "PUT", body: { locationHint: "apac" } });
    expect({ status: moved.status, code: moved.body.code }).toEqual({ status: 409, code: "placement_fixed" });
    expect(moved.body.detail).toContain("weur");
    expect(moved.body.detail).toContain("apac");
    expect((await call(`/v1/pools/${placed}`, { method: "PUT", body: { locationHint: null } })).status).toBe(409);
    // The same hint again, or none at all, is an ordinary config change.
    expect((await call(`/v1/pools/${placed}`, { method: "PUT", body: { locationHint: "weur", maxSessions: 3 } })).status).toBe(200);
    const kept = await call(`/v1/pools/${placed}`, { method: "PUT", body: { maxSessions: 2 } });
    expect(kept.body.config).toMatchObject({ maxSessions: 2, locationHint: "weur" });

    const unplaced = poolName("placed");
    const plain = await call(`/v1/pools/${unplaced}`, { method: "PUT", body: {} });
    expect(plain.body.config.locationHint).toBeNull();
    const late = await call(`/v1/pools/${unplaced}`, { method: "PUT", body: { locationHint: "weur" } });
    expect({ status: late.status, code: late.body.code }).toEqual({ status: 409, code: "placement_fixed" });
    expect(late.body.detail).toContain("without a locationHint");

    const invalid = await call(`/v1/pools/${poolName("placed")}`, { method: "PUT", body: { locationHint: "mars" } });
    expect({ status: invalid.status, code: invalid.body.code }).toEqual({ status: 400, code: "invalid_request" });
    for (const pool of [placed, unplaced]) expect((await call(`/v1/pools/${pool}`, { method: "DELETE" })).status).toBe(200);
  });

  it("the pool object itself never changes a hint it has (the backstop behind the Worker's check)", () => {
    const merged = mergeConfig({ ...DEFAULT_CONFIG, locationHint: "weur" }, { locationHint: "apac" }, 20);
    expect(merged).toMatchObject({ problem: { field: "locationHint" } });
    expect(mergeConfig({ ...DEFAULT_CONFIG, locationHint: "weur" }, { locationHint: "weur", maxSessions: 3 }, 20)).toMatchObject({ config: { locationHint: "weur" } });
  });

  it("maps Steel's regions to location hints", () => {
    expect(REGION_HINTS).toEqual({ lax: "wnam", ord: "enam", iad: "enam", scl: "sam", fra: "weur", nrt: "apac" });
    expect(regionHint("fra")).toBe("weur");
    expect(() => regionHint("ams")).toThrow(/unknown region ams/);
  });

  it("a Steel region places a new namespace pool at its hint, and refuses one placed elsewhere", async () => {
    const { env: testEnv, gets } = recordingEnv();
    const namespace = poolName("region");
    expect(await placeNamespace(testEnv, "dev", namespace, "fra")).toBe("weur");
    expect(gets.every((options) => options?.locationHint === "weur")).toBe(true);
    expect((await call(`/v1/pools/${namespace}`)).body.config.locationHint).toBe("weur");
    // Again with the same region: the pool is there already, nothing changes.
    expect(await placeNamespace(testEnv, "dev", namespace, "fra")).toBe("weur");
    await expect(placeNamespace(testEnv, "dev", namespace, "nrt")).rejects.toMatchObject({
      status: 409,
      code: "placement_fixed",
      detail: expect.stringMatching(/weur.*region nrt \(apac\)/),
    });
    expect((await call(`/v1/pools/${namespace}`, { method: "DELETE" })).status).toBe(200);
  });
});
