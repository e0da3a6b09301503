/**
 * Drives machine.ts directly, one transition at a time, against the real
 * SQLite of a fresh pool object (no provider, no RPC, no alarm): each call runs
 * in one `transactionSync` exactly as the shell in object.ts runs it, and
 * reports the effects the transition asked for and the journal rows it wrote.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { KEEP_ALIVE_MS } from "../../src/browser/provider";
import { DEFAULT_CONFIG, type PoolConfig } from "../../src/pool/config";
import { checkInvariants } from "../../src/pool/invariants";
import { type Effect, type LeaseRequest, launchSucceeded, registered, requestLease, type Step } from "../../src/pool/machine";
import type { PoolObject } from "../../src/pool/object";
import { type LeaseRow, migrate, type SessionRow } from "../../src/pool/schema";
import { PoolStore } from "../../src/pool/store";

export const T0 = 1_700_000_000_000;

export interface Ran<T> {
  result: T;
  effects: Effect[];
  /** Journal events the transition appended, in order. */
  events: string[];
}

export interface Machine {
  db: PoolStore;
  sql: SqlStorage;
  config: PoolConfig;
  now: number;
  /** Runs one transition at the current time, atomically, and reports what it did. */
  run<T>(fn: (step: Step) => T): Ran<T>;
  /** A lease request with sensible defaults (ttl 60 s, wait 0). */
  request(overrides?: Partial<LeaseRequest>): Ran<ReturnType<typeof requestLease>>;
  /** A lease that holds a launched session: request, then the launch succeeds. */
  leased(overrides?: Partial<LeaseRequest>): { lease: LeaseRow; session: SessionRow };
  lease(id: string): LeaseRow;
  session(row: number): SessionRow;
  violations(): string[];
}

let pools = 0;

/** Runs `body` inside a fresh pool object, with a machine harness over its SQLite. */
export async function withMachine(config: Partial<PoolConfig>, body: (m: Machine) => void): Promise<void> {
  const stub = env.POOL.get(env.POOL.idFromName(`machine/${Date.now()}-${++pools}-${crypto.randomUUID()}`));
  await runInDurableObject(stub, (_object: PoolObject, state) => {
    // The pool's tables, as its creation makes them.
    migrate(state.storage);
    const sql = state.storage.sql;
    const db = new PoolStore(sql);
    let launches = 0;
    const m: Machine = {
      db,
      sql,
      config: { ...DEFAULT_CONFIG, ...config },
      now: T0,
      run(fn) {
        const before = lastJournalSeq(sql);
        const step: Step = { db, now: m.now, config: m.config, keepAliveMs: KEEP_ALIVE_MS, effects: [] };
        const result = state.storage.transactionSync(() => fn(step));
        const events = sql
          .exec<{ event: string }>(`SELECT event FROM journal WHERE seq > ? ORDER BY seq`, before)
          .toArray()
          .map((r) => r.event);
        return { result, effects: step.effects, events };
      },
      request(overrides = {}) {
        return m.run((step) =>
          requestLease(step, {
            id: crypto.randomUUID(),
            owner: "test",
            labels: {},
            ttlMs: 60_000,
            waitMs: 0,
            idempotencyKey: null,
            tokenHash: null,
            ...overrides,
          }),
        );
      },
      leased(overrides = {}) {
        const asked = m.request({ waitMs: 30_000, ...overrides });
        if (asked.result.kind === "rejected") throw new Error(`request rejected: ${asked.result.failure.detail}`);
        const leaseId = asked.result.lease.id;
        if (asked.result.kind === "waiting") {
          const launch = asked.effects.find((e) => e.kind === "launch");
          if (!launch || launch.kind !== "launch") throw new Error("no launch was reserved for the request");
          m.run((step) => launchSucceeded(step, launch.row, `browser-${++launches}`));
          // As the shell does once the account's registry acknowledged the browser.
          m.run((step) => registered(step, launch.row));
        }
        const lease = m.lease(leaseId);
        if (lease.status !== "active") throw new Error(`lease is ${lease.status}, not active`);
        return { lease, session: m.session(lease.session_row!) };
      },
      lease(id) {
        const row = db.lease(id);
        if (!row) throw new Error(`no lease ${id}`);
        return row;
      },
      session(row) {
        const found = db.session(row);
        if (!found) throw new Error(`no session row ${row}`);
        return found;
      },
      violations: () => checkInvariants(sql, m.config, m.now).violations,
    };
    body(m);
  });
}

function lastJournalSeq(sql: SqlStorage): number {
  return sql.exec<{ n: number }>(`SELECT COALESCE(MAX(seq), 0) AS n FROM journal`).one().n;
}

/** The effects of one kind, narrowed. */
export function effectsOf<K extends Effect["kind"]>(effects: Effect[], kind: K): Extract<Effect, { kind: K }>[] {
  return effects.filter((e): e is Extract<Effect, { kind: K }> => e.kind === kind);
}
