/**
 * A lease nobody can use gives its browser back: leases no client connects to
 * (connectWithinSeconds), callers that go away while an Idempotency-Key
 * replay still waits, and callers that will not queue while the broker's own
 * housekeeping (a reset) is about to free a session.
 */
import { describe, expect, it } from "vitest";
import { faultPool, flush, granted } from "../support/pool";


describe("connectWithinSeconds", () => {
  it("ends a lease no client connected to (not_connected) and reuses its browser", async () => {
    const pool = await faultPool({ maxSessions: 1, connectWithinSeconds: 20 });
    const lease = granted(await pool.acquire({ ttlSeconds: 300 }));
    await pool.advance(19_999);
    expect(await pool.stub.getLease(lease.id)).toMatchObject({ ok: true, value: { status: "active" } });
    await pool.advance(1);
    expect(await pool.stub.getLease(lease.id)).toMatchObject({ ok: true, value: { status: "released", endReason: "not_connected" } });
    await pool.effectsDone();
    expect(pool.provider.closed).toEqual([]);
    // The same browser, reset, serves the next caller.
    expect(granted(await pool.acquire()).sessionId).toBe(lease.sessionId);
    await pool.expectConsistent();
  });

  it("leaves a lease a client connected to alone, even after the client left", async () => {
    const pool = await faultPool({ maxSessions: 1, connectWithinSeconds: 20 });
    const token = "a".repeat(64);
    const lease = granted(await pool.acquire({ ttlSeconds: 300, tokenHash: token }));
    const opened = await pool.stub.openConnection(lease.id, token, true);
    expect(opened.ok).toBe(true);
    if (opened.ok) await pool.stub.closeConnection(opened.value.connectionId!);
    await pool.advance(60_000);
    expect(await pool.stub.getLease(lease.id)).toMatchObject({ ok: true, value: { status: "active" } });
  });

  it("0 turns it off", async () => {
    const pool = await faultPool({ maxSessions: 1, connectWithinSeconds: 0 });
    const lease = granted(await pool.acquire({ ttlSeconds: 300 }));
    await pool.advance(120_000);
    expect(await pool.stub.getLease(lease.id)).toMatchObject({ ok: true, value: { status: "active" } });
  });
});

describe("a caller that goes away", () => {
  it("aborting the first request never fails the lease an Idempotency-Key replay is waiting on", async () => {
    const pool = await faultPool({ maxSessions: 1 });
    pool.provider.defaultPlan = { kind: "manual" };
    const first = crypto.randomUUID();
    const replay = crypto.randomUUID();
    const original = pool.acquire({ leaseId: first, waitSeconds: 10, idempotencyKey: "k-1", fingerprint: "f" });
    const launch = await pool.nextLaunch();
    const replayed = pool.acquire({ leaseId: replay, waitSeconds: 10, idempotencyKey: "k-1", fingerprint: "f" });
    await flush(pool.stub);

    // The first request's client disconnects: its own call is answered, the lease waits on for the replay.
    expect(await pool.stub.cancel(first)).toBe(false);
    expect(await original).toMatchObject({ ok: false, failure: { code: "lease_not_active" } });
    expect(await pool.stub.getLease(first)).toMatchObject({ ok: true, value: { status: "waiting" } });

    const sessionId = await pool.inside(() => launch.succeed());
    expect(await replayed).toMatchObject({ ok: true, value: { replayed: true, lease: { id: first, status: "active", sessionId } } });
    await pool.expectConsistent();
  });

  it("a caller granted after it had gone is abandoned: the lease is released and its browser reused", async () => {
    const pool = await faultPool({ maxSessions: 1 });
    const leaseId = crypto.randomUUID();
    const lease = granted(await pool.acquire({ leaseId }));
    expect(await pool.stub.abandon(leaseId)).toBe(true);
    expect(await pool.stub.getLease(leaseId)).toMatchObject({ ok: true, value: { status: "released", endReason: "abandoned" } });
    await pool.effectsDone();
    expect(granted(await pool.acquire()).sessionId).toBe(lease.sessionId);
  });

  it("abandoning one request keeps a lease another request (a replay) also holds", async () => {
    const pool = await faultPool({ maxSessions: 1 });
    const first = crypto.randomUUID();
    granted(await pool.acquire({ leaseId: first, idempotencyKey: "k-2", fingerprint: "f" }));
    const replay = crypto.randomUUID();
    expect(await pool.acquire({ leaseId: replay, idempotencyKey: "k-2", fingerprint: "f" })).toMatchObject({ ok: true, value: { replayed: true } });
    expect(await pool.stub.abandon(first)).toBe(false);
    expect(await pool.stub.getLease(first)).toMatchObject({ ok: true, value: { status: "active" } });
    expect(await pool.stub.abandon(replay)).toBe(true);
    expect(await pool.stub.getLease(first)).toMatchObject({ ok: true, value: { status: "released", endReason: "abandoned" } });
  });
});

describe("waitSeconds 0 while the broker is busy", () => {
  it("is served by a session being reset when nobody queues ahead, instead of 429", async () => {
    const pool = await faultPool({ maxSessions: 1 });
    const held = granted(await pool.acquire());
    pool.provider.manualIo = true;
    await pool.stub.release(held.id);
    expect(await pool.counts()).toMatchObject({ resetting: 1, idle: 0 });
    const asked = pool.acquire({ waitSeconds: 0 });
    await flush(pool.stub);
    expect(await pool.counts()).toMatchObject({ waiting: 1 });
    await pool.inside(() => pool.provider.takeIo(0)!.succeed());
    expect(granted(await asked).sessionId).toBe(held.sessionId);
    await pool.expectConsistent();
  });

  it("is still refused (429) when another caller already queues for that session", async () => {
    const pool = await faultPool({ maxSessions: 1 });
    const held = granted(await pool.acquire());
    pool.provider.manualIo = true;
    await pool.stub.release(held.id);
    const first = pool.acquire({ waitSeconds: 0 });
    await flush(pool.stub);
    expect(await pool.acquire({ waitSeconds: 0 })).toMatchObject({ ok: false, failure: { status: 429, code: "pool_exhausted" } });
    await pool.inside(() => pool.provider.takeIo(0)!.succeed());
    expect((await first).ok).toBe(true);
  });
});
