/**
 * PoolObject: the Durable Object that owns one pool (one per tenant and pool
 * name). It is a thin shell around machine.ts:
 *
 *   1. run a transition inside one `transactionSync` (atomic, no await inside);
 *   2. perform the effects it asked for (launch, close, reset, ping, wake a waiter);
 *   3. feed each effect's outcome back as another transition;
 *   4. re-arm the single alarm at the earliest deadline in SQL.
 *
 * A Durable Object runs one event at a time only until it awaits, so every
 * decision is made synchronously in step 1; while a launch or close is awaited
 * other requests run freely, and the transition that records the outcome
 * re-reads the rows it touches. In memory there are only things that can be
 * lost without harm: the resolvers of callers waiting for a lease (after a
 * restart those callers are gone too, and `recover` fails their rows), and
 * in-flight I/O (whose rows carry deadlines).
 */
import { DurableObject } from "cloudflare:workers";
import { RenderingProvider } from "../browser/rendering";
import { SimulatedProvider, simulationConfig } from "../browser/simulated";
import type { BrowserProvider } from "../browser/provider";
import { PlatformLimitError } from "../browser/provider";
import { DEFAULT_CONFIG, KEEP_ALIVE_MS, mergeConfig, type PoolConfig, type PoolConfigPatch } from "./config";
import { checkInvariants, type InvariantReport } from "./invariants";
import {
  applyConfig,
  cancelWaiter,
  drain,
  forceRelease,
  isDraining,
  purgeIdle,
  resume,
  retire,
  CLOSE_TIMEOUT_MS,
  closeFailed,
  closeSucceeded,
  type Effect,
  type Failure,
  launchFailed,
  launchSucceeded,
  liveOf,
  notFound,
  pingFailed,
  reconcile,
  registered,
  type ReconcileReport,
  recover,
  releaseAll,
  releaseLease,
  renewLease,
  requestLease,
  RESET_TIMEOUT_MS,
  resetFailed,
  resetSucceeded,
  type Step,
  tick,
} from "./machine";
import { type JournalRow, type LeaseRow, type LeaseStatus, migrate } from "./schema";
import { type AlertKind, alertConfig, deliver } from "./alerts";
import type { CounterSnapshot, HistogramSnapshot } from "./metrics";
import { type Counts, type JournalEntry, PoolStore } from "./store";
import { registryOf, tenantOf } from "../api/stubs";
import { log } from "../log";

/** How often the pool compares its sessions with the platform's list. */
export const RECONCILE_INTERVAL_MS = 60_000;
/** Idempotency keys are honoured this long (DESIGN.md: 24 h). */
export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;
/** Ended leases and closed sessions are kept this long (as long as an Idempotency-Key), then pruned by the alarm. */
export const HISTORY_RETENTION_MS = IDEMPOTENCY_TTL_MS;
/** How soon the alarm retries registering the pool with the account's registry. */
const REGISTER_RETRY_MS = 10_000;
/** Rows of each kind one alarm prunes at most (the next alarm follows at once while more are due). */
export const PRUNE_BATCH = 1000;
/** Journal rows kept per pool; older history is pruned by the alarm. */
export const JOURNAL_KEEP = 20_000;
/** CDP sockets one lease may have open at once (each is a proxied WebSocket). */
export const MAX_CONNECTIONS_PER_LEASE = 8;
/**
 * How long a released session waits for its lease's sockets to close before it
 * is reset for the next lease. If a socket is still registered after this, the
 * session is closed instead of reused: it is never handed on while a client of
 * the previous lease may still be connected.
 */
export const DISCONNECT_GRACE_MS = 2_000;
/** A connection row whose lease ended and that no Worker reported closed (it crashed) is forgotten after this. */
const STALE_CONNECTION_MS = 5 * 60_000;

export type PoolResult<T> = { ok: true; value: T } | { ok: false; failure: Failure };

/**
 * An acquire or config change while the pool is being deleted: answered at
 * once rather than held until the deletion's closes finish (up to
 * CLOSE_TIMEOUT_MS); retried, it creates the pool anew.
 */
const beingDeleted = (): Failure => ({
  status: 409,
  code: "pool_busy",
  detail: "the pool is being deleted; retry in a moment to create it anew",
  retryAfter: 1,
});

export interface LeaseView {
  id: string;
  pool: string;
  status: LeaseStatus;
  sessionId: string | null;
  createdAt: string;
  /** When the lease got its session (absent while waiting). */
  grantedAt?: string;
  expiresAt: string | null;
  endedAt?: string;
  endReason?: string;
  labels: Record<string, string>;
}

export interface PoolView {
  pool: string;
  config: PoolConfig;
  counts: Counts;
  capacity: { max: number; inUse: number; available: number };
  /** True while an operator has drained the pool: it grants nothing until resumed. */
  draining: boolean;
  consistent: boolean;
  violations: string[];
  createdAt: string;
  lastReconciledAt: string | null;
  lastReconcile: ReconcileReport | null;
  /** Since the pool was created: tracked sessions found gone (capacity freed) and ended browsers closed again. */
  reconciledTotal: { vanished: number; reclosed: number };
}

export interface LeaseEvent {
  at: string;
  /** requested, launch_reserved, granted, renewed, released, expired, wait_failed, lease_failed, connected, disconnected, … */
  event: string;
  sessionRow?: number;
  detail?: Record<string, unknown>;
}

export interface PoolMetrics {
  tenant: string;
  pool: string;
  counts: Counts;
  maxSessions: number;
  maxWaiters: number;
  consistent: boolean;
  counters: CounterSnapshot[];
  histograms: HistogramSnapshot[];
  /** Reconciliation's fixes since the pool was created. */
  reconciled: { vanished: number; reclosed: number };
}

export interface PoolDashboard extends PoolMetrics {
  draining: boolean;
  /** The oldest waiters, first in line first. */
  queue: { lease: string; since: string; deadline: string | null }[];
  /** The newest journal rows, newest first. */
  events: { at: string; event: string; lease?: string; detail?: Record<string, unknown> }[];
}

export interface AcquireInput {
  /** Chosen by the Worker so it can cancel the wait if its client disconnects. */
  leaseId: string;
  tenant: string;
  pool: string;
  owner: string;
  ttlSeconds?: number;
  waitSeconds?: number;
  labels?: Record<string, string>;
  idempotencyKey?: string;
  /** Hash of the request body, to refuse a reused Idempotency-Key with a different request. */
  fingerprint?: string;
  /**
   * SHA-256 (hex) of the connect token the Worker minted for this request. On
   * an Idempotency-Key replay it replaces the lease's token: the token of the
   * lost response cannot be shown again, since only its hash is kept.
   */
  tokenHash?: string;
}

export interface ConnectGrant {
  /** Null when only checking (no socket registered). */
  connectionId: string | null;
  sessionId: string;
}

export interface AcquireView {
  lease: LeaseView;
  /** True when an Idempotency-Key replay returned an existing lease. */
  replayed: boolean;
}

/**
 * Test and benchmark seam: how a new pool object gets its provider. Tests that
 * inject faults across a restart replace `create`; everything else uses the
 * real Browser Rendering binding.
 */
export const providerFactory: { create: (env: Env) => BrowserProvider; now: (() => number) | undefined } = {
  create: (env: Env): BrowserProvider =>
    (env as { BROWSER_PROVIDER?: string }).BROWSER_PROVIDER === "simulated"
      ? new SimulatedProvider(simulationConfig(env as unknown as Record<string, unknown>))
      : new RenderingProvider(env.BROWSER),
  /** When set, new pool objects take their clock from here (tests that restart an object mid-run). */
  now: undefined,
};

type Waiter = (result: PoolResult<AcquireView>) => void;

/** Callbacks keyed by lease id, each called (and dropped) once. */
class Signals<T> {
  private readonly byLease = new Map<string, Set<(value: T) => void>>();
  wait(leaseId: string): Promise<T> {
    return new Promise((resolve) => {
      const set = this.byLease.get(leaseId) ?? new Set();
      set.add(resolve);
      this.byLease.set(leaseId, set);
    });
  }
  /** Like `wait`, but gives `fallback` after `ms` if nothing was signalled. */
  waitAtMost(leaseId: string, ms: number, fallback: T): Promise<T> {
    return new Promise((resolve) => {
      const set = this.byLease.get(leaseId) ?? new Set();
      const timer = setTimeout(() => {
        set.delete(finish);
        if (set.size === 0 && this.byLease.get(leaseId) === set) this.byLease.delete(leaseId);
        resolve(fallback);
      }, ms);
      const finish = (value: T) => {
        clearTimeout(timer);
        resolve(value);
      };
      set.add(finish);
      this.byLease.set(leaseId, set);
    });
  }
  signal(leaseId: string, value: T): void {
    const set = this.byLease.get(leaseId);
    this.byLease.delete(leaseId);
    for (const resolve of set ?? []) resolve(value);
  }
}

export class PoolObject extends DurableObject<Env> {
  private readonly db: PoolStore;
  private provider: BrowserProvider;
  /** The time source for every transition; tests replace it to drive deadlines without sleeping. */
  clock: () => number = providerFactory.now ?? (() => Date.now());
  private cachedConfig: PoolConfig | undefined;
  private readonly waiters = new Map<string, Waiter[]>();
  private readonly inflight = new Set<Promise<unknown>>();
  /** Cancels that arrived before their acquire (the two RPCs race); bounded. */
  private readonly earlyCancels = new Set<string>();
  private armedAt: number | null = null;
  /** The pool's identity, kept in memory: views and logs never need storage for it. */
  private tenant = "";
  private poolName = "";
  private reconciling: Promise<void> | undefined;
  private registeringPool: Promise<void> | undefined;
  /** The chain pool creation and config changes run on, one at a time. */
  private configuring: Promise<unknown> = Promise.resolve();
  /** Tasks queued or running on that chain. */
  private turns = 0;
  /** Workers proxying a lease's CDP sockets, told when the lease ends. */
  private readonly leaseEnded = new Signals<{ reason: string }>();
  /** Resets waiting for a lease's last socket to close. */
  private readonly leaseDrained = new Signals<boolean>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.db = new PoolStore(ctx.storage.sql);
    this.provider = providerFactory.create(env);
    void ctx.blockConcurrencyWhile(async () => {
      migrate(ctx.storage);
      this.tenant = this.db.getMeta("tenant") ?? "";
      this.poolName = this.db.getMeta("pool") ?? "";
      this.armedAt = await ctx.storage.getAlarm();
      // A deletion interrupted before the storage went: the pool comes back.
      if (this.deleting()) this.undoDeletion();
      if (this.exists()) {
        this.track(this.registerPool());
        this.track(this.reportSize());
        this.transition(recover);
        // Right after a restart, look for browsers a lost launch may have left behind.
        this.db.setMeta("next_reconcile_at", String(this.clock()));
        this.arm(this.clock());
      }
    });
  }

  // ---- RPC: the API -----------------------------------------------------------

  async acquire(input: AcquireInput): Promise<PoolResult<AcquireView>> {
    if (this.deleting()) return fail(beingDeleted());
    if (!this.exists()) {
      // The first acquire creates the pool with the default config, if the tenant's quota allows it.
      const created = await this.serially(async () => {
        if (this.exists()) return { ok: true as const, value: null };
        const claimed = await this.claim(input.tenant, input.pool, DEFAULT_CONFIG.maxSessions);
        if (claimed.ok) this.ensureCreated(input.tenant, input.pool);
        return claimed;
      });
      if (!created.ok) return created;
    }
    const config = this.config();
    const ttlSeconds = input.ttlSeconds ?? config.defaultTtlSeconds;
    if (ttlSeconds > config.maxTtlSeconds) {
      return fail({ status: 400, code: "invalid_request", detail: `ttlSeconds must be at most maxTtlSeconds (${config.maxTtlSeconds})` });
    }
    if (this.earlyCancels.delete(input.leaseId)) {
      return fail({ status: 409, code: "lease_not_active", detail: "the request was cancelled" });
    }
    const key = input.idempotencyKey ?? null;
    const fingerprint = input.fingerprint ?? "";
    const outcome = this.transition((step) => {
      // The Worker mints the lease id per HTTP request, so an acquire naming a
      // lease that exists is that request retried (its first answer was lost
      // with a broken call or an object reset): it gets the same lease.
      const same = step.db.lease(input.leaseId);
      if (same) return { kind: "repeat" as const, lease: same };
      if (key) {
        const prior = step.db.idempotent(key);
        if (prior && prior.created_at > step.now - IDEMPOTENCY_TTL_MS) {
          if (prior.fingerprint !== fingerprint) return { kind: "conflict" as const };
          const lease = step.db.lease(prior.lease_id);
          if (lease) {
            if (input.tokenHash && (lease.status === "waiting" || lease.status === "active")) {
              step.db.updateLease(lease.id, { token_hash: input.tokenHash });
            }
            return { kind: "replay" as const, lease };
          }
        }
      }
      const result = requestLease(step, {
        id: input.leaseId,
        owner: input.owner,
        labels: input.labels ?? {},
        ttlMs: ttlSeconds * 1000,
        waitMs: (input.waitSeconds ?? 0) * 1000,
        idempotencyKey: key,
        tokenHash: input.tokenHash ?? null,
      });
      if (key && result.kind !== "rejected") step.db.rememberIdempotent(key, input.leaseId, fingerprint, step.now);
      return result;
    });
    switch (outcome.kind) {
      case "conflict":
        return fail({
          status: 409,
          code: "idempotency_key_reused",
          detail: "this Idempotency-Key was used with a different request body within 24 h",
        });
      case "repeat":
        return this.repeated(outcome.lease);
      case "replay":
        return outcome.lease.status === "waiting"
          ? this.waitFor(outcome.lease.id, true)
          : { ok: true, value: { lease: this.view(outcome.lease), replayed: true } };
      case "rejected":
        return fail(outcome.failure);
      case "granted":
        return { ok: true, value: { lease: this.view(outcome.lease), replayed: false } };
      case "waiting":
        return this.waitFor(outcome.lease.id, false);
    }
  }

  /** An acquire retried with the lease id of its first attempt: that attempt's lease, or why it ended. */
  private repeated(lease: LeaseRow): Promise<PoolResult<AcquireView>> | PoolResult<AcquireView> {
    if (lease.status === "waiting") return this.waitFor(lease.id, false);
    if (lease.status === "active") return { ok: true, value: { lease: this.view(lease), replayed: false } };
    if (lease.status === "failed") {
      return fail({
        status: 503,
        code: "browser_unavailable",
        detail: `this request's lease failed before it could be answered (${lease.end_reason ?? "failed"}); retry`,
        retryAfter: 1,
      });
    }
    return fail({ status: 409, code: "lease_not_active", detail: `this request's lease has already ended (${lease.end_reason ?? lease.status})` });
  }

  /** The caller of a pending acquire went away: give up its place in the queue. */
  async cancel(leaseId: string): Promise<boolean> {
    if (!this.db.lease(leaseId)) {
      this.earlyCancels.add(leaseId);
      if (this.earlyCancels.size > 1000) this.earlyCancels.delete(this.earlyCancels.values().next().value!);
      return false;
    }
    return this.transition((step) => cancelWaiter(step, leaseId));
  }

  async getLease(leaseId: string): Promise<PoolResult<LeaseView>> {
    const lease = this.exists() ? this.db.lease(leaseId) : undefined;
    return lease ? { ok: true, value: this.view(lease) } : fail(notFound("lease"));
  }

  /** A lease's audit trail: every journal row about it, oldest first. */
  async leaseEvents(leaseId: string): Promise<PoolResult<{ lease: string; events: LeaseEvent[] }>> {
    if (!this.exists() || !this.db.lease(leaseId)) return fail(notFound("lease"));
    const events = this.db.journalFor(leaseId).map((row) => ({
      ...eventView(row),
      ...(row.session_row === null ? {} : { sessionRow: row.session_row }),
    }));
    return { ok: true, value: { lease: leaseId, events } };
  }

  async listLeases(options: { status?: LeaseStatus; limit: number; cursor?: number }): Promise<
    PoolResult<{ leases: LeaseView[]; nextCursor: number | null }>
  > {
    if (!this.exists()) return fail(notFound("pool"));
    const rows = this.db.listLeases(options.status, options.cursor, options.limit + 1);
    const page = rows.slice(0, options.limit);
    const nextCursor = rows.length > options.limit ? page[page.length - 1]!.seq : null;
    return { ok: true, value: { leases: page.map((row) => this.view(row)), nextCursor } };
  }

  async renew(leaseId: string, ttlSeconds?: number): Promise<PoolResult<LeaseView>> {
    if (!this.exists()) return fail(notFound("lease"));
    const config = this.config();
    const ttl = ttlSeconds ?? config.defaultTtlSeconds;
    if (ttl > config.maxTtlSeconds) {
      return fail({ status: 400, code: "invalid_request", detail: `ttlSeconds must be at most maxTtlSeconds (${config.maxTtlSeconds})` });
    }
    const result = this.transition((step) => renewLease(step, leaseId, ttl * 1000));
    return "failure" in result ? fail(result.failure) : { ok: true, value: this.view(result.lease) };
  }

  async release(leaseId: string): Promise<PoolResult<LeaseView>> {
    if (!this.exists()) return fail(notFound("lease"));
    const lease = this.transition((step) => releaseLease(step, leaseId));
    return lease ? { ok: true, value: this.view(lease) } : fail(notFound("lease"));
  }

  /** Releases the active leases of `owner` (one API key), or all of them without one. */
  async releaseAll(owner?: string): Promise<PoolResult<{ released: number }>> {
    if (!this.exists()) return fail(notFound("pool"));
    return { ok: true, value: { released: this.transition((step) => releaseAll(step, owner)) } };
  }

  async describe(): Promise<PoolResult<PoolView>> {
    if (!this.exists()) return fail(notFound("pool"));
    return { ok: true, value: this.poolView() };
  }

  /**
   * Creates the pool or changes its config. A pool that is created or grows
   * first claims its new maxSessions from the tenant's quota; one that shrinks
   * tells the tenant after it has shrunk. One configure at a time (and never
   * alongside the first acquire's creation), so the size the tenant object
   * records is always the size of the last change.
   */
  async configure(tenant: string, pool: string, patch: PoolConfigPatch): Promise<PoolResult<PoolView>> {
    if (this.deleting()) return fail(beingDeleted());
    return this.serially(async () => {
      const merged = mergeConfig(this.config(), patch, this.maxSessionsLimit());
      if ("problem" in merged) {
        return fail({ status: 400, code: "invalid_request", detail: `${merged.problem.field}: ${merged.problem.detail}` });
      }
      const before = this.exists() ? this.config().maxSessions : null;
      const after = merged.config.maxSessions;
      if (before === null || after > before) {
        const claimed = await this.claim(tenant, pool, after);
        if (!claimed.ok) return claimed;
      }
      this.ensureCreated(tenant, pool);
      // A pool created by this call is listed by GET /v1/pools once the call has answered.
      await this.registerPool();
      const failure = this.transition((step) => {
        const problem = applyConfig(step, merged.config);
        if (!problem) step.db.setMeta("config", JSON.stringify(merged.config));
        return problem;
      });
      if (!failure) this.cachedConfig = merged.config;
      // Tell the tenant the size the pool has now: smaller after a shrink, or
      // unchanged after a failed change whose growth was already claimed.
      await this.reportSizeNow();
      return failure ? fail(failure) : { ok: true, value: this.poolView() };
    });
  }

  /**
   * Deletes the pool, refused (409 pool_busy) while anything is in use. Its
   * idle browsers are closed, the registry and the tenant forget it (its share
   * of the tenant's quota is free again), and its storage is deleted: the next
   * acquire or PUT of the name creates a new, empty pool. Runs in turn with
   * creation and config changes; reads answer 404 from the moment it starts.
   * `asTenant`/`asPool` are the names the caller addressed (a pool object that
   * was never created does not know its own).
   */
  async deletePool(asTenant: string, asPool: string): Promise<PoolResult<{ pool: string; deleted: true; closedSessions: number }>> {
    return this.serially(async () => {
      if (!this.exists()) {
        // Nothing to delete; but a creation that failed after the tenant granted
        // its claim (the answer lost, the object gone before it recorded the
        // pool) left that claim counted. No creation of this name can be under
        // way here (they run in turn), so the claim, if any, is stale: free it.
        await tenantOf(this.env, asTenant).releasePool(asPool).catch(() => undefined);
        return fail(notFound("pool"));
      }
      const retired = this.transition(retire);
      if ("status" in retired) return fail(retired);
      this.db.setMeta("deleting", "1");
      // The idle browsers' closes, and any registration still on its way.
      await this.settled();
      const { tenant, poolName } = this;
      try {
        await this.registry().untrackPool(tenant, poolName);
        await tenantOf(this.env, tenant).releasePool(poolName);
      } catch (error) {
        // Nothing is deleted: the pool stays, drained, and the alarm registers it
        // and reports its size again. The caller may retry.
        log("pool_delete_failed", { pool: this.name(), error: message(error) });
        this.undoDeletion();
        this.arm(this.clock());
        return fail({ status: 503, code: "unavailable", detail: "the pool could not be unregistered; nothing was deleted (it stays drained): retry", retryAfter: 1 });
      }
      await this.ctx.storage.deleteAlarm();
      await this.ctx.storage.deleteAll();
      this.db.forgetCached();
      this.cachedConfig = undefined;
      this.armedAt = null;
      this.tenant = "";
      this.poolName = "";
      migrate(this.ctx.storage);
      log("pool_deleted", { pool: `${tenant}/${poolName}`, closedSessions: retired.closed });
      return { ok: true, value: { pool: poolName, deleted: true as const, closedSessions: retired.closed } };
    });
  }

  /** Everything GET /metrics shows for this pool; undefined if it was never created. */
  async metrics(): Promise<PoolMetrics | undefined> {
    if (!this.exists()) return undefined;
    const config = this.config();
    return {
      tenant: this.tenant,
      pool: this.poolName,
      counts: this.db.counts(),
      maxSessions: config.maxSessions,
      maxWaiters: config.maxWaiters,
      consistent: checkInvariants(this.ctx.storage.sql, config, this.clock()).consistent,
      counters: this.db.counters(),
      histograms: this.db.histograms(),
      reconciled: this.reconciledTotal(),
    };
  }

  // ---- RPC: operators' actions (admin token; the pool must exist) ----------------

  async drain(): Promise<PoolResult<{ waitersTurnedAway: number; pool: PoolView }>> {
    if (!this.exists()) return fail(notFound("pool"));
    const waitersTurnedAway = this.transition(drain);
    log("pool_drained", { pool: this.name(), waitersTurnedAway });
    return { ok: true, value: { waitersTurnedAway, pool: this.poolView() } };
  }

  async resume(): Promise<PoolResult<PoolView>> {
    if (!this.exists()) return fail(notFound("pool"));
    this.transition(resume);
    log("pool_resumed", { pool: this.name() });
    return { ok: true, value: this.poolView() };
  }

  async forceRelease(leaseId: string): Promise<PoolResult<LeaseView>> {
    if (!this.exists()) return fail(notFound("lease"));
    const lease = this.transition((step) => forceRelease(step, leaseId));
    if (lease) log("lease_forced", { pool: this.name(), lease: leaseId });
    return lease ? { ok: true, value: this.view(lease) } : fail(notFound("lease"));
  }

  async purgeIdle(): Promise<PoolResult<{ closed: number; pool: PoolView }>> {
    if (!this.exists()) return fail(notFound("pool"));
    const closed = this.transition(purgeIdle);
    log("idle_purged", { pool: this.name(), closed });
    return { ok: true, value: { closed, pool: this.poolView() } };
  }

  /** Resize or reconfigure an existing pool (never creates one). */
  async reconfigure(patch: PoolConfigPatch): Promise<PoolResult<PoolView>> {
    if (!this.exists()) return fail(notFound("pool"));
    return this.configure(this.tenant, this.poolName, patch);
  }

  /** What the operators' dashboard shows of this pool: its metrics, the head of its queue, its latest events. */
  async dashboard(): Promise<PoolDashboard | undefined> {
    const metrics = await this.metrics();
    if (!metrics) return undefined;
    return {
      ...metrics,
      draining: isDraining(this.db),
      queue: this.db.waiters(10).map((w) => ({ lease: w.id, since: iso(w.created_at), deadline: w.wait_deadline === null ? null : iso(w.wait_deadline) })),
      events: this.db.recentJournal(15).map((row) => ({ ...eventView(row), ...(row.lease_id ? { lease: row.lease_id } : {}) })),
    };
  }

  async checkInvariants(): Promise<InvariantReport> {
    return checkInvariants(this.ctx.storage.sql, this.config(), this.clock());
  }

  // ---- RPC: CDP connections (the Worker proxies the sockets) ---------------------

  /**
   * Checks a connect token for a lease: 404 unknown lease, 401 wrong token, 409
   * lease not active. With `register`, records the socket the Worker is about to
   * open, decided in the same synchronous step as the check, so a lease that
   * ends afterwards always knows to wait for this socket.
   */
  async openConnection(leaseId: string, tokenHash: string, register: boolean): Promise<PoolResult<ConnectGrant>> {
    const lease = this.exists() ? this.db.lease(leaseId) : undefined;
    if (!lease) return fail(notFound("lease"));
    if (!lease.token_hash || !sameHash(lease.token_hash, tokenHash)) {
      return fail({ status: 401, code: "unauthorized", detail: "the connect token is not valid for this lease" });
    }
    if (lease.status === "active" && lease.expires_at! <= this.clock()) this.transition(tick);
    const current = this.db.lease(leaseId)!;
    if (current.status !== "active") {
      return fail({ status: 409, code: "lease_not_active", detail: `lease is ${current.status}; only an active lease can be connected to` });
    }
    if (!register) return { ok: true, value: { connectionId: null, sessionId: current.session_id! } };
    if (this.db.connectionsOf(leaseId) >= MAX_CONNECTIONS_PER_LEASE) {
      return fail({
        status: 409,
        code: "too_many_connections",
        detail: `a lease may have at most ${MAX_CONNECTIONS_PER_LEASE} CDP connections open at once`,
      });
    }
    const connectionId = crypto.randomUUID();
    const now = this.clock();
    this.atomically(() => {
      this.db.insertConnection({ id: connectionId, lease_id: leaseId, opened_at: now });
      this.db.journal(now, "connected", leaseId, current.session_row, { connectionId });
    });
    return { ok: true, value: { connectionId, sessionId: current.session_id! } };
  }

  /**
   * Resolves when the connection's lease ends (at once if it already has, or if
   * the connection is unknown). The Worker keeps this call open for as long as
   * it proxies the socket; if the object restarts the call fails and the Worker
   * asks again, and the connection's row, kept in SQL, is still there.
   */
  async watchConnection(connectionId: string): Promise<{ reason: string }> {
    const row = this.db.connection(connectionId);
    if (!row) return { reason: "disconnected" };
    const lease = this.db.lease(row.lease_id);
    if (lease?.status !== "active") return { reason: lease?.end_reason ?? "ended" };
    return this.leaseEnded.wait(row.lease_id);
  }

  /** The Worker closed both ends of a proxied socket. Idempotent. */
  async closeConnection(connectionId: string): Promise<void> {
    const row = this.db.connection(connectionId);
    if (!row) return;
    const now = this.clock();
    this.atomically(() => {
      this.db.deleteConnection(connectionId);
      this.db.journal(now, "disconnected", row.lease_id, null, { connectionId, connectedMs: now - row.opened_at });
    });
    if (this.db.connectionsOf(row.lease_id) === 0) this.leaseDrained.signal(row.lease_id, true);
  }

  /** True once no socket of the lease is open; false if one still is after `ms`. */
  private async untilDisconnected(leaseId: string, ms: number): Promise<boolean> {
    if (this.db.connectionsOf(leaseId) === 0) return true;
    return this.leaseDrained.waitAtMost(leaseId, ms, false);
  }

  // ---- alarm ------------------------------------------------------------------

  override async alarm(): Promise<void> {
    this.armedAt = null;
    if (!this.exists()) return;
    this.track(this.registerPool());
    this.track(this.reportSize());
    this.transition(tick);
    const now = this.clock();
    if (Number(this.db.getMeta("next_reconcile_at") ?? 0) <= now) await this.reconcileNow();
    const pruned = this.atomically(() => {
      this.db.purgeIdempotentBefore(now - IDEMPOTENCY_TTL_MS);
      this.db.pruneJournal(JOURNAL_KEEP);
      this.db.pruneConnections(now - STALE_CONNECTION_MS);
      return this.db.pruneHistory(now - HISTORY_RETENTION_MS, PRUNE_BATCH);
    });
    if (pruned.leases || pruned.sessions) log("history_pruned", { pool: this.name(), ...pruned });
    this.watchHealth(now);
    this.arm(this.clock());
  }

  /** Compares SQL with the platform's live sessions; one at a time. */
  async reconcileNow(): Promise<ReconcileReport | undefined> {
    if (!this.reconciling) {
      this.reconciling = (async () => {
        const listedAt = this.clock();
        try {
          const live = await this.provider.list();
          const report = this.transition((step) => reconcile(step, new Set(live.map((s) => s.sessionId)), listedAt));
          this.db.setMeta("last_reconcile", JSON.stringify({ at: listedAt, ...report }));
          this.db.setMeta("vanished_total", String(Number(this.db.getMeta("vanished_total") ?? 0) + report.vanished));
          this.db.setMeta("reclosed_total", String(Number(this.db.getMeta("reclosed_total") ?? 0) + report.reclosed));
          if (report.vanished || report.reclosed) log("reconciled", { pool: this.name(), ...report });
          if (report.vanished) {
            this.alert("capacity_reclaimed", `reconciliation freed ${report.vanished} session(s) whose browsers were gone`, { ...report });
          }
        } catch (error) {
          log("reconcile_failed", { pool: this.name(), error: message(error) });
        } finally {
          this.db.setMeta("next_reconcile_at", String(this.clock() + RECONCILE_INTERVAL_MS));
          this.reconciling = undefined;
        }
      })();
    }
    await this.reconciling;
    const last = this.db.getMeta("last_reconcile");
    return last ? (JSON.parse(last) as ReconcileReport) : undefined;
  }

  // ---- test seams ---------------------------------------------------------------

  /** Replaces the browser provider (fault injection in tests, simulation in benchmarks). */
  useProvider(provider: BrowserProvider): void {
    this.provider = provider;
  }

  /** Resolves when no effect is in flight any more (tests await this instead of sleeping). */
  async settled(): Promise<void> {
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
  }

  // ---- the shell ----------------------------------------------------------------

  private transition<T>(fn: (step: Step) => T): T {
    const step: Step = { db: this.db, now: this.clock(), config: this.config(), effects: [] };
    const result = this.atomically(() => fn(step));
    this.perform(step.effects);
    this.arm(step.now);
    this.watchLaunchFailures();
    return result;
  }

  // ---- alerts --------------------------------------------------------------------

  /** A launch-failure streak at the threshold raises one alert (cached meta reads only on the hot path). */
  private watchLaunchFailures(): void {
    const streak = Number(this.db.getMeta("launch_failure_streak") ?? 0);
    if (streak === 0) return;
    if (streak < alertConfig(this.env as unknown as Record<string, unknown>).launchFailureStreak) return;
    if (this.db.getMeta("launch_failure_streak_alerted") === "1") return;
    this.db.setMeta("launch_failure_streak_alerted", "1");
    this.alert("launch_failure_streak", `${streak} browser launches in a row failed`, { streak });
  }

  /** Alarm-time checks: an exhaustion that lasted, and the invariants. */
  private watchHealth(now: number): void {
    const config = alertConfig(this.env as unknown as Record<string, unknown>);
    const since = Number(this.db.getMeta("exhausted_since") || 0);
    if (since && now - since >= config.exhaustedMs && this.db.getMeta("exhausted_alerted") !== String(since)) {
      const counts = this.db.counts();
      const max = this.config().maxSessions;
      if (counts.idle === 0 && (counts.waiting > 0 || liveOf(counts) >= max)) {
        this.db.setMeta("exhausted_alerted", String(since));
        this.alert("pool_exhausted", `no free session for ${Math.round((now - since) / 1000)} s`, {
          exhaustedSince: iso(since),
          counts,
          maxSessions: max,
        });
      }
    }
    const report = checkInvariants(this.ctx.storage.sql, this.config(), now);
    if (!report.consistent) this.alert("invariant_violation", "the pool's invariants are violated", { violations: report.violations });
  }

  /** When the alarm must run to alert on an exhaustion that is still going on. */
  private exhaustionDeadline(): number | null {
    const since = Number(this.db.getMeta("exhausted_since") || 0);
    if (!since || this.db.getMeta("exhausted_alerted") === String(since)) return null;
    return since + alertConfig(this.env as unknown as Record<string, unknown>).exhaustedMs;
  }

  /**
   * Raises an alert: logged and journaled always; POSTed to ALERT_WEBHOOK_URL
   * if set; at most one per kind per ALERT_MIN_INTERVAL_SECONDS for this pool.
   */
  private alert(kind: AlertKind, summary: string, detail: Record<string, unknown>): void {
    const config = alertConfig(this.env as unknown as Record<string, unknown>);
    const now = this.clock();
    const last = Number(this.db.getMeta(`alert_sent:${kind}`) ?? 0);
    if (last && now - last < config.minIntervalMs) {
      log("alert_suppressed", { pool: this.name(), kind, lastSentAt: iso(last) });
      return;
    }
    this.atomically(() => {
      this.db.setMeta(`alert_sent:${kind}`, String(now));
      this.db.journal(now, "alert", null, null, { kind, summary, webhook: Boolean(config.url) });
    });
    const payload = { kind, tenant: this.tenant, pool: this.poolName, at: iso(now), summary, detail };
    if (config.url) {
      const url = config.url;
      this.track(deliver(url, payload).catch((error) => log("alert_failed", { pool: this.name(), kind, error: message(error) })));
    }
  }

  /** One SQLite transaction; if it throws, everything it wrote is rolled back, in SQL and in the store's cache. */
  private atomically<T>(fn: () => T): T {
    let result: T;
    try {
      result = this.ctx.storage.transactionSync(fn);
    } catch (error) {
      this.db.forgetCached();
      throw error;
    }
    this.publish(this.db.takeWritten());
    return result;
  }

  /**
   * Publishes committed journal rows: one JSON log line each (Workers Logs can
   * filter on its fields) unless EVENT_LOGS is "problems", and one Analytics
   * Engine data point each (blobs: tenant, pool, event, lease, reason; doubles:
   * duration in ms, session row; index: tenant/pool).
   */
  private publish(entries: JournalEntry[]): void {
    if (entries.length === 0) return;
    const everything = (this.env.EVENT_LOGS as string | undefined) !== "problems";
    for (const entry of entries) {
      const durationMs = eventDuration(entry.detail);
      const reason = typeof entry.detail?.reason === "string" ? entry.detail.reason : "";
      if (everything || PROBLEM_EVENTS.has(entry.event)) {
        console.log(
          JSON.stringify({
            event: entry.event,
            tenant: this.tenant,
            pool: this.poolName,
            ...(entry.leaseId ? { lease: entry.leaseId } : {}),
            ...(entry.sessionRow === null ? {} : { session: entry.sessionRow }),
            ...(durationMs === undefined ? {} : { durationMs }),
            ...entry.detail,
          }),
        );
      }
      try {
        this.env.EVENTS?.writeDataPoint({
          indexes: [`${this.tenant}/${this.poolName}`.slice(0, 96)],
          blobs: [this.tenant, this.poolName, entry.event, entry.leaseId ?? "", reason],
          doubles: [durationMs ?? 0, entry.sessionRow ?? 0],
        });
      } catch (error) {
        // Analytics must never break a transition that has already committed.
        log("analytics_failed", { error: message(error) });
      }
    }
  }

  private perform(effects: Effect[]): void {
    for (const effect of effects) {
      switch (effect.kind) {
        case "launch":
          this.track(this.launch(effect.row));
          break;
        case "close":
          this.track(
            this.io(() => this.provider.close(effect.sessionId), CLOSE_TIMEOUT_MS, (s) => closeSucceeded(s, effect.row), (s, m) =>
              closeFailed(s, effect.row, m),
            ),
          );
          break;
        case "disconnect":
          this.leaseEnded.signal(effect.leaseId, { reason: effect.reason });
          break;
        case "register":
          // Retried by tick (the row stays unregistered) if the registry cannot be reached.
          this.track(this.registry().track(effect.sessionId, this.name()).then(() => this.transition((s) => registered(s, effect.row))));
          break;
        case "expectOrphans":
          this.track(this.registry().expectOrphans());
          break;
        case "reset":
          this.track(
            this.io(
              async () => {
                // Never clean (and so never hand on) a browser a client of the last lease still drives.
                if (!(await this.untilDisconnected(effect.leaseId, DISCONNECT_GRACE_MS))) {
                  throw new Error(`a CDP client of lease ${effect.leaseId} was still connected ${DISCONNECT_GRACE_MS} ms after it ended`);
                }
                await this.provider.reset(effect.sessionId);
              },
              RESET_TIMEOUT_MS, (s) => resetSucceeded(s, effect.row), (s, m) =>
              resetFailed(s, effect.row, m),
            ),
          );
          break;
        case "ping":
          this.track(this.io(() => this.provider.ping(effect.sessionId), CLOSE_TIMEOUT_MS, () => {}, (s, m) => pingFailed(s, effect.row, m)));
          break;
        case "grant": {
          const lease = this.db.lease(effect.leaseId);
          if (lease) this.settle(effect.leaseId, { ok: true, value: { lease: this.view(lease), replayed: false } });
          break;
        }
        case "reject":
          this.settle(effect.leaseId, fail(effect.failure));
          break;
      }
    }
  }

  /**
   * Starts a launch. Its outcome is recorded whenever the platform answers, even
   * after the deadline (a late browser is then closed). The deadline itself is
   * enforced by `tick`, from the alarm and from a timer here, whichever is first.
   */
  private launch(row: number): Promise<unknown> {
    const timeoutMs = this.config().launchTimeoutSeconds * 1000;
    const attempt = this.provider.launch({ keepAliveMs: KEEP_ALIVE_MS }).then(
      (sessionId) => this.transition((s) => launchSucceeded(s, row, sessionId)),
      (error) =>
        this.transition((s) =>
          launchFailed(s, row, {
            message: message(error),
            platformLimited: error instanceof PlatformLimitError,
            ...(error instanceof PlatformLimitError ? { retryAfterSeconds: error.retryAfterSeconds } : {}),
          }),
        ),
    );
    return raceDeadline(attempt, timeoutMs + 50, () => this.transition(tick));
  }

  private io(
    op: () => Promise<void>,
    timeoutMs: number,
    ok: (step: Step) => void,
    failed: (step: Step, message: string) => void,
  ): Promise<void> {
    return raceDeadline(op(), timeoutMs, () => {
      throw new Error(`timed out after ${timeoutMs} ms`);
    }).then(
      () => this.transition(ok),
      (error) => this.transition((s) => failed(s, message(error))),
    );
  }

  private track(promise: Promise<unknown>): void {
    const tracked = promise
      // Logging must not touch storage: a crashed instance's late continuation ends up here.
      .catch((error) => log("effect_failed", { pool: this.name(), error: message(error) }))
      .finally(() => this.inflight.delete(tracked));
    this.inflight.add(tracked);
  }

  private waitFor(leaseId: string, replayed: boolean): Promise<PoolResult<AcquireView>> {
    return new Promise((resolve) => {
      const list = this.waiters.get(leaseId) ?? [];
      list.push((result) => resolve(result.ok ? { ok: true, value: { ...result.value, replayed } } : result));
      this.waiters.set(leaseId, list);
    });
  }

  private settle(leaseId: string, result: PoolResult<AcquireView>): void {
    const list = this.waiters.get(leaseId);
    this.waiters.delete(leaseId);
    for (const resolve of list ?? []) resolve(result);
  }

  /**
   * Makes sure the one alarm fires no later than the earliest deadline in SQL.
   * It is only ever moved earlier: an alarm that fires before anything is due
   * finds nothing to do and re-arms at the true next deadline, so a deadline
   * that moves later (a lease renewed, a reset finished) costs no storage write.
   * Under steady traffic that is one alarm per few seconds instead of a
   * setAlarm per request.
   */
  private arm(now: number): void {
    const next = this.nextDeadline(now);
    if (next === null || (this.armedAt !== null && this.armedAt <= next)) return;
    this.armedAt = next;
    this.ctx.storage.setAlarm(next).catch((error: unknown) => log("arm_failed", { error: message(error) }));
  }

  private nextDeadline(now: number): number | null {
    const { earliest, idempotency, history } = this.db.deadlines();
    const candidates = earliest === null ? [] : [earliest];
    const blocked = Number(this.db.getMeta("launch_blocked_until") ?? 0);
    if (blocked > now) candidates.push(blocked);
    // Reconcile periodically while the pool holds anything, or may have left a
    // browser running (see keepReconciling); otherwise an empty pool sleeps.
    if (earliest !== null || Number(this.db.getMeta("reconcile_until") ?? 0) > now) {
      candidates.push(Number(this.db.getMeta("next_reconcile_at") ?? now));
    }
    if (idempotency !== null) candidates.push(idempotency + IDEMPOTENCY_TTL_MS);
    if (history !== null) candidates.push(history + HISTORY_RETENTION_MS);
    if (this.db.getMeta("pool_registered") !== "1" || this.db.getMeta("tenant_claimed") !== String(this.config().maxSessions)) {
      candidates.push(now + REGISTER_RETRY_MS);
    }
    const exhaustion = this.exhaustionDeadline();
    if (exhaustion !== null) candidates.push(exhaustion);
    return candidates.length === 0 ? null : Math.min(...candidates);
  }

  /**
   * Makes the account's registry list this pool (GET /v1/pools). Retried by
   * the constructor and the alarm (due within REGISTER_RETRY_MS while it is
   * not done) until the registry has acknowledged it. Never throws.
   */
  private registerPool(): Promise<void> {
    if (this.db.getMeta("pool_registered") === "1") return Promise.resolve();
    this.registeringPool ??= (async () => {
      try {
        await this.registry().trackPool(this.tenant, this.poolName, Number(this.db.getMeta("created_at")));
        this.db.setMeta("pool_registered", "1");
      } catch (error) {
        log("pool_register_failed", { pool: this.name(), error: message(error) });
      } finally {
        this.registeringPool = undefined;
      }
    })();
    return this.registeringPool;
  }

  /**
   * Asks the tenant's quota for `maxSessions` of capacity for this pool.
   * Answers 503 if the tenant object cannot be reached: nothing was changed,
   * and the caller may retry.
   */
  private async claim(tenant: string, pool: string, maxSessions: number): Promise<PoolResult<null>> {
    try {
      const claimed = await tenantOf(this.env, tenant).claimPool(tenant, pool, maxSessions);
      if (claimed.ok) this.db.setMeta("tenant_claimed", String(maxSessions));
      return claimed;
    } catch (error) {
      log("quota_claim_failed", { pool: `${tenant}/${pool}`, error: message(error) });
      return fail({ status: 503, code: "quota_unavailable", detail: "the tenant's quota could not be checked; retry", retryAfter: 1 });
    }
  }

  /**
   * Tells the tenant's object this pool's current maxSessions, unasked: after
   * a shrink, and for pools created before quotas existed. Retried by the
   * constructor and the alarm until acknowledged (meta tenant_claimed). Never
   * throws; while it is not acknowledged the tenant counts the larger size,
   * which errs on the side of refusing. Runs in turn with config changes: a
   * report of the old size must not land after a growth was claimed.
   */
  private reportSize(): Promise<void> {
    // A creation, config change or deletion in turn ends with the tenant told
    // (or the pool gone): this report would only repeat it, or wait behind a
    // deletion that is itself waiting for everything in flight.
    if (this.turns > 0) return Promise.resolve();
    return this.serially(() => this.reportSizeNow());
  }

  /** reportSize, for a caller already running in turn (configure). */
  private async reportSizeNow(): Promise<void> {
    if (!this.exists()) return;
    const size = this.config().maxSessions;
    if (this.db.getMeta("tenant_claimed") === String(size)) return;
    try {
      await tenantOf(this.env, this.tenant).reportPool(this.tenant, this.poolName, size);
      if (this.config().maxSessions === size) this.db.setMeta("tenant_claimed", String(size));
    } catch (error) {
      log("quota_report_failed", { pool: this.name(), error: message(error) });
    }
  }

  /** Runs `task` after every earlier one has finished: pool creation and config changes, which await the tenant's object. */
  private serially<T>(task: () => Promise<T>): Promise<T> {
    this.turns += 1;
    const run = this.configuring.then(task).finally(() => {
      this.turns -= 1;
    });
    this.configuring = run.catch(() => undefined);
    return run;
  }

  private registry() {
    return registryOf(this.env);
  }

  /** "tenant/pool", for logs. */
  private name(): string {
    return `${this.tenant}/${this.poolName}`;
  }

  /** Created, and not being deleted. */
  private exists(): boolean {
    return this.db.getMeta("created_at") !== undefined && !this.deleting();
  }

  /**
   * A deletion that did not finish is taken back: the pool exists again
   * (drained), and registers with the registry and reports its size to the
   * tenant again, since either may have forgotten it already; delete it again.
   */
  private undoDeletion(): void {
    this.atomically(() => {
      this.db.setMeta("deleting", "0");
      this.db.setMeta("pool_registered", "0");
      this.db.setMeta("tenant_claimed", "none");
    });
  }

  /** A deletion has started and not finished (its browsers are closing). */
  private deleting(): boolean {
    return this.db.getMeta("deleting") === "1";
  }

  /** Records the pool's creation (after the tenant's quota granted it: `claim` noted the size). */
  private ensureCreated(tenant: string, pool: string): void {
    if (this.exists()) return;
    this.tenant = tenant;
    this.poolName = pool;
    const now = this.clock();
    this.atomically(() => {
      this.db.setMeta("tenant", tenant);
      this.db.setMeta("pool", pool);
      this.db.setMeta("created_at", String(now));
      this.db.setMeta("config", JSON.stringify(DEFAULT_CONFIG));
      this.db.setMeta("next_reconcile_at", String(now + RECONCILE_INTERVAL_MS));
      this.db.journal(now, "pool_created", null, null, { tenant, pool });
    });
    this.track(this.registerPool());
  }

  private config(): PoolConfig {
    if (!this.cachedConfig) {
      const stored = this.db.getMeta("config");
      this.cachedConfig = stored ? { ...DEFAULT_CONFIG, ...(JSON.parse(stored) as Partial<PoolConfig>) } : { ...DEFAULT_CONFIG };
    }
    return this.cachedConfig;
  }

  private maxSessionsLimit(): number {
    const configured = Number(this.env.MAX_SESSIONS_PER_POOL);
    return Number.isInteger(configured) && configured > 0 ? configured : DEFAULT_CONFIG.maxSessions;
  }

  private poolView(): PoolView {
    const config = this.config();
    const counts = this.db.counts();
    const report = checkInvariants(this.ctx.storage.sql, config, this.clock());
    const inUse = liveOf(counts);
    const last = this.db.getMeta("last_reconcile");
    const lastReport = last ? (JSON.parse(last) as ReconcileReport & { at: number }) : null;
    return {
      pool: this.poolName,
      config,
      counts,
      capacity: { max: config.maxSessions, inUse, available: Math.max(0, config.maxSessions - inUse) + counts.idle },
      draining: isDraining(this.db),
      consistent: report.consistent,
      violations: report.violations,
      createdAt: iso(Number(this.db.getMeta("created_at"))),
      lastReconciledAt: lastReport ? iso(lastReport.at) : null,
      lastReconcile: lastReport ? { vanished: lastReport.vanished, reclosed: lastReport.reclosed, unknown: lastReport.unknown } : null,
      reconciledTotal: this.reconciledTotal(),
    };
  }

  /** Reconciliation's fixes since the pool was created. */
  private reconciledTotal(): { vanished: number; reclosed: number } {
    return { vanished: Number(this.db.getMeta("vanished_total") ?? 0), reclosed: Number(this.db.getMeta("reclosed_total") ?? 0) };
  }

  private view(row: LeaseRow): LeaseView {
    return {
      id: row.id,
      pool: this.poolName,
      status: row.status,
      sessionId: row.session_id,
      createdAt: iso(row.created_at),
      ...(row.granted_at === null ? {} : { grantedAt: iso(row.granted_at) }),
      expiresAt: row.expires_at === null ? null : iso(row.expires_at),
      ...(row.ended_at === null ? {} : { endedAt: iso(row.ended_at) }),
      ...(row.end_reason === null ? {} : { endReason: row.end_reason }),
      labels: JSON.parse(row.labels) as Record<string, string>,
    };
  }
}

/** A journal row as the API shows it: when, what, and its detail. */
function eventView(row: JournalRow): { at: string; event: string; detail?: Record<string, unknown> } {
  return {
    at: iso(row.at),
    event: row.event,
    ...(row.detail === null ? {} : { detail: JSON.parse(row.detail) as Record<string, unknown> }),
  };
}

/** Events logged even when EVENT_LOGS is "problems". */
const PROBLEM_EVENTS = new Set([
  "expired",
  "forced",
  "lease_failed",
  "wait_failed",
  "launch_failed",
  "launch_timeout",
  "launch_abandoned",
  "late_launch_closed",
  "close_failed",
  "close_gave_up",
  "reconciled_vanished",
  "reconciled_reclose",
  "drained",
]);

/** The duration an event reports, whichever detail field carries it. */
function eventDuration(detail: Record<string, unknown> | undefined): number | undefined {
  for (const key of ["heldMs", "waitedMs", "launchMs", "connectedMs"]) {
    const value = detail?.[key];
    if (typeof value === "number") return value;
  }
  return undefined;
}

function fail<T>(failure: Failure): PoolResult<T> {
  return { ok: false, failure };
}

/** Compares two SHA-256 hex digests in constant time. */
function sameHash(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  const encoder = new TextEncoder();
  return crypto.subtle.timingSafeEqual(encoder.encode(a), encoder.encode(b));
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** Settles with `work`, or with `onDeadline()` if `work` takes longer than `ms`; the timer never outlives the race. */
function raceDeadline<T>(work: Promise<T>, ms: number, onDeadline: () => T): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<T>((resolve, reject) => {
    timer = setTimeout(() => {
      try {
        resolve(onDeadline());
      } catch (error) {
        reject(error);
      }
    }, ms);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
