/**
 * Admission control (capacity.ts `admission`, config `admission`): once the
 * pool has seen ADMISSION_MIN_SAMPLES lease holds, a caller that would have
 * to queue is judged by its expected wait, queue position × mean hold ÷
 * sessions. One who cannot be served within its waitSeconds is answered at
 * once, 429 expected_wait_exceeded with that estimate as Retry-After, and
 * nothing is queued or written for it; one who can is queued.
 */
import { describe, expect, it } from "vitest";
import { ADMISSION_MIN_SAMPLES } from "../../src/pool/capacity";
import type { PoolConfig } from "../../src/pool/config";
import { releaseLease, resetSucceeded } from "../../src/pool/machine";
import { call } from "../support/http";
import { type Machine, withMachine } from "../support/machine";
import { faultPool, granted } from "../support/pool";

const HOLD_MS = 10_000;

/** The pool sees `count` leases each held HOLD_MS and released (its mean hold is then exactly HOLD_MS). */
function seeHolds(m: Machine, count: number): void {
  for (let i = 0; i < count; i += 1) {
    const { lease, session } = m.leased();
    m.now += HOLD_MS;
    m.run((s) => releaseLease(s, lease.id));
    m.run((s) => resetSucceeded(s, session.id));
  }
}

/**
 * Two sessions, both held, and one caller already queued (who can wait a
 * minute): a new caller would be second in the queue, expected to wait
 * 2 × HOLD_MS ÷ 2 sessions = HOLD_MS.
 */
function busyPool(config: Partial<PoolConfig>, holds: number, body: (m: Machine) => void): Promise<void> {
  return withMachine({ maxSessions: 2, ...config }, (m) => {
    seeHolds(m, holds);
    m.leased();
    m.leased();
    expect(m.request({ waitMs: 60_000 }).result.kind).toBe("waiting");
    expect(m.db.counts()).toMatchObject({ leased: 2, waiting: 1 });
    body(m);
  });
}

describe("admission control", () => {
  it("answers a caller who would wait longer than its waitSeconds at once, with the expected wait as retryAfter, and queues nothing", () =>
    busyPool({}, ADMISSION_MIN_SAMPLES, (m) => {
      const id = crypto.randomUUID();
      const { result, effects, events } = m.request({ id, waitMs: 5_000 });

      // Position 2 × 10 s hold ÷ 2 sessions = 10 s.
      expect(result).toEqual({
        kind: "rejected",
        failure: { status: 429, code: "expected_wait_exceeded", detail: expect.stringContaining("position 2"), retryAfter: HOLD_MS / 1000 },
      });
      expect(effects).toEqual([]);
      expect(events).toEqual([]);
      expect(m.db.lease(id)).toBeUndefined();
      expect(m.db.counts().waiting).toBe(1);
      expect(m.violations()).toEqual([]);
    }));

  it("queues a caller whose waitSeconds covers the expected wait", () =>
    busyPool({}, ADMISSION_MIN_SAMPLES, (m) => {
      const { result } = m.request({ waitMs: HOLD_MS });
      expect(result.kind).toBe("waiting");
      expect(m.db.counts().waiting).toBe(2);
      expect(m.violations()).toEqual([]);
    }));

  it("does not judge before it has seen ADMISSION_MIN_SAMPLES lease holds", () =>
    busyPool({}, ADMISSION_MIN_SAMPLES - 1, (m) => {
      const { result } = m.request({ waitMs: 1_000 });
      expect(result.kind).toBe("waiting");
      expect(m.db.counts().waiting).toBe(2);
    }));

  it("is off with admission: false", () =>
    busyPool({ admission: false }, ADMISSION_MIN_SAMPLES, (m) => {
      const { result } = m.request({ waitMs: 1_000 });
      expect(result.kind).toBe("waiting");
      expect(m.db.counts().waiting).toBe(2);
    }));
});

describe("admission control through the HTTP API", () => {
  it("answers 429 expected_wait_exceeded problem+json with the expected wait as Retry-After", async () => {
    const pool = await faultPool({ maxSessions: 1 });
    // Ten leases, each held 20 s: the mean hold is 20 s.
    for (let i = 0; i < ADMISSION_MIN_SAMPLES; i += 1) {
      const lease = granted(await pool.acquire({ ttlSeconds: 60 }));
      await pool.advance(20_000);
      expect((await pool.stub.release(lease.id)).ok).toBe(true);
      await pool.effectsDone();
    }
    granted(await pool.acquire({ ttlSeconds: 60 }));

    const reply = await call(`/v1/pools/${pool.name}/leases`, { method: "POST", body: { waitSeconds: 5 } });
    expect(reply.status).toBe(429);
    expect(reply.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(reply.body.code).toBe("expected_wait_exceeded");
    // First in the queue × 20 s ÷ 1 session.
    expect(reply.headers.get("retry-after")).toBe("20");
    expect((await pool.counts()).waiting).toBe(0);
    await pool.expectConsistent();
  });
});
