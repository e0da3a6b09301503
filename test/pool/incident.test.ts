/**
 * The incident's edge cases: every way a reservation can be left dangling
 * across one of the pool object's awaits, each driven deliberately with the
 * fault-injecting provider and the pool's clock, and each ending with the pool
 * consistent and no slot stuck.
 */
import { abortAllDurableObjects, evictDurableObject, runInDurableObject } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import { providerFactory } from "../../src/browser/factory";
import type { PoolObject } from "../../src/pool/object";
import { FaultProvider } from "../support/fault-provider";
import { faultPool, flush, granted } from "../support/pool";

const realFactory = providerFactory.create;
afterEach(() => {
  providerFactory.create = realFactory;
});


describe("launch fails while reserved", () => {
  it("frees the slot and answers 502 browser_unavailable", async () => {
    const pool = await faultPool({ maxSessions: 1 });
    pool.provider.plan = [{ kind: "fail", message: "chromium exploded" }];
    const result = await pool.acquire();
    expect(result).toMatchObject({ ok: false, failure: { status: 502, code: "browser_unavailable" } });
    expect(await pool.counts()).toMatchObject({ launching: 0, leased: 0, waiting: 0 });
    await pool.expectConsistent();
    // The slot really is free: the next caller gets a browser.
    expect(granted(await pool.acquire()).status).toBe("active");
  });

  it("fails the waiter it was for and launches for the next waiter in the freed slot", async () => {
    const pool = await faultPool({ maxSessions: 1 });
    pool.provider.defaultPlan = { kind: "manual" };
    const first = pool.acquire({ waitSeconds: 10 });
    const firstLaunch = await pool.nextLaunch();
    const second = pool.acquire({ waitSeconds: 10 });
    await flush(pool.stub);
    expect(await pool.counts()).toMatchObject({ launching: 1, waiting: 2 });

    await pool.inside(() => firstLaunch.fail("boom"));
    expect(await first).toMatchObject({ ok: false, failure: { status: 502, code: "browser_unavailable" } });
    const secondLaunch = await pool.nextLaunch();
    const sessionId = await pool.inside(() => secondLaunch.succeed());
    expect(granted(await second).sessionId).toBe(sessionId);
    await pool.expectConsistent();
  });

  it("answers 503 with Retry-After and pauses launches when the platform limit is hit", async () => {
    const pool = await faultPool({ maxSessions: 2 });
    pool.provider.plan = [{ kind: "limit", retryAfterSeconds: 7 }];
    expect(await pool.acquire()).toMatchObject({ ok: false, failure: { status: 503, code: "browser_unavailable", retryAfter: 7 } });
    // While paused, a caller that will not wait is told at once, without a launch.
    const launchesBefore = pool.provider.launches;
    expect(await pool.acquire()).toMatchObject({ ok: false, failure: { status: 503, code: "browser_unavailable" } });
    expect(pool.provider.launches).toBe(launchesBefore);
    await pool.advance(7_000);
    expect(granted(await pool.acquire()).status).toBe("active");
    await pool.expectConsistent();
  });
});

describe("launch hangs past its timeout", () => {
  it("fails the caller with 503 at the deadline and closes the browser if it arrives late", async () => {
    const pool = await faultPool({ maxSessions: 1, launchTimeoutSeconds: 5 });
    pool.provider.defaultPlan = { kind: "manual" };
    const pending = pool.acquire();
    const launch = await pool.nextLaunch();

    await pool.advance(5_000);
    expect(await pending).toMatchObject({ ok: false, failure: { status: 503, code: "browser_unavailable" } });
    expect(await pool.counts()).toMatchObject({ launching: 0, waiting: 0 });
    await pool.expectConsistent();

    const lateId = await pool.inside(() => launch.succeed());
    await pool.effectsDone();
    expect(pool.provider.closed).toContain(lateId);
    expect(await pool.counts()).toMatchObject({ launching: 0, idle: 0, leased: 0 });
    await pool.expectConsistent();
  });

  it("never leaves a hung launch holding the slot", async () => {
    const pool = await faultPool({ maxSessions: 1, launchTimeoutSeconds: 3 });
    pool.provider.plan = [{ kind: "hang" }];
    const pending = pool.acquire({ waitSeconds: 1 });
    await pool.advance(3_000);
    expect((await pending).ok).toBe(false);
    expect(granted(await pool.acquire()).status).toBe("active");
    await pool.expectConsistent();
  });
});

describe("release while launching", () => {
  it("a launch that lands after its caller was served and released goes idle, not to a dead lease", async () => {
    const pool = await faultPool({ maxSessions: 2 });
    const holder = granted(await pool.acquire());
    pool.provider.defaultPlan = { kind: "manual" };
    const waiter = pool.acquire({ waitSeconds: 10 });
    const launch = await pool.nextLaunch();

    // The holder releases first: its session is reset and handed to the waiter,
    // whose own launch is still in flight.
    await pool.stub.release(holder.id);
    const served = granted(await waiter);
    expect(served.sessionId).toBe(holder.sessionId);
    await pool.stub.release(served.id);

    const lateId = await pool.inside(() => launch.succeed());
    await pool.effectsDone();
    const lease = await pool.stub.getLease(served.id);
    expect(lease).toMatchObject({ ok: true, value: { status: "released", sessionId: holder.sessionId } });
    expect(await pool.counts()).toMatchObject({ launching: 0, idle: 2, leased: 0, waiting: 0 });
    expect(pool.provider.live.has(lateId)).toBe(true);
    await pool.expectConsistent();
  });

  it("releasing a waiting lease cancels it and its launch still lands safely", async () => {
    const pool = await faultPool({ maxSessions: 1 });
    pool.provider.defaultPlan = { kind: "manual" };
    const waiting = pool.acquire({ waitSeconds: 10 });
    const launch = await pool.nextLaunch();
    const listed = await pool.stub.listLeases({ status: "waiting", limit: 10 });
    expect(listed.ok && listed.value.leases.length).toBe(1);
    const leaseId = listed.ok ? listed.value.leases[0]!.id : "";

    expect(await pool.stub.release(leaseId)).toMatchObject({ ok: true, value: { status: "failed", endReason: "cancelled" } });
    expect((await waiting).ok).toBe(false);
    await pool.inside(() => launch.succeed());
    await pool.effectsDone();
    expect(await pool.counts()).toMatchObject({ launching: 0, idle: 1, leased: 0, waiting: 0 });
    await pool.expectConsistent();
  });
});

describe("client disconnects while waiting", () => {
  it("gives up its place; the next waiter is served", async () => {
    const pool = await faultPool({ maxSessions: 1 });
    const holder = granted(await pool.acquire());
    const goneId = crypto.randomUUID();
    const gone = pool.acquire({ leaseId: goneId, waitSeconds: 30 });
    const next = pool.acquire({ waitSeconds: 30 });
    await flush(pool.stub);
    expect(await pool.counts()).toMatchObject({ waiting: 2 });

    expect(await pool.stub.cancel(goneId)).toBe(true);
    expect(await gone).toMatchObject({ ok: false });
    expect(await pool.counts()).toMatchObject({ waiting: 1 });

    await pool.stub.release(holder.id);
    await pool.effectsDone();
    expect(granted(await next).sessionId).toBe(holder.sessionId);
    const cancelled = await pool.stub.getLease(goneId);
    expect(cancelled).toMatchObject({ ok: true, value: { status: "failed", endReason: "cancelled" } });
    await pool.expectConsistent();
  });

  it("a cancel that arrives before its acquire still cancels it", async () => {
    const pool = await faultPool({ maxSessions: 1 });
    const leaseId = crypto.randomUUID();
    expect(await pool.stub.cancel(leaseId)).toBe(false);
    expect(await pool.acquire({ leaseId })).toMatchObject({ ok: false, failure: { code: "lease_not_active" } });
    expect(await pool.counts()).toMatchObject({ launching: 0, leased: 0, waiting: 0 });
  });
});

describe("client vanishes after the grant", () => {
  it("the lease expires at its TTL, the browser is closed, and capacity returns", async () => {
    const pool = await faultPool({ maxSessions: 1 });
    const lease = granted(await pool.acquire({ ttlSeconds: 20 }));
    // Nobody releases it. One second before expiry it still holds the slot.
    await pool.advance(19_000);
    expect(await pool.stub.getLease(lease.id)).toMatchObject({ ok: true, value: { status: "active" } });
    await pool.advance(1_000);
    await pool.effectsDone();
    expect(await pool.stub.getLease(lease.id)).toMatchObject({ ok: true, value: { status: "expired", endReason: "expired" } });
    expect(pool.provider.closed).toContain(lease.sessionId);
    expect(await pool.counts()).toMatchObject({ leased: 0, closing: 0, idle: 0 });
    // The expired lease's browser is never handed on: the next lease gets a new one.
    const next = granted(await pool.acquire());
    expect(next.sessionId).not.toBe(lease.sessionId);
    await pool.expectConsistent();
  });
});

describe("renew after expiry", () => {
  it("is refused with 409 lease_not_active and the lease is expired, not resurrected", async () => {
    const pool = await faultPool();
    const lease = granted(await pool.acquire({ ttlSeconds: 5 }));
    pool.clock.now += 6_000; // the alarm has not run yet
    expect(await pool.stub.renew(lease.id, 30)).toMatchObject({ ok: false, failure: { status: 409, code: "lease_not_active" } });
    expect(await pool.stub.getLease(lease.id)).toMatchObject({ ok: true, value: { status: "expired" } });
    await pool.effectsDone();
    expect(pool.provider.closed).toContain(lease.sessionId);
    await pool.expectConsistent();
  });
});

describe("concurrent acquires racing for capacity", () => {
  it("50 callers racing for 2 slots never exceed capacity and never share a session", async () => {
    const pool = await faultPool({ maxSessions: 2, maxWaiters: 100 });
    const holders = new Map<string, string>(); // sessionId -> leaseId
    let maxHeld = 0;
    const served: string[] = [];
    const client = async () => {
      const lease = granted(await pool.acquire({ waitSeconds: 60 }));
      expect(holders.has(lease.sessionId!), `session ${lease.sessionId} handed out twice`).toBe(false);
      holders.set(lease.sessionId!, lease.id);
      maxHeld = Math.max(maxHeld, holders.size);
      served.push(lease.id);
      const report = await pool.stub.checkInvariants();
      expect(report.violations).toEqual([]);
      holders.delete(lease.sessionId!);
      await pool.stub.release(lease.id);
    };
    await Promise.all(Array.from({ length: 50 }, client));
    await pool.effectsDone();
    expect(served).toHaveLength(50);
    expect(new Set(served).size).toBe(50);
    expect(maxHeld).toBeLessThanOrEqual(2);
    expect(pool.provider.launches).toBeLessThanOrEqual(2);
    expect(await pool.counts()).toMatchObject({ launching: 0, leased: 0, waiting: 0 });
    await pool.expectConsistent();
  });
});

describe("object restart in the middle of a launch", () => {
  it("is reconciled: the reservation ends, no slot is stuck, and the pool serves again", async () => {
    const provider = new FaultProvider();
    provider.defaultPlan = { kind: "manual" };
    const pool = await faultPool({ maxSessions: 1 }, provider);
    providerFactory.create = () => provider;

    const pending = pool.acquire({ waitSeconds: 10 }).catch((error: unknown) => ({ ok: false as const, error }));
    const launch = await pool.nextLaunch();
    // A crash: the object is thrown away with the caller's request still open
    // and the launch still in flight. The caller's RPC dies with it.
    await abortAllDurableObjects();
    expect((await pending).ok).toBe(false);
    pool.reconnect();

    // The new instance recovered in its constructor: the reservation is gone.
    expect(await pool.counts()).toMatchObject({ launching: 0, waiting: 0, leased: 0 });
    await pool.expectConsistent();
    provider.defaultPlan = { kind: "ok" };
    expect(granted(await pool.acquire()).status).toBe("active");
    await pool.expectConsistent();

    // The browser the lost launch produces is tracked by no pool: reconciliation
    // reports it as unknown rather than counting it against this pool.
    const orphan = await pool.inside(() => launch.succeed());
    expect(provider.live.has(orphan)).toBe(true);
    const report = await pool.stub.reconcileNow();
    expect(report).toMatchObject({ vanished: 0, unknown: 1 });
    await pool.expectConsistent();
  });

  it("a warm-pool launch lost to a crash frees its slot and the pool refills", async () => {
    const provider = new FaultProvider();
    provider.defaultPlan = { kind: "manual" };
    const pool = await faultPool({ maxSessions: 1, minIdle: 1 }, provider);
    providerFactory.create = () => provider;
    await pool.nextLaunch(); // the warm target's launch, never completed
    expect(await pool.counts()).toMatchObject({ launching: 1 });

    provider.defaultPlan = { kind: "ok" };
    await abortAllDurableObjects();
    pool.reconnect();
    // The restarted object ended the lost launch and started a new one for minIdle.
    await pool.effectsDone();
    expect(await pool.counts()).toMatchObject({ launching: 0, idle: 1 });
    await pool.expectConsistent();
  });

  it("active leases survive an eviction untouched", async () => {
    const provider = new FaultProvider();
    const pool = await faultPool({ maxSessions: 2 }, provider);
    providerFactory.create = () => provider;
    const lease = granted(await pool.acquire({ ttlSeconds: 120 }));
    await pool.effectsDone();
    await evictDurableObject(pool.stub);
    expect(await pool.stub.getLease(lease.id)).toMatchObject({ ok: true, value: { status: "active", sessionId: lease.sessionId } });
    expect(await pool.counts()).toMatchObject({ leased: 1, launching: 0 });
    await pool.expectConsistent();
  });
});
