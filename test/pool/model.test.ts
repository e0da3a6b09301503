/**
 * Model-based test of the pool object (fast-check `fc.commands`): random
 * sequences of acquire (waiting or not, alone or several together), release,
 * renew, release-all, time advancing past deadlines, launches resolved in any
 * order with success,
 * failure or the platform limit, browsers crashing, callers going away, the
 * object restarting, and operators draining, resuming, force-releasing,
 * purging idle browsers and deleting the pool (whose browser closes, too, land
 * in any order), against a small reference model of what every caller was
 * told. After every step:
 *
 *   - checkInvariants() reports nothing;
 *   - every lease a caller holds (per the model) is active in the pool with the
 *     same session and expiry, no two share a session, and no other lease is active;
 *   - every caller still waiting (per the model) is waiting in the pool, or is
 *     told its outcome at once: a lease decided in SQL but never answered is the
 *     incident's failure;
 *   - ended leases stay ended;
 *   - every session idle or leased is a live browser (nothing closed comes back);
 *   - no grant ever skipped an older waiter: when a lease became active, no
 *     lease still waiting had a smaller (rank, seq) (first come, first served,
 *     read back from the pool's journal), and every launch reserved for a
 *     caller was reserved for the oldest waiter with no launch or check under
 *     way for it (watched as each reservation is made).
 *
 * And at the end: after releasing everything and letting every deadline pass,
 * nothing is leased, launching or waiting, and every caller got an answer.
 *
 * Launches, closes, resets and pings are manual, so the order in which they
 * land (and whether they fail), relative to releases, expiries, aborts and
 * restarts, is chosen by fast-check: the pool object's awaits resolve in
 * adversarial orders. `npm test` runs a bounded number of
 * sequences; `npm run test:deep` runs many more (MODEL_RUNS, default 500) and
 * replays a failure with MODEL_SEED and MODEL_PATH.
 */
import { abortAllDurableObjects, runInDurableObject } from "cloudflare:test";
import fc from "fast-check";
import { afterEach, describe, expect, inject, it, vi } from "vitest";
import type { AcquireView, PoolObject } from "../../src/pool/object";
import type { Result } from "../../src/result";
import type { PoolStore } from "../../src/pool/store";
import { hasSchema } from "../../src/pool/schema";
import { providerFactory } from "../../src/browser/factory";
import { IO_TIMEOUTS } from "../../src/pool/shell";
import { type FaultRule, injectFaults } from "../api/stub-faults";
import { FaultProvider } from "../support/fault-provider";
import { faultPool, flush, type TestPool } from "../support/pool";

const realFactory = { ...providerFactory };
let restoreFaults: (() => void) | undefined;
const realListTimeout = IO_TIMEOUTS.list;
afterEach(() => {
  restoreFaults?.();
  IO_TIMEOUTS.list = realListTimeout;
  providerFactory.create = realFactory.create;
  providerFactory.now = realFactory.now;
});

type Told =
  | { state: "waiting" }
  | { state: "active"; sessionId: string; expiresAt: number; grantedAt: number; connected: boolean }
  | { state: "ended"; why: string };

/** The connect token every lease of the model is acquired with (its hash, as the Worker passes it). */
const TOKEN_HASH = "d".repeat(64);

interface Model {
  /** The pool's connectWithinSeconds: an unconnected lease ends that long after its grant (0 = never). */
  connectWithinMs: number;
  leases: Map<string, Told>;
  /** Order of creation, so commands can pick leases by index. */
  order: string[];
}

interface Real {
  pool: TestPool;
  provider: FaultProvider;
  /** Deletions in flight or done, with their answers once they come. */
  deletions: { answer?: string; done: Promise<void> }[];
  /** Acquire calls in flight (by lease id) and their answers once they come. */
  calls: Map<string, { answer?: Result<AcquireView> | { ok: false; failure: { code: "rpc_failed" } } }>;
  answered: Map<string, Promise<void>>;
  /** The pool's calls to the registry that fail next (RpcFails adds to `times`). */
  rpcFaults: Record<"track" | "forget" | "lostLaunches", FaultRule>;
  /** Launches reserved for someone other than the oldest waiter without a launch or check (see `watchReservations`). */
  misreserved: string[];
}

const ANSWER_WITHIN_MS = 2_000;
const FAILURE_CODES = new Set(["pool_exhausted", "browser_unavailable", "lease_not_active", "rpc_failed", "pool_draining", "pool_busy"]);

function pick<T>(items: T[], index: number): T | undefined {
  return items.length === 0 ? undefined : items[index % items.length];
}

/** Brings the model up to date with the answers callers received, then checks everything the header promises. */
async function check(m: Model, r: Real): Promise<void> {
  await flush(r.pool.stub);
  await watchReservations(r);
  const stub = r.pool.stub;
  for (const id of m.order) {
    const told = m.leases.get(id)!;
    const found = await stub.getLease(id);
    if (told.state === "waiting") {
      if (!found.ok) {
        // Not in SQL at all: the request was refused before a row was written, or is
        // still creating the pool (asking the tenant's quota); either way it is answered
        // or recorded soon.
        await answeredOrRecorded(r, id);
      } else if (found.value.status !== "waiting") {
        await answerOf(r, id, `a lease that became ${found.value.status}`);
      }
      absorb(m, r, id);
    }
  }
  for (const id of m.order) {
    const told = m.leases.get(id)!;
    const found = await stub.getLease(id);
    if (told.state === "active") {
      expect(found.ok, `lease ${id} the caller holds exists`).toBe(true);
      if (!found.ok) continue;
      expect(found.value.status, `lease ${id} the caller holds is active`).toBe("active");
      expect(found.value.sessionId).toBe(told.sessionId);
      expect(Date.parse(found.value.expiresAt!)).toBe(told.expiresAt);
    } else if (told.state === "ended" && found.ok) {
      expect(["released", "expired", "failed"], `ended lease ${id} stays ended (${told.why})`).toContain(found.value.status);
    } else if (told.state === "waiting" && found.ok && found.value.status !== "waiting") {
      // It left the queue since the look above (an effect's outcome landed meanwhile,
      // such as a launch that threw after the account's permit): its caller is answered all the same.
      await answerOf(r, id, `a lease that became ${found.value.status}`);
      absorb(m, r, id);
    }
  }
  const active = [...m.leases.entries()].filter(([, t]) => t.state === "active") as [string, Extract<Told, { state: "active" }>][];
  const sessions = active.map(([, t]) => t.sessionId);
  expect(new Set(sessions).size, "no session is leased twice").toBe(sessions.length);
  const listed = await stub.listLeases({ status: "active", limit: 100 });
  // A pool deleted (or being deleted) holds no lease: deletion is refused while one is active or waiting.
  if (!listed.ok) expect(active.map(([id]) => id), `no lease is held in a deleted pool (${listed.failure.code})`).toEqual([]);
  if (listed.ok) expect(listed.value.leases.map((l) => l.id).sort(), "active leases are exactly the ones callers hold").toEqual(active.map(([id]) => id).sort());
  // A browser the pool may hand out (idle) or has handed out (leased) is alive:
  // crashes are reconciled in the step that causes them, and a closed browser
  // must never come back (a late reset or launch landing after the close).
  const usable = await runInDurableObject(stub, (object: PoolObject, state) => {
    // A deleted pool has no tables (and holds nothing).
    if (!hasSchema(state.storage.sql)) return [];
    const db = (object as unknown as { db: PoolStore }).db;
    return [...db.sessionsIn("idle"), ...db.sessionsIn("leased")].map((s) => s.session_id);
  });
  for (const sessionId of usable) expect(r.provider.live.has(sessionId!), `session ${sessionId} in use or idle is a live browser`).toBe(true);
  expect(await grantsThatSkippedAWaiter(stub), "no grant skips an older waiter").toEqual([]);
  expect(r.misreserved, "a launch for a caller is reserved for the oldest waiter without one").toEqual([]);
  const report = await stub.checkInvariants();
  expect(report.violations).toEqual([]);
}

/**
 * First come, first served, read back from the journal: replays when each lease
 * started waiting (`requested`) and stopped (`granted`, `wait_failed`), and
 * returns every grant made while a lease ahead of it in the queue (smaller
 * (rank, seq)) was still waiting.
 */
async function grantsThatSkippedAWaiter(stub: DurableObjectStub<PoolObject>): Promise<string[]> {
  return runInDurableObject(stub, (_object: PoolObject, state) => {
    const sql = state.storage.sql;
    // A deleted pool has no tables (and holds nothing).
    if (!hasSchema(sql)) return [];
    const place = new Map(
      sql.exec<{ id: string; rank: number; seq: number }>(`SELECT id, rank, seq FROM leases`).toArray().map((lease) => [lease.id, lease]),
    );
    const ahead = (a: { rank: number; seq: number }, b: { rank: number; seq: number }) => a.rank < b.rank || (a.rank === b.rank && a.seq < b.seq);
    const waiting = new Set<string>();
    const skipped: string[] = [];
    const events = sql.exec<{ event: string; lease_id: string }>(
      `SELECT event, lease_id FROM journal WHERE event IN ('requested', 'granted', 'wait_failed') AND lease_id IS NOT NULL ORDER BY seq`,
    );
    for (const { event, lease_id: id } of events) {
      if (event === "requested") {
        waiting.add(id);
        continue;
      }
      waiting.delete(id);
      const granted = place.get(id);
      if (event !== "granted" || !granted) continue;
      for (const other of waiting) {
        const waiter = place.get(other);
        if (waiter && ahead(waiter, granted)) skipped.push(`${id} (rank ${granted.rank}, seq ${granted.seq}) granted while ${other} (rank ${waiter.rank}, seq ${waiter.seq}) waited`);
      }
    }
    return skipped;
  });
}

/** Pool stores already watched by `watchReservations` (a restarted object has a new one). */
const watched = new WeakSet<PoolStore>();

/**
 * Watches, inside the pool object's transaction, every launch it reserves: one
 * for a caller must go to the oldest waiter (lowest (rank, seq)) that has no
 * launch or check under way, and one for nobody (warm) only when no waiter
 * lacks one. Only observes: the reservation is made as the pool decided.
 * (Launches the restarted object reserves in its constructor, before this
 * watches its store, go unobserved.)
 */
async function watchReservations(r: Real): Promise<void> {
  await runInDurableObject(r.pool.stub, (object: PoolObject, state) => {
    const db = (object as unknown as { db: PoolStore }).db;
    if (watched.has(db)) return;
    watched.add(db);
    const sql = state.storage.sql;
    const insertLaunching = db.insertLaunching.bind(db);
    db.insertLaunching = (leaseId, now, deadline) => {
      const oldest = sql
        .exec<{ id: string }>(
          `SELECT l.id FROM leases l WHERE l.status = 'waiting'
             AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.state IN ('launching', 'resetting') AND s.lease_id = l.id)
           ORDER BY l.rank, l.seq LIMIT 1`,
        )
        .toArray()[0]?.id;
      if ((oldest ?? null) !== leaseId) r.misreserved.push(`a launch reserved for ${leaseId ?? "nobody"} while ${oldest} was the oldest waiter without one`);
      return insertLaunching(leaseId, now, deadline);
    };
  });
}

/** Waits (bounded) for the answer to a caller whose lease left the waiting state. */
async function answerOf(r: Real, id: string, what: string): Promise<void> {
  const call = r.calls.get(id);
  if (!call || call.answer) return;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), ANSWER_WITHIN_MS)));
  const outcome = await Promise.race([r.answered.get(id)!.then(() => "answered" as const), late]);
  clearTimeout(timer);
  expect(outcome, `the caller of ${what} (${id}) is answered`).toBe("answered");
}

/** Waits (bounded) until a request absent from SQL is answered, or its lease row appears. */
async function answeredOrRecorded(r: Real, id: string): Promise<void> {
  const call = r.calls.get(id);
  if (!call || call.answer) return;
  const deadline = Date.now() + ANSWER_WITHIN_MS;
  while (!call.answer && Date.now() < deadline) {
    if ((await r.pool.stub.getLease(id)).ok) return;
    await Promise.race([r.answered.get(id)!, scheduler.wait(20)]);
  }
  expect(call.answer !== undefined, `the caller of a request not in SQL (${id}) is answered or its lease recorded`).toBe(true);
}

/** Applies a received answer to the model. */
function absorb(m: Model, r: Real, id: string): void {
  const answer = r.calls.get(id)?.answer;
  if (!answer || m.leases.get(id)?.state !== "waiting") return;
  if (answer.ok) {
    const lease = answer.value.lease;
    m.leases.set(id, { state: "active", sessionId: lease.sessionId!, expiresAt: Date.parse(lease.expiresAt!), grantedAt: Date.parse(lease.grantedAt!), connected: false });
  } else {
    expect(FAILURE_CODES, `failure code ${answer.failure.code}`).toContain(answer.failure.code);
    m.leases.set(id, { state: "ended", why: answer.failure.code });
  }
}

/** After a release-like answer: what the model now believes. */
function endFrom(m: Model, id: string, status: string, why: string): void {
  if (status === "waiting" || status === "active") return;
  const told = m.leases.get(id);
  if (told && told.state !== "waiting") m.leases.set(id, { state: "ended", why });
}

// ---- commands ---------------------------------------------------------------------

class Acquire implements fc.AsyncCommand<Model, Real> {
  constructor(readonly waitSeconds: number, readonly ttlSeconds: number) {}
  check = () => true;
  async run(m: Model, r: Real) {
    const id = crypto.randomUUID();
    const call: { answer?: Result<AcquireView> | { ok: false; failure: { code: "rpc_failed" } } } = {};
    r.calls.set(id, call);
    r.answered.set(
      id,
      r.pool
        .acquire({ leaseId: id, waitSeconds: this.waitSeconds, ttlSeconds: this.ttlSeconds, tokenHash: TOKEN_HASH })
        .then(
          (answer) => void (call.answer = answer),
          () => void (call.answer = { ok: false, failure: { code: "rpc_failed" } }),
        ),
    );
    m.leases.set(id, { state: "waiting" });
    m.order.push(id);
    await check(m, r);
  }
  toString = () => `acquire(wait ${this.waitSeconds}s, ttl ${this.ttlSeconds}s)`;
}

/** Callers arriving together, each willing to queue: the queue holds several waiters with nothing under way for them. */
class Burst implements fc.AsyncCommand<Model, Real> {
  constructor(readonly callers: number) {}
  check = () => true;
  async run(m: Model, r: Real) {
    for (let i = 0; i < this.callers; i += 1) await new Acquire(3, 30).run(m, r);
  }
  toString = () => `burst(${this.callers})`;
}

class ResolveLaunch implements fc.AsyncCommand<Model, Real> {
  constructor(readonly index: number, readonly outcome: "ok" | "fail" | "limit") {}
  check = () => true;
  async run(m: Model, r: Real) {
    const launch = r.provider.takeLaunch(this.index);
    if (launch) {
      await r.pool.inside(() => {
        if (this.outcome === "ok") launch.succeed();
        else launch.fail(this.outcome === "limit" ? "Unable to create new browser: code: 429" : "injected launch failure");
      });
    }
    await check(m, r);
  }
  toString = () => `launch#${this.index} → ${this.outcome}`;
}

class ResolveIo implements fc.AsyncCommand<Model, Real> {
  constructor(readonly index: number, readonly outcome: "ok" | "fail") {}
  check = () => true;
  async run(m: Model, r: Real) {
    const io = r.provider.takeIo(this.index);
    if (io) await r.pool.inside(() => (this.outcome === "ok" ? io.succeed() : io.fail()));
    await check(m, r);
  }
  toString = () => `io#${this.index} → ${this.outcome}`;
}

class Release implements fc.AsyncCommand<Model, Real> {
  constructor(readonly index: number) {}
  check = (m: Readonly<Model>) => m.order.length > 0;
  async run(m: Model, r: Real) {
    const id = pick(m.order, this.index)!;
    const result = await r.pool.stub.release(id);
    if (result.ok) endFrom(m, id, result.value.status, "released");
    await check(m, r);
  }
  toString = () => `release(#${this.index})`;
}

class Renew implements fc.AsyncCommand<Model, Real> {
  constructor(readonly index: number, readonly ttlSeconds: number) {}
  check = (m: Readonly<Model>) => m.order.length > 0;
  async run(m: Model, r: Real) {
    const id = pick(m.order, this.index)!;
    const told = m.leases.get(id)!;
    const result = await r.pool.stub.renew(id, this.ttlSeconds);
    if (result.ok) {
      expect(told.state, "only a held lease can be renewed").toBe("active");
      const held = told as Extract<Told, { state: "active" }>;
      m.leases.set(id, { ...held, sessionId: result.value.sessionId!, expiresAt: Date.parse(result.value.expiresAt!) });
    } else if (told.state === "active") {
      // A held lease refuses renewal only once it is past its expiry (no resurrection).
      expect(result.failure.code).toBe("lease_not_active");
      expect(told.expiresAt).toBeLessThanOrEqual(r.pool.clock.now);
      m.leases.set(id, { state: "ended", why: "renewed after expiry" });
    }
    await check(m, r);
  }
  toString = () => `renew(#${this.index}, ${this.ttlSeconds}s)`;
}

class ReleaseAll implements fc.AsyncCommand<Model, Real> {
  check = () => true;
  async run(m: Model, r: Real) {
    const held = [...m.leases.entries()].filter(([, t]) => t.state === "active").map(([id]) => id);
    const result = await r.pool.stub.releaseAll();
    if (result.ok) {
      expect(result.value.released, "release-all ends exactly the held leases").toBe(held.length);
      for (const id of held) m.leases.set(id, { state: "ended", why: "release-all" });
    } else {
      expect(held).toEqual([]);
    }
    await check(m, r);
  }
  toString = () => "releaseAll";
}

class Advance implements fc.AsyncCommand<Model, Real> {
  constructor(readonly ms: number) {}
  check = () => true;
  async run(m: Model, r: Real) {
    await advance(m, r, this.ms);
    await check(m, r);
  }
  toString = () => `advance(${this.ms} ms)`;
}

/**
 * Time passes and the platform runs the alarm. The alarm must be set by then
 * if anything is due: a setAlarm that failed is retried by the pool itself
 * (bounded wait), never left lost. (Not while a deletion runs: it answers by
 * its own I/O deadlines, and a restart takes it back and re-arms.)
 */
async function advance(m: Model, r: Real, ms: number): Promise<void> {
  await flush(r.pool.stub);
  const exists = (await r.pool.stub.describe()).ok;
  if (exists) await vi.waitFor(
    async () => {
      const { alarm, due } = await runInDurableObject(r.pool.stub, async (object: PoolObject, state) => {
        if (!hasSchema(state.storage.sql)) return { alarm: null, due: false };
        const db = (object as unknown as { db: PoolStore }).db;
        return { alarm: await state.storage.getAlarm(), due: db.deadlines().earliest !== null };
      });
      if (due) expect(alarm, "the alarm is set while anything has a deadline").not.toBeNull();
    },
    { timeout: 3_000, interval: 20 },
  );
  await r.pool.advance(ms);
  const now = r.pool.clock.now;
  for (const [id, told] of m.leases) {
    if (told.state !== "active") continue;
    if (told.expiresAt <= now) m.leases.set(id, { state: "ended", why: "expired" });
    else if (m.connectWithinMs > 0 && !told.connected && told.grantedAt + m.connectWithinMs <= now) m.leases.set(id, { state: "ended", why: "not_connected" });
  }
}

/** The platform's next list omits a live browser (it lags): reconciliation must not end anything that runs. */
class OmitFromList implements fc.AsyncCommand<Model, Real> {
  constructor(readonly index: number) {}
  check = () => true;
  async run(m: Model, r: Real) {
    // A leased browser is the one whose wrongful end a caller would notice: with
    // none held, one is acquired first (its launch lands), when the pool allows.
    const heldSessions = () => [...m.leases.values()].flatMap((t) => (t.state === "active" && r.provider.live.has(t.sessionId) ? [t.sessionId] : []));
    if (heldSessions().length === 0) {
      await new Acquire(0, 30).run(m, r);
      for (let launch = r.provider.takeLaunch(0); launch; launch = r.provider.takeLaunch(0)) {
        const landing = launch;
        await r.pool.inside(() => void landing.succeed());
      }
      await check(m, r);
    }
    const held = heldSessions();
    const omitted = pick(held.length > 0 ? held : [...r.provider.live.keys()], this.index);
    if (omitted) {
      r.provider.listPlan = [`omit:${omitted}`];
      r.pool.clock.now += 1;
      await r.pool.stub.reconcileNow();
    }
    await check(m, r);
  }
  toString = () => `omitFromList(#${this.index})`;
}

/** The platform's list hangs while time passes: expiries and waiter deadlines still happen on time. */
class AdvanceWhileListHangs implements fc.AsyncCommand<Model, Real> {
  constructor(readonly ms: number) {}
  check = () => true;
  async run(m: Model, r: Real) {
    r.provider.listPlan = ["hang"];
    const hung = r.pool.stub.reconcileNow();
    await advance(m, r, this.ms);
    await hung;
    r.provider.listPlan = [];
    await check(m, r);
  }
  toString = () => `advanceWhileListHangs(${this.ms} ms)`;
}

/** The next setAlarm the pool makes is refused by storage. */
class SetAlarmFails implements fc.AsyncCommand<Model, Real> {
  check = () => true;
  async run(m: Model, r: Real) {
    await runInDurableObject(r.pool.stub, (_object, state) => {
      const storage = state.storage as { setAlarm: DurableObjectStorage["setAlarm"] };
      const real = storage.setAlarm.bind(state.storage);
      storage.setAlarm = (time, options) => {
        storage.setAlarm = real;
        return Promise.reject(new Error("injected: setAlarm refused"));
      };
    });
    await check(m, r);
  }
  toString = () => "setAlarmFails";
}

/** The next effect of a kind throws synchronously, before its I/O starts. */
class EffectThrows implements fc.AsyncCommand<Model, Real> {
  constructor(readonly kind: "close" | "reset" | "ping" | "launch") {}
  check = () => true;
  async run(m: Model, r: Real) {
    r.provider.throwNext.push(this.kind);
    await check(m, r);
  }
  toString = () => `effectThrows(${this.kind})`;
}

/**
 * A client connects to a held lease while the pool may be talking to its
 * browser (a check or ping held open), on a platform that accepts one
 * connection per browser: the connect is never refused because of the pool.
 */
class ConnectDuringPing implements fc.AsyncCommand<Model, Real> {
  constructor(readonly index: number) {}
  check = (m: Readonly<Model>) => [...m.leases.values()].some((t) => t.state === "active");
  async run(m: Model, r: Real) {
    const held = m.order.filter((id) => m.leases.get(id)!.state === "active");
    const id = pick(held, this.index);
    const told = id ? (m.leases.get(id) as Extract<Told, { state: "active" }>) : undefined;
    if (id && told) {
      const opening = r.pool.stub.openConnection(id, TOKEN_HASH, true);
      // The pool's own conversations with that browser end (they are what a connect waits for).
      for (let io = r.provider.takeConversationOf(told.sessionId); io; io = r.provider.takeConversationOf(told.sessionId)) {
        const done = io;
        await r.pool.inside(() => done.succeed());
      }
      const opened = await opening;
      expect(opened.ok, `a held lease (${id}) can be connected to`).toBe(true);
      if (opened.ok) {
        m.leases.set(id, { ...told, connected: true });
        const release = r.provider.occupy(told.sessionId);
        release();
        await r.pool.stub.closeConnection(opened.value.connectionId!);
      }
    }
    await check(m, r);
  }
  toString = () => `connectDuringPing(#${this.index})`;
}

/** A call to the account's registry fails (the pool retries it from its alarm). */
class RpcFails implements fc.AsyncCommand<Model, Real> {
  constructor(readonly method: "track" | "forget" | "lostLaunches") {}
  check = () => true;
  async run(m: Model, r: Real) {
    r.rpcFaults[this.method].times += 1;
    await check(m, r);
  }
  toString = () => `rpcFails(${this.method})`;
}

class Crash implements fc.AsyncCommand<Model, Real> {
  constructor(readonly index: number) {}
  check = () => true;
  async run(m: Model, r: Real) {
    const victim = pick([...r.provider.live.keys()], this.index);
    if (victim) {
      r.provider.crash(victim);
      // Reconciliation judges only sessions launched before its list was taken.
      r.pool.clock.now += 1;
      await r.pool.stub.reconcileNow();
      for (const [id, told] of m.leases) {
        if (told.state === "active" && told.sessionId === victim) m.leases.set(id, { state: "ended", why: "browser crashed" });
      }
    }
    await check(m, r);
  }
  toString = () => `crash(#${this.index})`;
}

class Abort implements fc.AsyncCommand<Model, Real> {
  constructor(readonly index: number) {}
  check = (m: Readonly<Model>) => [...m.leases.values()].some((t) => t.state === "waiting");
  async run(m: Model, r: Real) {
    const waiting = m.order.filter((id) => m.leases.get(id)!.state === "waiting");
    const id = pick(waiting, this.index);
    if (id) await r.pool.stub.cancel(id);
    await check(m, r);
  }
  toString = () => `abort(#${this.index})`;
}

class Restart implements fc.AsyncCommand<Model, Real> {
  check = () => true;
  async run(m: Model, r: Real) {
    await abortAllDurableObjects();
    r.pool.reconnect();
    // Every caller still waiting loses its request with the old instance.
    for (const id of m.order) {
      if (m.leases.get(id)!.state === "waiting") await answerOf(r, id, "a request cut off by the restart");
    }
    await check(m, r);
  }
  toString = () => "restart";
}

class Drain implements fc.AsyncCommand<Model, Real> {
  check = () => true;
  async run(m: Model, r: Real) {
    // Waiters are turned away (503 pool_draining): check() waits for those answers.
    await r.pool.stub.drain();
    await check(m, r);
  }
  toString = () => "drain";
}

class Resume implements fc.AsyncCommand<Model, Real> {
  check = () => true;
  async run(m: Model, r: Real) {
    await r.pool.stub.resume();
    await check(m, r);
  }
  toString = () => "resume";
}

class ForceRelease implements fc.AsyncCommand<Model, Real> {
  constructor(readonly index: number) {}
  check = (m: Readonly<Model>) => m.order.length > 0;
  async run(m: Model, r: Real) {
    const id = pick(m.order, this.index)!;
    const result = await r.pool.stub.forceRelease(id);
    if (result.ok) endFrom(m, id, result.value.status, "forced");
    await check(m, r);
  }
  toString = () => `forceRelease(#${this.index})`;
}

class PurgeIdle implements fc.AsyncCommand<Model, Real> {
  check = () => true;
  async run(m: Model, r: Real) {
    await r.pool.stub.purgeIdle();
    await check(m, r);
  }
  toString = () => "purgeIdle";
}

/**
 * Starts deleting the pool without waiting: it finishes once its browsers'
 * closes land (ResolveIo) or time out, while the other commands go on. A
 * deletion that succeeds found nothing active or waiting, so the model's
 * callers are unchanged by it.
 */
class Delete implements fc.AsyncCommand<Model, Real> {
  check = () => true;
  async run(m: Model, r: Real) {
    const deletion: { answer?: string; done: Promise<void> } = { done: Promise.resolve() };
    deletion.done = r.pool.stub.deletePool(r.pool.tenant, r.pool.name).then(
      (answer) => void (deletion.answer = answer.ok ? "deleted" : answer.failure.code),
      () => void (deletion.answer = "rpc_failed"),
    );
    r.deletions.push(deletion);
    await check(m, r);
  }
  toString = () => "delete";
}

const commands = [
  fc.tuple(fc.constantFrom(0, 0, 3), fc.constantFrom(5, 30)).map(([w, t]) => new Acquire(w, t)),
  fc.constantFrom(2, 3).map((n) => new Burst(n)),
  fc.tuple(fc.nat(8), fc.constantFrom<"ok" | "fail" | "limit">("ok", "ok", "ok", "fail", "limit")).map(([i, o]) => new ResolveLaunch(i, o)),
  // Twice: closes and resets outnumber launches, and their order is what races.
  ...[1, 2].map(() => fc.tuple(fc.nat(8), fc.constantFrom<"ok" | "fail">("ok", "ok", "ok", "fail")).map(([i, o]) => new ResolveIo(i, o))),
  fc.nat(8).map((i) => new Release(i)),
  fc.tuple(fc.nat(8), fc.constantFrom(5, 30)).map(([i, t]) => new Renew(i, t)),
  fc.constant(new ReleaseAll()),
  fc.constantFrom(1_000, 5_000, 31_000).map((ms) => new Advance(ms)),
  fc.nat(8).map((i) => new Crash(i)),
  fc.nat(8).map((i) => new Abort(i)),
  fc.constant(new Restart()),
  fc.constant(new Drain()),
  fc.constant(new Resume()),
  fc.nat(8).map((i) => new ForceRelease(i)),
  fc.constant(new PurgeIdle()),
  fc.constant(new Delete()),
  // The platform's own failures.
  fc.nat(8).map((i) => new OmitFromList(i)),
  fc.constantFrom(1_000, 5_000, 31_000).map((ms) => new AdvanceWhileListHangs(ms)),
  fc.constant(new SetAlarmFails()),
  fc.constantFrom<"close" | "reset" | "ping" | "launch">("close", "reset", "ping", "launch").map((kind) => new EffectThrows(kind)),
  fc.nat(8).map((i) => new ConnectDuringPing(i)),
  fc.constantFrom<"track" | "forget" | "lostLaunches">("track", "forget", "lostLaunches").map((method) => new RpcFails(method)),
];

type SystemConfig = { maxSessions: number; reuse: boolean; minIdle: number; connectWithinSeconds: number };

async function newSystem(config: SystemConfig): Promise<Real> {
  const provider = new FaultProvider();
  provider.defaultPlan = { kind: "manual" };
  provider.manualIo = true;
  // A platform that accepts one connection per browser, as Browser Rendering did until September 2026.
  provider.maxConnections = 1;
  // Another Worker's browser on the same account: the platform's list is never empty only because of this pool.
  provider.spawnForeign();
  // A hung list gives up quickly (real time), in this object and in any it restarts as.
  IO_TIMEOUTS.list = 50;
  const pool = await faultPool(
    { ...config, maxWaiters: 3, launchTimeoutSeconds: 5, idleTimeoutSeconds: 30, defaultTtlSeconds: 30, maxTtlSeconds: 60 },
    provider,
  );
  // A restarted object gets the same provider and clock.
  providerFactory.create = () => provider;
  providerFactory.now = () => pool.clock.now;
  const fails = (method: string): FaultRule => ({
    kind: "registry",
    method,
    times: 0,
    error: () => Object.assign(new Error("injected: the registry is unreachable"), { retryable: true }),
  });
  const rpcFaults = { track: fails("track"), forget: fails("forget"), lostLaunches: fails("lostLaunches") };
  restoreFaults = injectFaults(rpcFaults.track, rpcFaults.forget, rpcFaults.lostLaunches).restore;
  return { pool, provider, calls: new Map(), answered: new Map(), deletions: [], rpcFaults, misreserved: [] };
}

/** Liveness: once everything is released and every deadline has passed, the pool holds nothing and every caller was answered. */
async function drain(m: Model, r: Real): Promise<void> {
  r.provider.defaultPlan = { kind: "ok" };
  r.provider.manualIo = false;
  while (r.provider.pendingLaunches > 0 || r.provider.pendingIoCount > 0) {
    const launch = r.provider.takeLaunch(0);
    if (launch) await r.pool.inside(() => void launch.succeed());
    const io = r.provider.takeIo(0);
    if (io) await r.pool.inside(() => io.succeed());
  }
  await r.pool.stub.resume();
  await r.pool.stub.releaseAll();
  for (let i = 0; i < 3; i += 1) await r.pool.advance(61_000);
  await r.pool.effectsDone();
  for (const id of m.order) {
    if (m.leases.get(id)!.state === "waiting") await answerOf(r, id, "a caller at the end");
  }
  // Every deletion answers once its browsers' closes have landed (all resolved above).
  await Promise.all(r.deletions.map((d) => d.done));
  for (const deletion of r.deletions) expect(["deleted", "pool_busy", "not_found", "rpc_failed"], "a deletion's answer").toContain(deletion.answer);
  // A pool deleted last and never used again is gone: nothing left to hold anything.
  if (!(await r.pool.stub.describe()).ok) return;
  const counts = await r.pool.counts();
  expect(counts, "nothing is leased, launching, resetting, closing or waiting once all is released and every deadline passed").toMatchObject({
    leased: 0,
    launching: 0,
    waiting: 0,
    resetting: 0,
    closing: 0,
  });
  for (const call of r.calls.values()) expect(call.answer, "every caller got an answer").toBeDefined();
  expect((await r.pool.stub.checkInvariants()).violations).toEqual([]);
}

describe("the pool against a reference model", () => {
  const runs = inject("modelRuns");
  it("keeps its invariants and the model's view through random operations and faults", { timeout: 60_000 + runs * 300 }, async () => {
    const seed = inject("modelSeed");
    const path = inject("modelPath");
    await fc.assert(
      fc.asyncProperty(
        fc.record({ maxSessions: fc.constantFrom(1, 2, 3), reuse: fc.boolean(), minIdle: fc.constantFrom(0, 0, 1), connectWithinSeconds: fc.constantFrom(0, 20) }),
        fc.commands(commands, { maxCommands: 40 }),
        async (config, cmds) => {
          const r = await newSystem(config);
          const m: Model = { connectWithinMs: config.connectWithinSeconds * 1000, leases: new Map(), order: [] };
          await fc.asyncModelRun(() => ({ model: m, real: r }), cmds);
          await drain(m, r);
        },
      ),
      // A failure prints `{ seed, path }`: MODEL_SEED=… MODEL_PATH=… npm run test:deep replays it.
      { numRuns: runs, ...(seed === undefined ? {} : { seed }), ...(path === undefined ? {} : { path }), verbose: 1 },
    );
  });
});

declare module "vitest" {
  export interface ProvidedContext {
    modelRuns: number;
    modelSeed: number | undefined;
    modelPath: string | undefined;
  }
}

