/**
 * The typed client (client/index.ts) against the real Worker in workerd, with
 * real pool objects and real Chromium: leases, withLease's release on success
 * and on failure, retries that honour Retry-After, and aborts; with a scripted
 * fetch in front of the Worker, which calls retry a network error or a 503.
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

  it("next releases a lease and answers the next one in one call", async () => {
    const name = await newPool("client-next", { maxSessions: 1 });
    const broker = client();
    const first = await broker.acquire(name, { ttlSeconds: 30 });
    const second = await broker.next(name, first.id, { waitSeconds: 30, labels: { job: "2" } });
    expect(second).toMatchObject({ pool: name, status: "active", labels: { job: "2" } });
    expect(second.id).not.toBe(first.id);
    expect((await broker.getLease(name, first.id)).status).toBe("released");
    await broker.release(name, second.id);
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

/**
 * A fetch that follows a script, one step per attempt: "reject" (a network
 * error before the broker saw the request), "lose" (the broker answered, then
 * the connection failed: the answer is lost), "503" (an answer as the Worker
 * gives for an unreachable object), "abort" (rejects as an aborted fetch does),
 * then the real Worker once the script runs out.
 */
function scripted(steps: ("reject" | "lose" | "503" | "abort")[]) {
  const attempts: { method: string; url: string; headers: Record<string, string> }[] = [];
  const lost: unknown[] = [];
  const fetch = async (input: string, init: RequestInit): Promise<Response> => {
    attempts.push({ method: init.method ?? "GET", url: input, headers: { ...(init.headers as Record<string, string>) } });
    const step = steps.shift();
    if (step === "reject") throw new TypeError("fetch failed");
    if (step === "abort") throw new DOMException("The operation was aborted.", "AbortError");
    if (step === "503") {
      const body = { type: "about:blank", title: "Service Unavailable", status: 503, code: "unavailable", detail: "an object could not be reached; retry" };
      return new Response(JSON.stringify(body), { status: 503, headers: { "content-type": "application/problem+json", "retry-after": "1" } });
    }
    const response = await SELF.fetch(input, init);
    if (step === "lose") {
      lost.push(await response.json());
      throw new TypeError("network connection lost");
    }
    return response;
  };
  return { fetch, attempts, lost };
}

describe("BrokerClient: network errors and 503", () => {
  // Retry waits are capped at 1 ms here: these tests are about which calls are retried, not how long they wait.
  const quick = { maxRetryDelayMs: 1 };

  it("a read retries a network error, then succeeds", async () => {
    const name = await newPool("client-net", { maxSessions: 1 });
    const script = scripted(["reject"]);
    const retries: RetryInfo[] = [];
    const broker = client({ ...quick, fetch: script.fetch, onRetry: (info) => retries.push(info) });
    expect((await broker.getPool(name)).pool).toBe(name);
    expect(script.attempts).toHaveLength(2);
    expect(retries).toEqual([{ attempt: 1, status: 0, code: "network_error", delayMs: 1, error: expect.any(TypeError) }]);
  });

  it("acquire retries a network error that lost the broker's answer, with the same Idempotency-Key, and gets that one lease", async () => {
    const name = await newPool("client-net", { maxSessions: 2 });
    const script = scripted(["lose"]);
    const broker = client({ ...quick, fetch: script.fetch });
    const lease = await broker.acquire(name, { ttlSeconds: 60 });
    expect(script.attempts).toHaveLength(2);
    const [first, second] = script.attempts.map((a) => a.headers["idempotency-key"]);
    expect(first).toMatch(/\S/);
    expect(second).toBe(first);
    expect(lease.id).toBe((script.lost[0] as { id: string }).id);
    expect((await call(`/v1/pools/${name}/leases?status=active`)).body.leases.map((l: { id: string }) => l.id)).toEqual([lease.id]);
    await client().release(name, lease.id);
  });

  it("retries a 503 for a read, acquire and release", async () => {
    const name = await newPool("client-net", { maxSessions: 1 });
    const retries: RetryInfo[] = [];
    const onRetry = (info: RetryInfo) => retries.push(info);
    const lease = await client({ ...quick, fetch: scripted(["503"]).fetch, onRetry }).acquire(name);
    expect((await client({ ...quick, fetch: scripted(["503"]).fetch, onRetry }).getLease(name, lease.id)).status).toBe("active");
    expect((await client({ ...quick, fetch: scripted(["503", "reject"]).fetch, onRetry }).release(name, lease.id)).status).toBe("released");
    expect(retries.map((r) => `${r.status} ${r.code}`)).toEqual(["503 unavailable", "503 unavailable", "503 unavailable", "0 network_error"]);
  });

  it("never retries a network error or a 503 for the other writes (deletePool, renew, releaseAll, configurePool)", async () => {
    const name = await newPool("client-net", { maxSessions: 1 });
    const lease = await client().acquire(name, { ttlSeconds: 60 });
    const writes: [string, (broker: BrokerClient) => Promise<unknown>][] = [
      ["deletePool", (broker) => broker.deletePool(name)],
      ["renew", (broker) => broker.renew(name, lease.id, { ttlSeconds: 120 })],
      ["releaseAll", (broker) => broker.releaseAll(name)],
      ["configurePool", (broker) => broker.configurePool(name, { maxSessions: 2 })],
    ];
    for (const [what, write] of writes) {
      for (const step of ["reject", "503"] as const) {
        const script = scripted([step]);
        const retries: RetryInfo[] = [];
        const error = await write(client({ ...quick, fetch: script.fetch, onRetry: (info) => retries.push(info) })).catch((e: unknown) => e);
        if (step === "reject") expect(error, what).toBeInstanceOf(TypeError);
        else expect(error, what).toMatchObject({ status: 503, code: "unavailable" });
        expect({ what, step, attempts: script.attempts.length, retries: retries.length }).toEqual({ what, step, attempts: 1, retries: 0 });
      }
    }
    // Nothing those calls would have done happened (none reached the broker).
    expect((await client().getLease(name, lease.id)).expiresAt).toBe(lease.expiresAt);
    expect((await client().getPool(name)).config.maxSessions).toBe(1);
    await client().release(name, lease.id);
  });

  it("gives up after `retries` network errors with the error fetch threw", async () => {
    const name = await newPool("client-net", {});
    const script = scripted(["reject", "reject", "reject", "reject"]);
    const error = await client({ ...quick, retries: 2, fetch: script.fetch }).getPool(name).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TypeError);
    expect(script.attempts).toHaveLength(3);
  });

  it("an aborted fetch is not retried, and an abort ends a network error's backoff at once", async () => {
    const name = await newPool("client-net", {});
    const aborted = scripted(["abort"]);
    const error = await client({ ...quick, fetch: aborted.fetch }).getPool(name).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: "AbortError" });
    expect(aborted.attempts).toHaveLength(1);

    const controller = new AbortController();
    const waiting = scripted(["reject"]);
    const broker = client({ maxRetryDelayMs: 60_000, fetch: waiting.fetch, onRetry: () => controller.abort(new Error("caller gave up")) });
    await expect(broker.acquire(name, { signal: controller.signal })).rejects.toThrow("caller gave up");
    expect(waiting.attempts).toHaveLength(1);
  });

  it("backs off exponentially without a Retry-After, with jitter, capped by maxRetryDelayMs", async () => {
    const name = await newPool("client-net", {});
    const retries: RetryInfo[] = [];
    const script = scripted(["reject", "reject", "reject"]);
    // random() = 0.5: +12.5 % jitter. The backoff 500, 1000, 2000 ms becomes 563, 1125, 2250, the last capped at 1,500.
    // (These waits are the behaviour under test, so they really pass: about 3 s.)
    const broker = client({ maxRetryDelayMs: 1500, random: () => 0.5, fetch: script.fetch, onRetry: (info) => retries.push(info) });
    expect((await broker.getPool(name)).pool).toBe(name);
    expect(retries.map((r) => r.delayMs)).toEqual([563, 1125, 1500]);
  }, 10_000);
});
