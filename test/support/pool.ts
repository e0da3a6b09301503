/**
 * Arranges a pool object for tests that drive it over RPC: a fresh pool, a
 * fault-injecting provider and a controllable clock, both injected into the
 * live object with runInDurableObject.
 */
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { expect } from "vitest";
import type { PoolConfigPatch } from "../../src/pool/config";
import type { CapacityGovernor } from "../../src/governor/object";
import type { AcquireInput, PoolObject } from "../../src/pool/object";
import { FaultProvider, type PendingLaunch } from "./fault-provider";
import { poolName } from "./http";

export interface TestPool {
  name: string;
  tenant: string;
  stub: DurableObjectStub<PoolObject>;
  /** After the object crashed, old stubs are broken: this takes a new one. */
  reconnect(): void;
  provider: FaultProvider;
  clock: { now: number };
  acquire(options?: Partial<AcquireInput>): ReturnType<PoolObject["acquire"]>;
  /** Moves the pool's clock forward and runs its alarm, as the platform would at that time, and waits for the reconciliation it started. */
  advance(ms: number): Promise<void>;
  /** Waits until every launch, close and reset the pool started has finished. */
  effectsDone(): Promise<void>;
  counts(): Promise<Record<string, number>>;
  /**
   * Runs `fn` inside the pool object's I/O context. Workerd runs a promise's
   * continuations in the context of whoever resolved it, so a test must settle
   * a manual launch from inside the object, never from the test's own context.
   */
  inside<T>(fn: () => T | Promise<T>): Promise<T>;
  /** Waits for the pool's next manual launch. */
  nextLaunch(): Promise<PendingLaunch>;
  expectConsistent(): Promise<void>;
}

export function poolStub(tenant: string, name: string): DurableObjectStub<PoolObject> {
  return env.POOL.get(env.POOL.idFromName(`${tenant}/${name}`));
}

/** Pools that share an account: one tenant each (or the same), one governor and one clock (see `testAccount`). */
export interface PoolPlacement {
  tenant?: string;
  /** The governor's object name; the pool gets one of its own by default. */
  governor?: string;
  clock?: { now: number };
}

/** A governor of the test's own on a virtual clock, for pools that share an account. */
export async function testAccount(): Promise<{ governor: string; clock: { now: number }; stub: DurableObjectStub<CapacityGovernor> }> {
  const governor = `test-account-${crypto.randomUUID()}`;
  const clock = { now: Date.now() };
  const stub = env.GOVERNOR.get(env.GOVERNOR.idFromName(governor));
  await runInDurableObject(stub, (object: CapacityGovernor) => {
    object.clock = () => clock.now;
  });
  return { governor, clock, stub };
}

export async function faultPool(config: PoolConfigPatch = {}, provider = new FaultProvider(), placement: PoolPlacement = {}): Promise<TestPool> {
  const name = poolName("fault");
  const tenant = placement.tenant ?? "dev";
  let stub = poolStub(tenant, name);
  const clock = placement.clock ?? { now: Date.now() };
  // A governor of the pool's own by default, on the same clock: the account's
  // limits, breaker and platform pauses a test causes never reach other tests.
  const governor = placement.governor ?? `test-${name}`;
  await runInDurableObject(stub, (object: PoolObject) => {
    object.useProvider(provider);
    object.clock = () => clock.now;
    object.useGovernor(governor);
  });
  if (!placement.governor) {
    await runInDurableObject(env.GOVERNOR.get(env.GOVERNOR.idFromName(governor)), (object: CapacityGovernor) => {
      object.clock = () => clock.now;
    });
  }
  const configured = await stub.configure(tenant, name, config);
  expect(configured.ok).toBe(true);
  const pool: TestPool = {
    name,
    tenant,
    get stub() {
      return stub;
    },
    reconnect() {
      stub = poolStub(tenant, name);
    },
    provider,
    clock,
    acquire: (options = {}) => stub.acquire({ leaseId: crypto.randomUUID(), tenant, pool: name, owner: "test", ...options }),
    async advance(ms) {
      // Calls on one stub arrive in order: this round trip guarantees every call
      // the test already made has taken its decision at the old time.
      await stub.checkInvariants();
      // A launch asks the account's governor first: the provider has it (or the launch was deferred) before time moves.
      await stub.permitsAnswered();
      clock.now += ms;
      await runDurableObjectAlarm(stub);
      // Reconciliation runs beside the alarm, not inside it.
      await stub.reconciled();
    },
    effectsDone: () => stub.effectsDone(),
    inside: (fn) => runInDurableObject(stub, () => fn()),
    nextLaunch: () => runInDurableObject(stub, () => provider.nextLaunch()),
    async counts() {
      const described = await stub.describe();
      if (!described.ok) throw new Error(described.failure.detail);
      return described.value.counts;
    },
    async expectConsistent() {
      const report = await stub.checkInvariants();
      expect(report.violations).toEqual([]);
      expect(report.consistent).toBe(true);
    },
  };
  return pool;
}

/** Lets queued microtasks and RPC round trips run (never a timed sleep). */
export async function flush(stub: DurableObjectStub<PoolObject>): Promise<void> {
  await stub.checkInvariants();
}

/** The lease of an acquire the test expects to be granted (a refusal fails the test with its code and detail). */
export function granted(result: Awaited<ReturnType<PoolObject["acquire"]>>) {
  if (!result.ok) throw new Error(`expected a lease, got ${result.failure.code}: ${result.failure.detail}`);
  return result.value.lease;
}

type Cursor = SqlStorageCursor<Record<string, SqlStorageValue>>;

/**
 * The cursor of every SQL statement the pool object runs while `work` runs,
 * called from inside the object (runInDurableObject): what it read and wrote.
 */
export async function statementsDuring(object: PoolObject, work: () => Promise<unknown>): Promise<Cursor[]> {
  const sql = (object as unknown as { db: { sql: SqlStorage } }).db.sql;
  const real = sql.exec.bind(sql);
  const cursors: Cursor[] = [];
  (sql as { exec: SqlStorage["exec"] }).exec = ((query: string, ...bindings: SqlStorageValue[]) => {
    const cursor = real(query, ...bindings);
    cursors.push(cursor);
    return cursor;
  }) as SqlStorage["exec"];
  try {
    await work();
  } finally {
    (sql as { exec: SqlStorage["exec"] }).exec = real;
  }
  return cursors;
}
