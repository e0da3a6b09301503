/**
 * What the pool object's single alarm does: every deadline (lease expiry,
 * waiter deadline, idle keep-alive, close retry, reconciliation, idempotency
 * expiry), driven with the pool's clock and runDurableObjectAlarm.
 */
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { PoolObject } from "../../src/pool/object";
import { faultPool } from "../support/pool";

function granted(result: Awaited<ReturnType<PoolObject["acquire"]>>) {
  if (!result.ok) throw new Error(`expected a lease, got ${result.failure.code}: ${result.failure.detail}`);
  return result.value.lease;
}

describe("the pool's alarm", () => {
  it("is armed at the earliest deadline, the next lease expiry", async () => {
    const pool = await faultPool();
    const lease = granted(await pool.acquire({ ttlSeconds: 30 }));
    const alarm = await runInDurableObject(pool.stub, (_object, state) => state.storage.getAlarm());
    expect(alarm).toBe(Date.parse(lease.expiresAt!));
  });

  it("fails a waiter at its deadline with 429 pool_exhausted and a Retry-After from the next expiry", async () => {
    const pool = await faultPool({ maxSessions: 1 });
    granted(await pool.acquire({ ttlSeconds: 60 }));
    const waiter = pool.acquire({ waitSeconds: 5 });
    await pool.advance(5_000);
    expect(await waiter).toMatchObject({ ok: false, failure: { status: 429, code: "pool_exhausted", retryAfter: 55 } });
    expect(await pool.counts()).toMatchObject({ waiting: 0, leased: 1 });
    await pool.expectConsistent();
  });

  it("closes idle sessions beyond minIdle after idleTimeoutSeconds and pings the ones it keeps", async () => {
    const pool = await faultPool({ maxSessions: 2, minIdle: 1, idleTimeoutSeconds: 60 });
    await pool.settled();
    const a = granted(await pool.acquire());
    const b = granted(await pool.acquire());
    await pool.stub.release(a.id);
    await pool.stub.release(b.id);
    await pool.settled();
    expect(await pool.counts()).toMatchObject({ idle: 2 });

    await pool.advance(60_000);
    await pool.settled();
    expect(await pool.counts()).toMatchObject({ idle: 1, closing: 0 });
    expect(pool.provider.closed).toHaveLength(1);
    expect(pool.provider.pings).toHaveLength(1);
    await pool.expectConsistent();
  });

  it("closes and replaces a warm session whose browser died, found by its keep-alive ping", async () => {
    const pool = await faultPool({ maxSessions: 2, minIdle: 1, idleTimeoutSeconds: 60 });
    await pool.settled();
    const [warm] = [...pool.provider.live.keys()];
    pool.provider.crash(warm!);
    await pool.advance(60_000);
    await pool.settled();
    expect(await pool.counts()).toMatchObject({ idle: 1, launching: 0, closing: 0 });
    const [replacement] = [...pool.provider.live.keys()];
    expect(replacement).not.toBe(warm);
    await pool.expectConsistent();
  });

  it("reconciliation frees a leased session whose browser vanished and ends its lease as browser_gone", async () => {
    const pool = await faultPool({ maxSessions: 1 });
    const lease = granted(await pool.acquire({ ttlSeconds: 600 }));
    pool.provider.crash(lease.sessionId!);
    await pool.advance(60_000);
    expect(await pool.stub.getLease(lease.id)).toMatchObject({ ok: true, value: { status: "failed", endReason: "browser_gone" } });
    expect(await pool.counts()).toMatchObject({ leased: 0 });
    const described = await pool.stub.describe();
    expect(described.ok && described.value.lastReconcile).toMatchObject({ vanished: 1 });
    expect(described.ok && described.value.reconciledTotal).toEqual({ vanished: 1, reclosed: 0 });
    expect(granted(await pool.acquire()).sessionId).not.toBe(lease.sessionId);
    await pool.expectConsistent();
  });

  it("retries a failed close with backoff, then frees the slot, and reconciliation closes the browser later", async () => {
    const pool = await faultPool({ maxSessions: 1, reuse: false });
    const lease = granted(await pool.acquire());
    pool.provider.failCloses = 3;
    await pool.stub.release(lease.id);
    await pool.settled();
    expect(await pool.counts()).toMatchObject({ closing: 1 });
    await pool.advance(2_000); // second attempt after 2 s
    await pool.settled();
    expect(await pool.counts()).toMatchObject({ closing: 1 });
    await pool.advance(4_000); // third attempt after 4 s: gives up, frees the slot
    await pool.settled();
    expect(await pool.counts()).toMatchObject({ closing: 0 });
    expect(pool.provider.live.has(lease.sessionId!)).toBe(true);

    await pool.advance(60_000); // reconciliation finds the ended session still running
    await pool.settled();
    expect(pool.provider.live.has(lease.sessionId!)).toBe(false);
    await pool.expectConsistent();
  });

  it("forgets an Idempotency-Key after 24 hours", async () => {
    const pool = await faultPool();
    const first = granted(await pool.acquire({ idempotencyKey: "job-1", fingerprint: "f" }));
    expect(granted(await pool.acquire({ idempotencyKey: "job-1", fingerprint: "f" })).id).toBe(first.id);
    await pool.stub.release(first.id);
    await pool.advance(24 * 60 * 60 * 1000 + 1);
    const later = granted(await pool.acquire({ idempotencyKey: "job-1", fingerprint: "f" }));
    expect(later.id).not.toBe(first.id);
  });
});
