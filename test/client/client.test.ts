/**
 * The typed client (client/index.ts) against the real Worker in workerd, with
 * real pool objects and real Chromium: leases, withLease's release on success
 * and on failure, retries that honour Retry-After, and aborts.
 */
import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { BrokerClient, BrokerError, type RetryInfo } from "../../client/index";
import { until } from "../support/api";
import { call, newPool, poolName } from "../support/http";
import { newTenant } from "../support/tenants";

function client(overrides: Partial<ConstructorParameters<typeof BrokerClient>[0]> = {}) {
  return new BrokerClient({
    baseUrl: "https://broker.test/",
    apiKey: "dev-key",
    fetch: (input, init) => SELF.fetch(input, init),
    ...overrides,
  });
}


describe("BrokerClient", () => {
  it("acquires, reads, renews and releases a lease", async () => {
    const name = await newPool("client", { maxSessions: 1 });
    const broker = client();
    const lease = await broker.acquire(name, { ttlSeconds: 30, labels: { job: "client" } });
    expect(lease).toMatchObject({ pool: name, status: "active", labels: { job: "client" } });
    expect(lease.connectUrl).toMatch(/^wss:\/\/broker\.test\/v1\/pools\/.+\/cdp\?token=/);
    expect((await broker.getLease(name, lease.id)).status).toBe("active");
    const renewed = await broker.renew(name, lease.id, { ttlSeconds: 60 });
    expect(Date.parse(renewed.expiresAt!)).toBeGreaterThan(Date.parse(lease.expiresAt!));
    expect((await broker.release(name, lease.id)).status).toBe("released");
  });

  it("withLease releases the lease after fn returns, and after fn throws", async () => {
    const name = await newPool("client", { maxSessions: 1 });
    const broker = client();
    let seen = "";
    const result = await broker.withLease(name, async (lease) => {
      seen = lease.id;
      expect(lease.status).toBe("active");
      return 42;
    });
    expect(result).toBe(42);
    expect((await broker.getLease(name, seen)).status).toBe("released");

    const failure = new Error("the job failed");
    await expect(
      broker.withLease(name, async (lease) => {
        seen = lease.id;
        throw failure;
      }),
    ).rejects.toBe(failure);
    expect((await broker.getLease(name, seen)).status).toBe("released");
  });

  it("retries a 429 after its Retry-After (capped, with jitter) and gets the lease once one is free", async () => {
    const name = await newPool("client", { maxSessions: 1 });
    const holder = client();
    const held = await holder.acquire(name, { ttlSeconds: 60 });
    const retries: RetryInfo[] = [];
    const broker = client({
      // The freed browser is reset before it is handed on: allow a few short retries for that.
      retries: 40,
      maxRetryDelayMs: 50,
      random: () => 0.5,
      onRetry: (info) => {
        retries.push(info);
        // The holder lets go while the client waits to retry.
        if (retries.length === 1) void holder.release(name, held.id);
      },
    });
    const lease = await broker.acquire(name, { waitSeconds: 0 });
    expect(retries[0]).toMatchObject({ attempt: 1, status: 429, code: "pool_exhausted", delayMs: 50 });
    expect(lease.status).toBe("active");
    await broker.release(name, lease.id);
  });

  it("gives up after `retries` with the broker's error", async () => {
    const name = await newPool("client", { maxSessions: 1 });
    const held = await client().acquire(name, { ttlSeconds: 60 });
    const retries: RetryInfo[] = [];
    const broker = client({ retries: 2, maxRetryDelayMs: 1, onRetry: (info) => retries.push(info) });
    const error = await broker.acquire(name, { waitSeconds: 0 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BrokerError);
    expect(error).toMatchObject({ status: 429, code: "pool_exhausted" });
    expect((error as BrokerError).retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(retries).toHaveLength(2);
    await client().release(name, held.id);
  });

  it("does not retry other errors", async () => {
    const retries: RetryInfo[] = [];
    const broker = client({ onRetry: (info) => retries.push(info) });
    const name = await newPool("client", {});
    const error = await broker.getLease(name, crypto.randomUUID()).catch((e: unknown) => e);
    expect(error).toMatchObject({ status: 404, code: "not_found" });
    const invalid = await broker.acquire(name, { ttlSeconds: -1 }).catch((e: unknown) => e);
    expect(invalid).toMatchObject({ status: 400, code: "invalid_request" });
    expect(retries).toEqual([]);
  });

  it("an abort ends a retry wait at once", async () => {
    const name = await newPool("client", { maxSessions: 1 });
    const held = await client().acquire(name, { ttlSeconds: 60 });
    const controller = new AbortController();
    const broker = client({ maxRetryDelayMs: 60_000, onRetry: () => controller.abort(new Error("caller gave up")) });
    await expect(broker.acquire(name, { waitSeconds: 0, signal: controller.signal })).rejects.toThrow("caller gave up");
    await client().release(name, held.id);
  });

  it("a retried acquire with the same Idempotency-Key returns the same lease, never a second one", async () => {
    const name = await newPool("client", { maxSessions: 2 });
    const broker = client();
    const first = await broker.acquire(name, { idempotencyKey: "job-7" });
    const again = await broker.acquire(name, { idempotencyKey: "job-7" });
    expect(again.id).toBe(first.id);
    expect((await call(`/v1/pools/${name}/leases?status=active`)).body.leases).toHaveLength(1);
    await broker.release(name, first.id);
  });

  it("manages pools and reads the tenant's quota: configure, read, list, list leases, release all, delete", async () => {
    const { tenant, key } = await newTenant("client", { maxPools: 3, maxSessions: 4 });
    const broker = client({ apiKey: key });
    const name = poolName("cpool");
    const created = await broker.configurePool(name, { maxSessions: 2, defaultTtlSeconds: 30 });
    expect(created).toMatchObject({ pool: name, config: { maxSessions: 2, defaultTtlSeconds: 30 }, draining: false });
    expect((await broker.getPool(name)).capacity.max).toBe(2);
    expect((await broker.listPools({ limit: 10 })).pools.map((p) => p.pool)).toEqual([name]);
    expect(await broker.tenant()).toMatchObject({ tenant, quota: { maxPools: 3, maxSessions: 4 }, usage: { pools: 1, sessions: 2 } });

    const lease = await broker.acquire(name, { labels: { job: "pools" } });
    const active = await broker.listLeases(name, { status: "active", limit: 5 });
    expect(active.leases.map((l) => l.id)).toEqual([lease.id]);
    const busy = await broker.deletePool(name).catch((error: unknown) => error);
    expect(busy).toBeInstanceOf(BrokerError);
    expect((busy as BrokerError).code).toBe("pool_busy");
    expect(await broker.releaseAll(name)).toEqual({ released: 1 });
    await until(tenant, name, (view) => view.counts.leased === 0 && view.counts.resetting === 0);
    expect(await broker.deletePool(name)).toEqual({ pool: name, deleted: true, closedSessions: 1 });

    const refused = await broker.configurePool(poolName("cpool"), { maxSessions: 5 }).catch((error: unknown) => error);
    expect(refused).toMatchObject({ status: 403, code: "quota_exceeded" });
  });
});
