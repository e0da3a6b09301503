/**
 * What the pool object's single alarm does: every deadline (lease expiry,
 * waiter deadline, idle keep-alive, close retry, reconciliation, idempotency
 * expiry), driven with the pool's clock and runDurableObjectAlarm.
 */
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { PoolObject } from "../../src/pool/object";
import { HISTORY_RETENTION_MS, PRUNE_BATCH } from "../../src/pool/shell";
import { PoolStore } from "../../src/pool/store";
import { faultPool, granted } from "../support/pool";


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
    await pool.effectsDone();
    const a = granted(await pool.acquire());
    const b = granted(await pool.acquire());
    await pool.stub.release(a.id);
    await pool.stub.release(b.id);
    await pool.effectsDone();
    expect(await pool.counts()).toMatchObject({ idle: 2 });

    await pool.advance(60_000);
    await pool.effectsDone();
    expect(await pool.counts()).toMatchObject({ idle: 1, closing: 0 });
    expect(pool.provider.closed).toHaveLength(1);
    expect(pool.provider.pings).toHaveLength(1);
    await pool.expectConsistent();
  });

  it("closes and replaces a warm session whose browser died, found by its keep-alive ping", async () => {
    const pool = await faultPool({ maxSessions: 2, minIdle: 1, idleTimeoutSeconds: 60 });
    await pool.effectsDone();
    const [warm] = [...pool.provider.live.keys()];
    pool.provider.crash(warm!);
    await pool.advance(60_000);
    await pool.effectsDone();
    expect(await pool.counts()).toMatchObject({ idle: 1, launching: 0, closing: 0 });
    const [replacement] = [...pool.provider.live.keys()];
    expect(replacement).not.toBe(warm);
    await pool.expectConsistent();
  });

  it("reconciliation frees a leased session whose browser vanished and ends its lease as browser_gone", async () => {
    // Nobody connects to this lease: connectWithinSeconds is off so that only reconciliation ends it.
    const pool = await faultPool({ maxSessions: 1, connectWithinSeconds: 0 });
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
    await pool.effectsDone();
    expect(await pool.counts()).toMatchObject({ closing: 1 });
    await pool.advance(2_000); // second attempt after 2 s
    await pool.effectsDone();
    expect(await pool.counts()).toMatchObject({ closing: 1 });
    await pool.advance(4_000); // third attempt after 4 s: gives up, frees the slot
    await pool.effectsDone();
    expect(await pool.counts()).toMatchObject({ closing: 0 });
    expect(pool.provider.live.has(lease.sessionId!)).toBe(true);

    await pool.advance(60_000); // reconciliation finds the ended session still running
    await pool.effectsDone();
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

  it("only ever moves the alarm earlier: a later deadline costs no write, and the early alarm re-arms at the true one", async () => {
    const pool = await faultPool();
    const lease = granted(await pool.acquire({ ttlSeconds: 30 }));
    const alarmAt = () => runInDurableObject(pool.stub, (_object, state) => state.storage.getAlarm());
    expect(await alarmAt()).toBe(Date.parse(lease.expiresAt!));
    const renewed = await pool.stub.renew(lease.id, 50);
    if (!renewed.ok) throw new Error(renewed.failure.detail);
    // The expiry moved out by 20 s; the alarm stays where it was (earlier is harmless).
    expect(await alarmAt()).toBe(Date.parse(lease.expiresAt!));
    await pool.advance(30_000);
    expect(await pool.stub.getLease(lease.id)).toMatchObject({ ok: true, value: { status: "active" } });
    expect(await alarmAt()).toBe(Date.parse(renewed.value.expiresAt!));
    await pool.advance(20_000);
    expect(await pool.stub.getLease(lease.id)).toMatchObject({ ok: true, value: { status: "expired" } });
  });

  it("prunes leases and sessions that ended over 24 hours ago, oldest first, and keeps newer history", async () => {
    const pool = await faultPool({ maxSessions: 2, reuse: false });
    const old = [granted(await pool.acquire()), granted(await pool.acquire())];
    for (const lease of old) await pool.stub.release(lease.id);
    await pool.effectsDone();
    await pool.advance(12 * 60 * 60 * 1000);
    const recent = granted(await pool.acquire());
    await pool.stub.release(recent.id);
    await pool.effectsDone();
    const rows = () =>
      runInDurableObject(pool.stub, (_object, state) => ({
        leases: state.storage.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM leases`).one().n,
        closed: state.storage.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM sessions WHERE state = 'closed'`).one().n,
      }));
    expect(await rows()).toEqual({ leases: 3, closed: 3 });

    await pool.advance(12 * 60 * 60 * 1000 + 1);
    for (const lease of old) expect(await pool.stub.getLease(lease.id)).toMatchObject({ ok: false, failure: { code: "not_found" } });
    expect(await pool.stub.getLease(recent.id)).toMatchObject({ ok: true, value: { status: "released" } });
    expect(await rows()).toEqual({ leases: 1, closed: 1 });
    await pool.expectConsistent();
  });

  it("prunes a large history in batches, one alarm after another, without touching live leases", async () => {
    const pool = await faultPool({ maxSessions: 1 });
    const live = granted(await pool.acquire({ ttlSeconds: 300 }));
    const old = pool.clock.now - HISTORY_RETENTION_MS - 1;
    const total = PRUNE_BATCH * 2 + 10;
    await runInDurableObject(pool.stub, (_object, state) => {
      state.storage.transactionSync(() => {
        for (let i = 0; i < total; i += 1) {
          state.storage.sql.exec(
            `INSERT INTO leases (id, seq, status, owner, ttl_ms, created_at, ended_at, end_reason)
             VALUES (?, ?, 'released', 'test', 1000, ?, ?, 'released')`,
            `old-${i}`,
            1_000_000 + i,
            old,
            old,
          );
        }
      });
    });
    const ended = () =>
      runInDurableObject(pool.stub, (_object, state) => state.storage.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM leases WHERE status = 'released'`).one().n);
    // One alarm prunes one batch and, with more due, re-arms at once (the
    // platform may run those follow-ups by itself; here they are also run
    // explicitly until nothing is left).
    await pool.advance(0);
    expect(await ended()).toBeLessThanOrEqual(total - PRUNE_BATCH);
    for (let i = 0; i < 5 && (await ended()) > 0; i += 1) await runDurableObjectAlarm(pool.stub);
    expect(await ended()).toBe(0);
    expect(await pool.stub.getLease(live.id)).toMatchObject({ ok: true, value: { status: "active" } });
    await pool.expectConsistent();
  });

  it("prunes at most a batch per call, oldest first, and never a session an unpruned lease refers to", async () => {
    const pool = await faultPool({ maxSessions: 1, reuse: false });
    const lease = granted(await pool.acquire());
    await pool.stub.release(lease.id);
    await pool.effectsDone();
    await runInDurableObject(pool.stub, (_object, state) => {
      const sql = state.storage.sql;
      const db = new PoolStore(sql);
      for (let i = 0; i < 5; i += 1) {
        sql.exec(
          `INSERT INTO leases (id, seq, status, owner, ttl_ms, created_at, ended_at) VALUES (?, ?, 'expired', 'test', 1000, 0, ?)`,
          `old-${i}`,
          100 + i,
          10 - i,
        );
      }
      // The lease ended long ago too, but later than the cutoff below: its closed session stays.
      const cutoff = 20;
      expect(db.pruneHistory(cutoff, 2)).toEqual({ leases: 2, sessions: 0 });
      const left = sql.exec<{ id: string }>(`SELECT id FROM leases WHERE id LIKE 'old-%' ORDER BY id`).toArray().map((r) => r.id);
      // Oldest first: old-4 (ended 6) and old-3 (ended 7) went.
      expect(left).toEqual(["old-0", "old-1", "old-2"]);
      expect(db.pruneHistory(cutoff, 100)).toEqual({ leases: 3, sessions: 0 });
      expect(sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM sessions WHERE state = 'closed'`).one().n).toBe(1);
      // Once its lease is pruned, the session goes too.
      expect(db.pruneHistory(Number.MAX_SAFE_INTEGER, 100)).toEqual({ leases: 1, sessions: 1 });
    });
  });
});
