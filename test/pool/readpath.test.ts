/**
 * The pool's read path (GET /v1/pools/{pool}) and /metrics stay O(1) in the
 * pool's size: they never scan the wait queue. The full invariant check does,
 * so it runs on the alarm and on demand (POST /v1/admin/pools/{t}/{p}/check),
 * and the read path shows its last report.
 */
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { PoolObject } from "../../src/pool/object";
import type { PoolStore } from "../../src/pool/store";
import { call } from "../support/http";
import { faultPool, type TestPool } from "../support/pool";
import { ADMIN } from "../support/tenants";

/** Adds `n` waiting leases straight into SQL (the triggers keep the tallies right). */
async function addWaiters(pool: TestPool, n: number): Promise<void> {
  await runInDurableObject(pool.stub, (_object, state) => {
    const sql = state.storage.sql;
    const base = sql.exec<{ n: number }>(`SELECT COALESCE(MAX(seq), 0) AS n FROM leases`).one().n;
    state.storage.transactionSync(() => {
      for (let i = 1; i <= n; i += 1) {
        sql.exec(
          `INSERT INTO leases (id, seq, status, owner, ttl_ms, created_at, wait_deadline) VALUES (?, ?, 'waiting', 'test', 60000, ?, ?)`,
          `w-${i}-${crypto.randomUUID()}`,
          base + i,
          pool.clock.now,
          pool.clock.now + 600_000,
        );
      }
    });
  });
}

/** Rows SQLite read while `read` ran inside the pool object. */
async function rowsReadBy(pool: TestPool, read: (object: PoolObject) => Promise<unknown>): Promise<number> {
  return runInDurableObject(pool.stub, async (object: PoolObject) => {
    const db = (object as unknown as { db: PoolStore }).db;
    const sql = db.sql;
    const cursors: SqlStorageCursor<Record<string, SqlStorageValue>>[] = [];
    const real = sql.exec.bind(sql);
    (sql as { exec: SqlStorage["exec"] }).exec = ((query: string, ...bindings: SqlStorageValue[]) => {
      const cursor = real(query, ...bindings);
      cursors.push(cursor);
      return cursor;
    }) as SqlStorage["exec"];
    try {
      await read(object);
    } finally {
      (sql as { exec: SqlStorage["exec"] }).exec = real;
    }
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
