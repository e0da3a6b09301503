/**
 * The pool's read path (GET /v1/pools/{pool}) and /metrics stay O(1) in the
 * pool's size: they never scan the wait queue. The full invariant check does,
 * so it runs on the alarm and on demand (POST /v1/admin/pools/{t}/{p}/check),
 * and the read path shows its last report.
 */
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { PRIORITY_AGEING_MS } from "../../src/pool/machine";
import type { PoolObject } from "../../src/pool/object";
import type { PoolStore } from "../../src/pool/store";
import { call } from "../support/http";
import { faultPool, granted, statementsDuring, type TestPool } from "../support/pool";
import { ADMIN } from "../support/tenants";

/** Adds `n` waiting leases straight into SQL (the triggers keep the tallies right), the i-th (from 1) ranked `rankOf(i)`. */
async function addWaiters(pool: TestPool, n: number, rankOf: (i: number) => number = () => pool.clock.now): Promise<void> {
  await runInDurableObject(pool.stub, (_object, state) => {
    const sql = state.storage.sql;
    const base = sql.exec<{ n: number }>(`SELECT COALESCE(MAX(seq), 0) AS n FROM leases`).one().n;
    state.storage.transactionSync(() => {
      for (let i = 1; i <= n; i += 1) {
        sql.exec(
          `INSERT INTO leases (id, seq, status, owner, ttl_ms, created_at, wait_deadline, rank) VALUES (?, ?, 'waiting', 'test', 60000, ?, ?, ?)`,
          `w-${i}-${crypto.randomUUID()}`,
          base + i,
          pool.clock.now,
          pool.clock.now + 600_000,
          rankOf(i),
        );
      }
    });
  });
}

/** Rows SQLite read while `read` ran inside the pool object. */
async function rowsReadBy(pool: TestPool, read: (object: PoolObject) => Promise<unknown>): Promise<number> {
  return runInDurableObject(pool.stub, async (object: PoolObject) => {
    const cursors = await statementsDuring(object, () => read(object));
    return cursors.reduce((total, cursor) => total + cursor.rowsRead, 0);
  });
}

describe("the pool's read path", () => {
  it("reads a bounded number of rows however long the wait queue is (describe, metrics)", async () => {
    const pool = await faultPool({ maxSessions: 1, maxWaiters: 5_000 });
    await pool.acquire();
    await addWaiters(pool, 2_000);
    expect(await pool.counts()).toMatchObject({ waiting: 2_000 });
    expect(await rowsReadBy(pool, (object) => object.describe())).toBeLessThan(200);
    expect(await rowsReadBy(pool, (object) => object.metrics())).toBeLessThan(200);
    // The full check is what reads them all.
    expect(await rowsReadBy(pool, (object) => object.checkInvariants())).toBeGreaterThan(2_000);
  });

  it("shows the last full check, which the alarm and an operator's POST …/check run", async () => {
    const pool = await faultPool({ maxSessions: 1 });
    await pool.advance(1_000);
    const before = await pool.stub.describe();
    expect(before.ok && before.value).toMatchObject({ consistent: true, violations: [], checkedAt: new Date(pool.clock.now).toISOString() });
    // Break an invariant the tallies cannot show: a waiter long past its deadline.
    await runInDurableObject(pool.stub, (_object, state) =>
      state.storage.sql.exec(
        `INSERT INTO leases (id, seq, status, owner, ttl_ms, created_at, wait_deadline) VALUES ('stuck', 999, 'waiting', 'test', 1000, 0, 0)`,
      ),
    );
    const stale = await pool.stub.describe();
    expect(stale.ok && stale.value.consistent).toBe(true);
    const checked = await call(`/v1/admin/pools/${pool.tenant}/${pool.name}/check`, { method: "POST", key: ADMIN });
    expect(checked.status).toBe(200);
    expect(checked.body).toMatchObject({ consistent: false, violations: [expect.stringContaining("waiter stuck outlived its deadline")] });
    const after = await pool.stub.describe();
    expect(after.ok && after.value).toMatchObject({ consistent: false, violations: [expect.stringContaining("stuck")] });
  });
});

/** The pool has seen enough holds of `meanMs` for admission control to judge (through the store, so its cache agrees). */
async function holdsSeen(pool: TestPool, meanMs: number): Promise<void> {
  await runInDurableObject(pool.stub, (object: PoolObject) => {
    (object as unknown as { db: PoolStore }).db.setMeta("hold_ms", `${meanMs},10`);
  });
}

/** An acquire's answer if it came at once (a refusal), or "queued"; and the rows SQLite read while it was decided. */
type Acquired = Awaited<ReturnType<PoolObject["acquire"]>>;
async function joining(pool: TestPool, priority: "high" | "normal" | "low", waitSeconds: number): Promise<{ answer: Acquired | "queued"; rows: number }> {
  let answer: Acquired | "queued" = "queued";
  const rows = await rowsReadBy(pool, async (object) => {
    const asked = object.acquire({ leaseId: crypto.randomUUID(), tenant: pool.tenant, pool: pool.name, owner: "test", waitSeconds, priority });
    // The decision is taken before the call first waits: a refusal has settled by the next turn, a queued call has not.
    void asked.then((result) => (answer = result));
    await object.describe();
  });
  return { answer, rows };
}

/**
 * A busy one-session pool that has seen holds of 1 s, with `ahead` waiters
 * ranked before a high-priority caller arriving now and `behind` after it
 * (within its ageing).
 */
async function aroundHighPriority(ahead: number, behind: number): Promise<TestPool> {
  const pool = await faultPool({ maxSessions: 1, maxWaiters: 20_000 });
  granted(await pool.acquire());
  const highRank = pool.clock.now - PRIORITY_AGEING_MS;
  await addWaiters(pool, ahead, (i) => highRank - ahead - 1 + i);
  await addWaiters(pool, behind, (i) => highRank + i);
  await holdsSeen(pool, 1_000);
  return pool;
}

describe("an acquire that meets a long queue (admission control)", () => {
  it("decides from the tally and one index probe when the caller ranks behind the whole queue, refused or queued", async () => {
    const pool = await faultPool({ maxSessions: 1, maxWaiters: 20_000 });
    granted(await pool.acquire());
    await addWaiters(pool, 10_000, (i) => pool.clock.now - 20_000 + i);
    await holdsSeen(pool, 10);
    // 10,000 ahead × 10 ms each on one session: 100 s, beyond 30 s, and counted exactly.
    const refused = await joining(pool, "normal", 30);
    expect(refused.answer).toMatchObject({
      ok: false,
      failure: { status: 429, code: "expected_wait_exceeded", retryAfter: 101, detail: expect.stringContaining("position 10001 in the queue") },
    });
    expect(refused.rows).toBeLessThan(200);
    // A caller who will wait long enough joins the queue, for as few rows.
    const queued = await joining(pool, "low", 120);
    expect(queued.answer).toBe("queued");
    expect(queued.rows).toBeLessThan(200);
    expect(await pool.counts()).toMatchObject({ waiting: 10_001 });
  });

  it("counts the waiters ahead of a high-priority caller only as far as the decision needs", async () => {
    // 10,000 waiters ranked ahead of a high-priority arrival now, and 100 who arrived within its 30 s of ageing.
    const pool = await aroundHighPriority(10_000, 100);
    // 30 s at 1 s per hold on one session admits 29 ahead: the count stops at 30, so the position is a lower bound.
    const refused = await joining(pool, "high", 30);
    expect(refused.answer).toMatchObject({
      ok: false,
      failure: { code: "expected_wait_exceeded", retryAfter: 31, detail: expect.stringContaining("position at least 31 in the queue") },
    });
    expect(refused.rows).toBeLessThan(200);
  });

  it("admits a high-priority caller whose place ahead of the queue it can wait for, reading only the rows ahead of it", async () => {
    const pool = await aroundHighPriority(5, 10_000);
    const queued = await joining(pool, "high", 30);
    expect(queued.answer).toBe("queued");
    expect(queued.rows).toBeLessThan(200);
  });
});
