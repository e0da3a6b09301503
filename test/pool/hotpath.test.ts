/**
 * The hot path's durable work (issue 19): what a warm acquire, its release
 * and the reset that follows cost the pool object in SQLite statements and
 * transactions. `npm run bench` measures the time; this pins the work, so a
 * statement added to the path fails here, where it can be read, rather than
 * as a slower benchmark on a noisy machine. Raising a budget is a decision:
 * say why in the commit, and in docs/performance.md.
 */
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { PoolObject } from "../../src/pool/object";
import { faultPool, granted, statementsDuring, type TestPool } from "../support/pool";

/**
 * The budget, as measured when it was set (2026-12-02): the grant reads the
 * lease by id (a retried request), the tallies and the oldest idle session,
 * inserts the lease, moves the session, journals and counts the wait; the
 * release reads and ends the lease, journals, counts the hold, records the
 * hold for admission control, moves the session to resetting and counts the
 * lease's open connections; the reset's outcome reads the session,
 * journals, looks for a waiter, and makes it idle. Each transition then reads
 * its next deadline (one statement).
 */
const BUDGET = { statements: 24, transactions: 3, rowsWritten: 37 };

interface Work {
  statements: number;
  transactions: number;
  rowsWritten: number;
}

/** The statements and transactions the pool object runs while `work` runs inside it (its effects included). */
async function durableWork(pool: TestPool, work: (object: PoolObject) => Promise<unknown>): Promise<Work> {
  return runInDurableObject(pool.stub, async (object: PoolObject, state) => {
    const realTransaction = state.storage.transactionSync.bind(state.storage);
    let transactions = 0;
    state.storage.transactionSync = <T>(fn: () => T): T => {
      transactions += 1;
      return realTransaction(fn);
    };
    try {
      const cursors = await statementsDuring(object, async () => {
        await work(object);
        await object.effectsDone();
      });
      return { statements: cursors.length, transactions, rowsWritten: cursors.reduce((total, c) => total + c.rowsWritten, 0) };
    } finally {
      state.storage.transactionSync = realTransaction;
    }
  });
}

/** A warm pool: one idle session, reused. */
async function warmPool(): Promise<TestPool> {
  const pool = await faultPool({ maxSessions: 1, minIdle: 1, reuse: true });
  await pool.effectsDone();
  expect(await pool.counts()).toMatchObject({ idle: 1, launching: 0 });
  return pool;
}

function acquireInput(pool: TestPool) {
  return { leaseId: crypto.randomUUID(), tenant: pool.tenant, pool: pool.name, owner: "test" };
}

describe("the warm acquire + release's durable work", () => {
  it(`a warm acquire, its release and the reset: ${BUDGET.transactions} transactions, at most ${BUDGET.statements} statements and ${BUDGET.rowsWritten} rows written`, async () => {
    const pool = await warmPool();
    // The first pair fills the object's caches (config, meta); the second is the steady state measured.
    const pair = async (object: PoolObject) => {
      const lease = granted(await object.acquire(acquireInput(pool)));
      await object.release(lease.id);
    };
    await durableWork(pool, pair);
    const work = await durableWork(pool, pair);
    expect(work.transactions).toBe(BUDGET.transactions); // the grant, the release, the reset's outcome
    expect(work.statements).toBeLessThanOrEqual(BUDGET.statements);
    expect(work.rowsWritten).toBeLessThanOrEqual(BUDGET.rowsWritten);
    expect(await pool.counts()).toMatchObject({ idle: 1, leased: 0, resetting: 0 });
    await pool.expectConsistent();
  });
});
