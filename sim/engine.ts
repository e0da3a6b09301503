/**
 * The sizing simulator's engine: replays arrivals against the pool's real
 * transitions (src/pool/machine.ts over the pool's real SQLite schema), with a
 * virtual clock instead of time passing and simulated browsers instead of the
 * platform. What it measures is what the broker would decide, not a model of
 * it: the same queue, the same warm target, the same checks, resets and
 * admission control, because the same code decides.
 *
 * As the shell (src/pool/shell.ts) does, each transition runs in one
 * `transactionSync` on the storage it is given, its effects are performed
 * afterwards and each outcome comes back as another transition, and the alarm
 * (`tick`) runs whenever virtual time reaches the earliest deadline in SQL
 * (the store's own `deadlines()` query). Effects are answered by the engine:
 *
 *   launch        launchSucceeded after the launch time (fixed or exponential)
 *   reset         resetSucceeded after resetSeconds (default 0.05 s)
 *   close         closeSucceeded after closeSeconds (default 0.1 s)
 *   check         checkPassed after checkSeconds (default 0: at once)
 *   ping, probe   pingSucceeded, probeAnswered(alive) at once
 *   register      registered at once; forget, reportLost: registryDone at once
 *   grant         the caller's wait is recorded; its client connects at once
 *                 (connected_at is written, as the first CDP connect does), and
 *                 it releases the lease (releaseLease) after its hold time
 *   reject        the caller's failure is recorded
 *
 * What it does not model: the platform refusing or failing launches, the
 * account's concurrent-browser limit and its governor's permits (every launch
 * gets one: one pool with the account to itself), reconciliation, restarts,
 * and callers who give up or renew. Nothing in it awaits except the optional
 * progress report, so a run is deterministic for a given seed.
 */
import { KEEP_ALIVE_MS } from "../src/browser/provider";
import { DEFAULT_CONFIG, type PoolConfig } from "../src/pool/config";
import { checkInvariants } from "../src/pool/invariants";
import {
  checkPassed,
  closeSucceeded,
  type Effect,
  launchSucceeded,
  registered,
  registryDone,
  releaseLease,
  requestLease,
  resetSucceeded,
  type Step,
  tick,
} from "../src/pool/machine";
import { pingSucceeded, probeAnswered } from "../src/pool/liveness";
import { migrate } from "../src/pool/schema";
import { PoolStore } from "../src/pool/store";
import { type Arrival, type ArrivalSource, arrivalsOf } from "./arrivals";
import { EventQueue } from "./queue";
import { type Distribution, sampler, uniform } from "./random";

/** Virtual time starts here (epoch ms), so rows look like a real pool's. */
export const SIM_T0 = 1_700_000_000_000;

/**
 * The pool config a simulation starts from: the broker's defaults with
 * recycling off (maxSessionUses and maxSessionAgeSeconds 0), so a figure shows
 * the queue, not Chromium's upkeep; `config` in the options puts either back.
 */
export const SIM_CONFIG: PoolConfig = { ...DEFAULT_CONFIG, maxSessionUses: 0, maxSessionAgeSeconds: 0 };

export interface SimOptions {
  arrivals: ArrivalSource;
  /** Fields over SIM_CONFIG (maxSessions, minIdle, reuse, maxWaiters, …). */
  config?: Partial<PoolConfig>;
  /** Every caller's waitSeconds. */
  waitSeconds: number;
  /** Every lease's ttl; by default its hold + 60 s (a caller asks for long enough, so nothing expires). */
  ttlSeconds?: number;
  /** Mean time a launch takes. */
  launchSeconds: number;
  launchDist?: Distribution;
  resetSeconds?: number;
  closeSeconds?: number;
  checkSeconds?: number;
  /** Virtual time before the first arrival window opens: the pool starts empty and launches toward minIdle. */
  warmupSeconds?: number;
  /** Seeds the launch times (the arrivals have their own seed). */
  seed?: number;
  /** The keep_alive browsers are launched with (idle and unconnected sessions are pinged every half of it). */
  keepAliveMs?: number;
  /** Also return each arrival's outcome (for tests and short traces). */
  outcomes?: boolean;
  /** Called every `every` arrivals; the engine awaits it (a Worker streams it to the CLI). */
  progress?: { every: number; report: (progress: Progress) => void | Promise<void> };
}

export interface Progress {
  arrivals: number;
  virtualSeconds: number;
}

/** One caller: served after `waitSeconds`, or turned away (`code`) or failed while waiting (`reason`). */
export type Outcome = { waitSeconds: number } | { code: string; reason: string | null };

export interface SimResult {
  arrivals: number;
  served: number;
  /** Waits of the callers served, seconds (arrival to grant). */
  wait: { mean: number; p50: number; p95: number; p99: number; max: number };
  /** Share of callers served who waited at all (more than 0 ms). */
  waitedShare: number;
  /** Acquires answered at once with an error, by code (`pool_exhausted`, `expected_wait_exceeded`, …). */
  rejected: Record<string, number>;
  /** Callers that queued and were failed when their waitSeconds ran out. */
  timedOut: number;
  /** Callers that queued and failed for another reason (end reason, e.g. launch_timeout). */
  failed: Record<string, number>;
  /** Leases ended other than by their holder's release (e.g. expired), by reason. */
  endedEarly: Record<string, number>;
  /** Browsers the pool launched. */
  launched: number;
  /** Mean leased sessions / maxSessions over the arrival window (first to last arrival). */
  utilisation: number;
  meanBusy: number;
  /** Mean browsers running (launching to closed) over the arrival window: what the pool costs. */
  meanBrowsers: number;
  windowSeconds: number;
  /** Virtual time simulated, warm-up and drain included. */
  virtualSeconds: number;
  transitions: number;
  /** The pool's invariant check (src/pool/invariants.ts) after the run; empty when all hold. */
  violations: string[];
  outcomes?: Outcome[];
}

type Callback = () => void;

/**
 * Runs one simulation in `storage`, which must hold no pool yet (a fresh
 * Durable Object's): its tables are made by the pool's own migrations.
 */
export async function simulate(storage: DurableObjectStorage, options: SimOptions): Promise<SimResult> {
  migrate(storage);
  const db = new PoolStore(storage.sql);
  const config: PoolConfig = { ...SIM_CONFIG, ...options.config };
  const keepAliveMs = options.keepAliveMs ?? KEEP_ALIVE_MS;
  const ms = (seconds: number) => Math.round(seconds * 1000);
  const launchTime = sampler(uniform(options.seed ?? 1), options.launchSeconds, options.launchDist ?? "fixed");
  const resetMs = ms(options.resetSeconds ?? 0.05);
  const closeMs = ms(options.closeSeconds ?? 0.1);
  const checkMs = ms(options.checkSeconds ?? 0);
  const waitMs = ms(options.waitSeconds);
  const windowStart = SIM_T0 + ms(options.warmupSeconds ?? 0);

  const queue = new EventQueue<Callback>();
  let now = SIM_T0;
  let alarmAt = Infinity;
  let transitions = 0;

  // What is measured.
  const waits: number[] = [];
  const outcomes: Outcome[] = [];
  const rejected: Record<string, number> = {};
  const failed: Record<string, number> = {};
  const endedEarly: Record<string, number> = {};
  let timedOut = 0;
  let launched = 0;
  let arrived = 0;
  /** Callers whose answer is still to come: lease id → when it arrived, its hold, its index. */
  const pending = new Map<string, { arrivedAt: number; holdMs: number; index: number }>();
  /** Leases granted and not yet ended. */
  const busy = new Set<string>();
  let browsers = 0;
  const area = { busy: 0, browsers: 0, at: windowStart };
  let windowEnd: number | null = null;
  let measured = { busy: 0, browsers: 0 };

  const bump = <K extends string>(tally: Record<K, number>, key: K) => {
    tally[key] = (tally[key] ?? 0) + 1;
  };
  const later = (delayMs: number, fn: Callback) => queue.push(now + delayMs, fn);

  /** Time-weighted sums of busy sessions and running browsers, from the window's start on. */
  const accumulate = () => {
    if (now > area.at) {
      area.busy += busy.size * (now - area.at);
      area.browsers += browsers * (now - area.at);
      area.at = now;
    }
  };

  /** One transition, as the shell runs it: atomically, then its effects, then the alarm. */
  function run<T>(fn: (step: Step) => T): T {
    const step: Step = { db, now, config, keepAliveMs, effects: [] };
    let result: T;
    try {
      result = storage.transactionSync(() => fn(step));
    } catch (error) {
      db.forgetCached();
      throw error;
    }
    db.takeWritten();
    transitions += 1;
    if (transitions % 10_000 === 0) storage.transactionSync(() => db.pruneJournal(20_000));
    for (const effect of step.effects) perform(effect);
    rearm();
    return result;
  }

  /** The alarm's time: the store's earliest deadline, and the shell's other deadlines that tick acts on. */
  function rearm(): void {
    const deadlines = db.deadlines();
    let next = deadlines.earliest ?? Infinity;
    const blocked = Number(db.getMeta("launch_blocked_until") ?? 0);
    if (blocked > now) next = Math.min(next, blocked);
    if (config.connectWithinSeconds > 0 && deadlines.unconnected !== null) {
      next = Math.min(next, deadlines.unconnected + config.connectWithinSeconds * 1000);
    }
    alarmAt = next;
  }

  function perform(effect: Effect): void {
    switch (effect.kind) {
      case "launch": {
        launched += 1;
        accumulate();
        browsers += 1;
        const row = effect.row;
        later(Math.round(launchTime() * 1000), () => run((step) => launchSucceeded(step, row, `sim-browser-${row}`)));
        break;
      }
      case "reset": {
        const row = effect.row;
        later(resetMs, () => run((step) => resetSucceeded(step, row)));
        break;
      }
      case "close": {
        const row = effect.row;
        later(closeMs, () => {
          // Every close the simulator performs succeeds, so each browser is closed once.
          accumulate();
          browsers -= 1;
          run((step) => closeSucceeded(step, row));
        });
        break;
      }
      case "check": {
        const row = effect.row;
        later(checkMs, () => run((step) => checkPassed(step, row)));
        break;
      }
      case "ping": {
        const row = effect.row;
        later(0, () => run((step) => pingSucceeded(step, row)));
        break;
      }
      case "probe": {
        const row = effect.row;
        later(0, () => run((step) => probeAnswered(step, row, true)));
        break;
      }
      case "register": {
        const row = effect.row;
        later(0, () => run((step) => registered(step, row)));
        break;
      }
      case "forget": {
        const rows = [effect.row];
        later(0, () => run((step) => registryDone(step, rows)));
        break;
      }
      case "reportLost": {
        const rows = effect.rows;
        later(0, () => run((step) => registryDone(step, rows)));
        break;
      }
      case "grant":
        served(effect.leaseId);
        break;
      case "reject":
        refused(effect.leaseId, effect.failure.code);
        break;
      case "disconnect":
        if (busy.has(effect.leaseId)) {
          accumulate();
          busy.delete(effect.leaseId);
          if (effect.reason !== "released") bump(endedEarly, effect.reason);
        }
        break;
      default:
        // Effects with no outcome to feed back here (e.g. the account's permits, which the simulator does not model).
        break;
    }
  }

  /** A caller was granted its lease (at once, or by an effect): its wait is recorded, its client connects, and it releases after its hold. */
  function served(leaseId: string): void {
    const caller = pending.get(leaseId);
    if (!caller) return;
    pending.delete(leaseId);
    const waited = now - caller.arrivedAt;
    waits.push(waited);
    if (options.outcomes) outcomes[caller.index] = { waitSeconds: waited / 1000 };
    accumulate();
    busy.add(leaseId);
    // As the first CDP connect does (src/pool/connections.ts): the lease is connected, so connectWithinSeconds never ends it.
    later(0, () =>
      run((step) => {
        const lease = step.db.lease(leaseId);
        if (lease?.status === "active" && lease.connected_at === null) step.db.updateLease(leaseId, { connected_at: step.now });
      }),
    );
    later(caller.holdMs, () => run((step) => releaseLease(step, leaseId)));
  }

  /** A caller that queued was failed (its wait ran out, or its launch failed). */
  function refused(leaseId: string, code: string): void {
    const caller = pending.get(leaseId);
    if (!caller) return;
    pending.delete(leaseId);
    const reason = db.lease(leaseId)?.end_reason ?? null;
    if (reason === "wait_timeout") timedOut += 1;
    else bump(failed, reason ?? code);
    if (options.outcomes) outcomes[caller.index] = { code, reason };
  }

  const source = arrivalsOf(options.arrivals);
  const schedule = (arrival: Arrival, index: number) =>
    queue.push(windowStart + ms(arrival.atSeconds), () => arrive(arrival, index));
  function arrive(arrival: Arrival, index: number): void {
    arrived += 1;
    const id = `sim-${index}`;
    const holdMs = ms(arrival.holdSeconds);
    pending.set(id, { arrivedAt: now, holdMs, index });
    const ttlMs = options.ttlSeconds === undefined ? holdMs + 60_000 : ms(options.ttlSeconds);
    const outcome = run((step) =>
      requestLease(step, { id, owner: "sim", labels: {}, ttlMs, waitMs, idempotencyKey: null, tokenHash: null }),
    );
    if (outcome.kind === "granted") served(id);
    else if (outcome.kind === "rejected" && pending.delete(id)) {
      bump(rejected, outcome.failure.code);
      if (options.outcomes) outcomes[index] = { code: outcome.failure.code, reason: null };
    }
    const next = source.next();
    if (next.done) {
      // The last arrival closes the measured window.
      accumulate();
      windowEnd = now;
      measured = { busy: area.busy, browsers: area.browsers };
    } else {
      schedule(next.value, index + 1);
    }
  }

  // The pool's first alarm: launches toward minIdle start at once, as after a pool's creation.
  run(tick);
  const first = source.next();
  if (!first.done) schedule(first.value, 0);
  else windowEnd = windowStart;

  let ticksNow = 0;
  while (windowEnd === null || pending.size > 0 || busy.size > 0) {
    const next = queue.peek();
    if (alarmAt < (next?.at ?? Infinity)) {
      // The alarm fires before the next event (at the same millisecond, events first).
      ticksNow = alarmAt === now ? ticksNow + 1 : 0;
      if (ticksNow > 100) throw new Error(`the alarm keeps finding work due at ${now - SIM_T0} ms`);
      now = Math.max(now, alarmAt);
      run(tick);
      continue;
    }
    if (!next) throw new Error("the simulation stalled: callers are waiting but nothing is scheduled");
    queue.pop();
    now = next.at;
    const before = arrived;
    next.event();
    if (options.progress && arrived !== before && arrived % options.progress.every === 0) {
      await options.progress.report({ arrivals: arrived, virtualSeconds: (now - windowStart) / 1000 });
    }
  }

  const windowMs = (windowEnd ?? windowStart) - windowStart;
  const sorted = Float64Array.from(waits).sort();
  const quantile = (p: number) => (sorted.length === 0 ? NaN : sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)]! / 1000);
  const meanBusy = windowMs > 0 ? measured.busy / windowMs : 0;
  return {
    arrivals: arrived,
    served: waits.length,
    wait: {
      mean: waits.length === 0 ? NaN : waits.reduce((sum, w) => sum + w, 0) / waits.length / 1000,
      p50: quantile(0.5),
      p95: quantile(0.95),
      p99: quantile(0.99),
      max: sorted.length === 0 ? NaN : sorted[sorted.length - 1]! / 1000,
    },
    waitedShare: waits.length === 0 ? NaN : waits.filter((w) => w > 0).length / waits.length,
    rejected,
    timedOut,
    failed,
    endedEarly,
    launched,
    utilisation: meanBusy / config.maxSessions,
    meanBusy,
    meanBrowsers: windowMs > 0 ? measured.browsers / windowMs : 0,
    windowSeconds: windowMs / 1000,
    virtualSeconds: (now - SIM_T0) / 1000,
    transitions,
    violations: checkInvariants(storage.sql, config, now).violations,
    ...(options.outcomes ? { outcomes } : {}),
  };
}
