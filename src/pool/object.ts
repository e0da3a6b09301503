/**
 * PoolObject: the Durable Object that owns one pool (one per tenant and pool
 * name). It is a thin shell around machine.ts:
 *
 *   1. run a transition inside one `transactionSync` (atomic, no await inside);
 *   2. perform the effects it asked for (launch, close, reset, check, ping,
 *      probe, registry calls, wake a waiter), each one alone: one that throws
 *      never keeps the others from running;
 *   3. feed each effect's outcome back as another transition;
 *   4. make sure the single alarm fires no later than the earliest deadline in SQL.
 *
 * A Durable Object runs one event at a time only until it awaits, so every
 * decision is made synchronously in step 1; while I/O is awaited other
 * requests run freely, and the transition that records the outcome re-reads
 * the rows it touches. Every await on the platform or another object has its
 * own deadline (src/deadline.ts), and the alarm never waits on one of them:
 * reconciliation runs beside it. An outcome that arrives after the pool's
 * storage was deleted (or deleted and created anew) is dropped (`epoch`).
 *
 * In memory there is only what a restart may lose without breaking a
 * guarantee: the callers waiting for an answer (src/pool/callers.ts; their
 * requests end with the object, and `recover` fails their rows), in-flight I/O
 * (whose rows carry deadlines), and the Workers watching CDP sockets (they ask
 * again). The alarm time is never trusted from memory (src/pool/alarm.ts).
 */
import { DurableObject } from "cloudflare:workers";
import { providerFactory } from "../browser/factory";
import type { BrowserProvider } from "../browser/provider";
import { keepAliveOf, PlatformLimitError } from "../browser/provider";
import { message, withDeadline } from "../deadline";
import { log } from "../log";
import { fail, type Failure, type Result } from "../result";
import { registryOf, tenantOf } from "../stubs";
import { AlarmSchedule } from "./alarm";
import { Callers } from "./callers";
import { DEFAULT_CONFIG, mergeConfig, type PoolConfig, type PoolConfigPatch } from "./config";
import { checkInvariants, type InvariantReport } from "./invariants";
import {
  abandonLease,
  applyConfig,
  cancelWaiter,
  CHECK_TIMEOUT_MS,
  checkFailed,
  checkPassed,
  CLOSE_TIMEOUT_MS,
  closeFailed,
  closeSucceeded,
  drain,
  type Effect,
  forceRelease,
  isDraining,
  launchFailed,
  launchSucceeded,
  liveOf,
  notFound,
  pingFailed,
  pingSucceeded,
  probeAnswered,
  purgeIdle,
  reconcile,
  type ReconcileReport,
  recover,
  registered,
  registryDone,
  releaseAll,
  releaseLease,
  renewLease,
  requestLease,
  RESET_TIMEOUT_MS,
  resetFailed,
  resetSucceeded,
  resume,
  retire,
  type Step,
  tick,
} from "./machine";
import { hasSchema, type LeaseRow, type LeaseStatus, migrate } from "./schema";
import { PoolStore } from "./store";
import { Telemetry } from "./telemetry";
import {
  type AcquireInput,
  type AcquireView,
  type ConnectGrant,
  eventView,
  iso,
  type LeaseEvent,
  type LeaseView,
  leaseView,
  type PoolDashboard,
  type PoolMetrics,
  type PoolView,
} from "./views";

export type { AcquireInput, AcquireView, ConnectGrant, LeaseEvent, LeaseView, PoolDashboard, PoolMetrics, PoolView } from "./views";

/** How often the pool compares its sessions with the platform's list. */
export const RECONCILE_INTERVAL_MS = 60_000;
/** How soon a reconciliation whose list failed or timed out is tried again. */
export const RECONCILE_RETRY_MS = 10_000;
/** Idempotency keys are honoured this long (DESIGN.md: 24 h). */
export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;
/** Ended leases and closed sessions are kept this long (as long as an Idempotency-Key), then pruned by the alarm. */
export const HISTORY_RETENTION_MS = IDEMPOTENCY_TTL_MS;
/** How soon the alarm retries telling the registry or the tenant what they have not acknowledged. */
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
/**
 * How long a client's connect waits for the pool's own conversation with the
 * browser (a keep-alive ping, a check, a reset) to end: a platform that allows
 * one connection per session would refuse the client meanwhile.
 */
const TALK_WAIT_MS = 3_000;

/** Deadlines of the pool's I/O that is not an effect with its own (launch, close, reset, check, ping). */
export const IO_TIMEOUTS = {
  /** The platform's session list. */
  list: 10_000,
  /** A probe of one session. */
  probe: 5_000,
  /** A call to the account's registry or the tenant's object. */
  rpc: 10_000,
};

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
  /** keep_alive given to the platform at launch; tests shorten it. */
  keepAliveMs: number;
  /** Deadlines of the pool's own I/O; tests shorten them. */
  timeouts = { ...IO_TIMEOUTS };
  private cachedConfig: PoolConfig | undefined;
  private readonly callers = new Callers();
  private readonly inflight = new Set<Promise<unknown>>();
  /** Probes under way, so a reconciliation can answer once the suspects it found are decided. */
  private readonly probes = new Set<Promise<unknown>>();
  /** The pool's own CDP conversation with a browser (ping, check, reset), by session id. */
  private readonly talking = new Map<string, Promise<unknown>>();
  private readonly alarms: AlarmSchedule;
  private readonly telemetry: Telemetry;
  /** Whether the pool's tables exist: they are made by its creation, so a read of a pool that does not exist writes nothing. */
  private schema = false;
  /** Bumped when the pool's storage is deleted: outcomes of I/O started before are dropped. */
  private epoch = 0;
  /** The pool's identity, kept in memory: views and logs never need storage for it. */
  private tenant = "";
  private poolName = "";
  private reconciling: Promise<void> | undefined;
  private registeringPool: Promise<void> | undefined;
  /** The chain pool creation, config changes and deletion run on, one at a time. */
  private lifecycleChain: Promise<unknown> = Promise.resolve();
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
    this.keepAliveMs = keepAliveOf(env);
    this.alarms = new AlarmSchedule(ctx.storage, () => this.name());
    this.telemetry = new Telemetry({
      env: () => this.env,
      db: this.db,
      clock: () => this.clock(),
      tenant: () => this.tenant,
      pool: () => this.poolName,
      config: () => this.config(),
      atomically: (fn) => this.atomically(fn),
      track: (promise) => this.track(promise),
    });
    void ctx.blockConcurrencyWhile(async () => {
      // A pool object that was never created has no tables, and reading must not make them.
      if (!hasSchema(ctx.storage.sql)) return;
      migrate(ctx.storage);
      this.schema = true;
      this.tenant = this.db.getMeta("tenant") ?? "";
      this.poolName = this.db.getMeta("pool") ?? "";
      // A deletion interrupted before the storage went: the pool comes back.
      if (this.deleting()) this.undoDeletion();
      if (this.exists()) {
        this.track(this.registerPool());
        this.track(this.reportSize());
        this.transition(recover);
        // Right after a restart, compare with the platform (a lost launch may have left a browser behind).
        this.atomically(() => this.db.setMeta("next_reconcile_at", String(this.clock())));
        this.arm(this.clock());
      }
    });
  }

  // ---- RPC: the API -----------------------------------------------------------

  async acquire(input: AcquireInput): Promise<Result<AcquireView>> {
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
      if (!this.exists()) return fail(beingDeleted());
    }
    const config = this.config();
    const ttlSeconds = input.ttlSeconds ?? config.defaultTtlSeconds;
    if (ttlSeconds > config.maxTtlSeconds) {
      return fail({ status: 400, code: "invalid_request", detail: `ttlSeconds must be at most maxTtlSeconds (${config.maxTtlSeconds})` });
    }
    if (this.callers.takeEarlyCancel(input.leaseId)) {
      return fail({ status: 409, code: "lease_not_active", detail: "the request was cancelled" });
    }
    // Idempotency-Keys belong to the API key that sent them: another key's identical key is another request.
    const key = input.idempotencyKey === undefined ? null : `${input.owner} ${input.idempotencyKey}`;
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
        return this.repeated(outcome.lease, input.leaseId);
      case "replay":
        return this.answered(outcome.lease, input.leaseId, true);
      case "rejected":
        return fail(outcome.failure);
      case "granted":
      case "waiting":
        return this.answered(outcome.lease, input.leaseId, false);
    }
  }

  /** The answer to a request for `lease`: at once if it is decided, else when it is. */
  private answered(lease: LeaseRow, requestId: string, replayed: boolean): Promise<Result<AcquireView>> | Result<AcquireView> {
    if (lease.status === "waiting") return this.callers.wait(lease.id, requestId, replayed);
    if (lease.status === "active") this.callers.held(lease.id, requestId);
    return { ok: true, value: { lease: this.view(lease), replayed } };
  }

  /** An acquire retried with the lease id of its first attempt: that attempt's lease, or why it ended. */
  private repeated(lease: LeaseRow, requestId: string): Promise<Result<AcquireView>> | Result<AcquireView> {
    if (lease.status === "waiting" || lease.status === "active") return this.answered(lease, requestId, false);
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

  /**
   * The caller of a pending acquire went away (`requestId` is the lease id the
   * Worker minted for its request): its place in the queue is given up, unless
   * another request (an Idempotency-Key replay) waits for the same lease.
   */
  async cancel(requestId: string): Promise<boolean> {
    const leaving = this.callers.leave(requestId, fail({ status: 409, code: "lease_not_active", detail: "the request was cancelled" }));
    if (leaving.kind === "others") return false;
    if (leaving.kind === "unknown") {
      // Its acquire has not arrived yet (the two calls race), or was answered already.
      if (!this.exists() || !this.db.lease(requestId)) this.callers.cancelEarly(requestId);
      return false;
    }
    if (!this.exists()) return false;
    return this.transition((step) => cancelWaiter(step, leaving.leaseId));
  }

  /**
   * The caller of an acquire that was granted had gone before the answer left
   * the Worker: nobody can use the lease (its connect token never left), so it
   * is released (endReason `abandoned`) unless another request holds it too.
   */
  async abandon(requestId: string): Promise<boolean> {
    if (!this.exists()) return false;
    const leaseId = this.callers.abandon(requestId, (id) => (this.db.lease(id) ? id : undefined));
    if (leaseId === undefined) return false;
    const lease = this.transition((step) => abandonLease(step, leaseId));
    return lease?.end_reason === "abandoned";
  }

  async getLease(leaseId: string): Promise<Result<LeaseView>> {
    const lease = this.exists() ? this.db.lease(leaseId) : undefined;
    return lease ? { ok: true, value: this.view(lease) } : fail(notFound("lease"));
  }

  /** A lease's audit trail: every journal row about it, oldest first. */
  async leaseEvents(leaseId: string): Promise<Result<{ lease: string; events: LeaseEvent[] }>> {
    if (!this.exists() || !this.db.lease(leaseId)) return fail(notFound("lease"));
    const events = this.db.journalFor(leaseId).map((row) => ({
      ...eventView(row),
      ...(row.session_row === null ? {} : { sessionRow: row.session_row }),
    }));
    return { ok: true, value: { lease: leaseId, events } };
  }

  async listLeases(options: { status?: LeaseStatus; limit: number; cursor?: number }): Promise<
    Result<{ leases: LeaseView[]; nextCursor: number | null }>
  > {
    if (!this.exists()) return fail(notFound("pool"));
    const rows = this.db.listLeases(options.status, options.cursor, options.limit + 1);
    const page = rows.slice(0, options.limit);
    const nextCursor = rows.length > options.limit ? page[page.length - 1]!.seq : null;
    return { ok: true, value: { leases: page.map((row) => this.view(row)), nextCursor } };
  }

  async renew(leaseId: string, ttlSeconds?: number): Promise<Result<LeaseView>> {
    if (!this.exists()) return fail(notFound("lease"));
    const config = this.config();
    const ttl = ttlSeconds ?? config.defaultTtlSeconds;
    if (ttl > config.maxTtlSeconds) {
      return fail({ status: 400, code: "invalid_request", detail: `ttlSeconds must be at most maxTtlSeconds (${config.maxTtlSeconds})` });
    }
    const result = this.transition((step) => renewLease(step, leaseId, ttl * 1000));
    return "failure" in result ? fail(result.failure) : { ok: true, value: this.view(result.lease) };
  }

  async release(leaseId: string): Promise<Result<LeaseView>> {
    if (!this.exists()) return fail(notFound("lease"));
    const lease = this.transition((step) => releaseLease(step, leaseId));
    return lease ? { ok: true, value: this.view(lease) } : fail(notFound("lease"));
  }

  /** Releases the active leases of `owner` (one API key), or all of them without one. */
  async releaseAll(owner?: string): Promise<Result<{ released: number }>> {
    if (!this.exists()) return fail(notFound("pool"));
    return { ok: true, value: { released: this.transition((step) => releaseAll(step, owner)) } };
  }

  async describe(): Promise<Result<PoolView>> {
    if (!this.exists()) return fail(notFound("pool"));
    return { ok: true, value: this.poolView() };
  }

  /**
   * Creates the pool or changes its config. A pool that is created or grows
   * first claims its new maxSessions from the tenant's quota; one that shrinks
   * tells the tenant after it has shrunk. One configure at a time (and never
   * alongside the first acquire's creation or a deletion), so the size the
   * tenant object records is always the size of the last change. A change to a
   * pool that existed when it arrived, and was deleted while it waited its
   * turn, is refused (404): it must not create the pool anew.
   */
  async configure(tenant: string, pool: string, patch: PoolConfigPatch): Promise<Result<PoolView>> {
    if (this.deleting()) return fail(beingDeleted());
    const existed = this.exists();
    return this.serially(async () => {
      if (existed && !this.exists()) return fail({ status: 404, code: "not_found", detail: "the pool was deleted while this change waited its turn" });
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
  async deletePool(asTenant: string, asPool: string): Promise<Result<{ pool: string; deleted: true; closedSessions: number }>> {
    return this.serially(async () => {
      if (!this.exists()) {
        // Nothing to delete; but a creation that failed after the tenant granted
        // its claim (the answer lost, the object gone before it recorded the
        // pool) left that claim counted. No creation of this name can be under
        // way here (they run in turn), so the claim, if any, is stale: free it.
        await this.rpc(() => tenantOf(this.env, asTenant).releasePool(asPool), "the tenant's object").catch(() => undefined);
        return fail(notFound("pool"));
      }
      const retired = this.transition(retire);
      if ("status" in retired) return fail(retired);
      this.atomically(() => this.db.setMeta("deleting", "1"));
      // The idle browsers' closes, and any registration still on its way (each has a deadline).
      await this.settled();
      const { tenant, poolName } = this;
      try {
        await this.rpc(() => this.registry().untrackPool(tenant, poolName), "the session registry");
        await this.rpc(() => tenantOf(this.env, tenant).releasePool(poolName), "the tenant's object");
      } catch (error) {
        // Nothing is deleted: the pool stays, drained, and the alarm registers it
        // and reports its size again. The caller may retry.
        log("pool_delete_failed", { pool: this.name(), error: message(error) });
        this.undoDeletion();
        this.arm(this.clock());
        return fail({ status: 503, code: "unavailable", detail: "the pool could not be unregistered; nothing was deleted (it stays drained): retry", retryAfter: 1 });
      }
      // From here on, nothing started before writes or arms anything.
      this.epoch += 1;
      this.alarms.cancel();
      await this.ctx.storage.deleteAlarm();
      await this.ctx.storage.deleteAll();
      this.db.forgetCached();
      this.schema = false;
      this.cachedConfig = undefined;
      this.tenant = "";
      this.poolName = "";
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
      consistent: this.telemetry.lastCheck()?.consistent ?? true,
      counters: this.db.counters(),
      histograms: this.db.histograms(),
      reconciled: this.reconciledTotal(),
    };
  }

  // ---- RPC: operators' actions (admin token; the pool must exist) ----------------

  async drain(): Promise<Result<{ waitersTurnedAway: number; pool: PoolView }>> {
    if (!this.exists()) return fail(notFound("pool"));
    const waitersTurnedAway = this.transition(drain);
    log("pool_drained", { pool: this.name(), waitersTurnedAway });
    return { ok: true, value: { waitersTurnedAway, pool: this.poolView() } };
  }

  async resume(): Promise<Result<PoolView>> {
    if (!this.exists()) return fail(notFound("pool"));
    this.transition(resume);
    log("pool_resumed", { pool: this.name() });
    return { ok: true, value: this.poolView() };
  }

  async forceRelease(leaseId: string): Promise<Result<LeaseView>> {
    if (!this.exists()) return fail(notFound("lease"));
    const lease = this.transition((step) => forceRelease(step, leaseId));
    if (lease) log("lease_forced", { pool: this.name(), lease: leaseId });
    return lease ? { ok: true, value: this.view(lease) } : fail(notFound("lease"));
  }

  async purgeIdle(): Promise<Result<{ closed: number; pool: PoolView }>> {
    if (!this.exists()) return fail(notFound("pool"));
    const closed = this.transition(purgeIdle);
    log("idle_purged", { pool: this.name(), closed });
    return { ok: true, value: { closed, pool: this.poolView() } };
  }

  /** Resize or reconfigure an existing pool (never creates one). */
  async reconfigure(patch: PoolConfigPatch): Promise<Result<PoolView>> {
    if (!this.exists()) return fail(notFound("pool"));
    return this.configure(this.tenant, this.poolName, patch);
  }

  /** Runs the full invariant check now (it reads the whole wait queue) and keeps its report for the pool's view. */
  async checkNow(): Promise<Result<InvariantReport & { checkedAt: string }>> {
    if (!this.exists()) return fail(notFound("pool"));
    const now = this.clock();
    const report = this.telemetry.checkNow(now);
    return { ok: true, value: { ...report, checkedAt: iso(now) } };
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

  /** The full invariant check, without keeping its report (tests call it after every step). */
  async checkInvariants(): Promise<InvariantReport> {
    if (!this.schema) return { consistent: true, violations: [] };
    return checkInvariants(this.db.sql, this.config(), this.clock());
  }

  // ---- RPC: CDP connections (the Worker proxies the sockets) ---------------------

  /**
   * Checks a connect token for a lease: 404 unknown lease, 401 wrong token, 409
   * lease not active. With `register`, records the socket the Worker is about to
   * open, decided in the same synchronous step as the check, so a lease that
   * ends afterwards always knows to wait for this socket. Before answering, it
   * lets the pool's own conversation with the browser (a keep-alive ping, say)
   * finish: a platform that allows one connection per session would refuse the
   * client meanwhile.
   */
  async openConnection(leaseId: string, tokenHash: string, register: boolean): Promise<Result<ConnectGrant>> {
    const lease = this.exists() ? this.db.lease(leaseId) : undefined;
    if (!lease) return fail(notFound("lease"));
    if (!lease.token_hash || !sameHash(lease.token_hash, tokenHash)) {
      return fail({ status: 401, code: "unauthorized", detail: "the connect token is not valid for this lease" });
    }
    const talk = lease.session_id ? this.talking.get(lease.session_id) : undefined;
    if (register && talk) await withDeadline(talk, TALK_WAIT_MS, "the pool's own CDP conversation").catch(() => undefined);
    if (!this.exists()) return fail(notFound("lease"));
    const before = this.db.lease(leaseId)!;
    if (before.status === "active" && before.expires_at! <= this.clock()) this.transition(tick);
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
      if (current.connected_at === null) this.db.updateLease(leaseId, { connected_at: now });
      this.db.journal(now, "connected", leaseId, current.session_row, { connectionId });
    });
    return { ok: true, value: { connectionId, sessionId: current.session_id! } };
  }

  /**
   * The browser refused the connection the Worker opened for `connectionId`.
   * A refusal alone proves nothing (a platform busy with another connection
   * refuses too), so the platform is asked directly: if the session is gone,
   * its lease fails with browser_gone and its slot is freed (`gone: true`);
   * otherwise the client may try again. The connection is forgotten either way.
   */
  async connectFailed(connectionId: string): Promise<{ gone: boolean }> {
    const row = this.exists() ? this.db.connection(connectionId) : undefined;
    if (!row) return { gone: false };
    const lease = this.db.lease(row.lease_id);
    this.atomically(() => {
      this.db.deleteConnection(connectionId);
      this.db.journal(this.clock(), "connect_failed", row.lease_id, lease?.session_row ?? null, { connectionId });
      // Nobody has connected yet after all: connectWithinSeconds still applies.
      if (lease?.connected_at === row.opened_at && this.db.connectionsOf(row.lease_id) === 0) this.db.updateLease(row.lease_id, { connected_at: null });
    });
    if (this.db.connectionsOf(row.lease_id) === 0) this.leaseDrained.signal(row.lease_id, true);
    if (lease?.status !== "active" || lease.session_row === null || !lease.session_id) return { gone: false };
    const epoch = this.epoch;
    const alive = await withDeadline(this.provider.probe(lease.session_id), this.timeouts.probe, "a probe of the session").catch(() => undefined);
    if (alive !== false || !this.current(epoch)) return { gone: false };
    this.transition((step) => probeAnswered(step, lease.session_row!, false));
    return { gone: true };
  }

  /**
   * Resolves when the connection's lease ends (at once if it already has, or if
   * the connection is unknown). The Worker keeps this call open for as long as
   * it proxies the socket; if the object restarts the call fails and the Worker
   * asks again, and the connection's row, kept in SQL, is still there.
   */
  async watchConnection(connectionId: string): Promise<{ reason: string }> {
    const row = this.exists() ? this.db.connection(connectionId) : undefined;
    if (!row) return { reason: "disconnected" };
    const lease = this.db.lease(row.lease_id);
    if (lease?.status !== "active") return { reason: lease?.end_reason ?? "ended" };
    return this.leaseEnded.wait(row.lease_id);
  }

  /** The Worker closed both ends of a proxied socket. Idempotent. */
  async closeConnection(connectionId: string): Promise<void> {
    const row = this.schema ? this.db.connection(connectionId) : undefined;
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

  /**
   * Everything due, then re-armed in a `finally`: a step that throws never
   * leaves the pool without its next alarm. Reconciliation, whose list can
   * hang, runs beside the alarm (with its own deadline), never in front of it.
   */
  override async alarm(): Promise<void> {
    try {
      if (!this.exists()) return;
      this.track(this.registerPool());
      this.track(this.reportSize());
      this.transition(tick);
      const now = this.clock();
      if (Number(this.db.getMeta("next_reconcile_at") ?? 0) <= now) {
        this.reconcileNow().catch((error) => log("reconcile_failed", { pool: this.name(), error: message(error) }));
      }
      const pruned = this.atomically(() => {
        this.db.purgeIdempotentBefore(now - IDEMPOTENCY_TTL_MS);
        this.db.pruneJournal(JOURNAL_KEEP);
        this.db.pruneConnections(now - STALE_CONNECTION_MS);
        return this.db.pruneHistory(now - HISTORY_RETENTION_MS, PRUNE_BATCH);
      });
      if (pruned.leases || pruned.sessions) log("history_pruned", { pool: this.name(), ...pruned });
      this.telemetry.watchHealth(now);
    } finally {
      if (this.exists()) await this.alarms.rearm(this.nextDeadline(this.clock()));
    }
  }

  /**
   * Compares SQL with the platform's live sessions; one at a time. The list has
   * a deadline; whatever happens to it, the next one is already scheduled (a
   * full interval later, or sooner after a failure), so a list that hangs can
   * neither stall the alarm nor make it fire in a loop. Answers once the
   * suspects it found have been probed.
   */
  async reconcileNow(): Promise<ReconcileReport | undefined> {
    if (!this.exists()) return undefined;
    this.reconciling ??= this.reconcileOnce().finally(() => {
      this.reconciling = undefined;
    });
    await this.reconciling;
    const last = this.exists() ? this.db.getMeta("last_reconcile") : undefined;
    return last ? (JSON.parse(last) as ReconcileReport) : undefined;
  }

  private async reconcileOnce(): Promise<void> {
    const epoch = this.epoch;
    const listedAt = this.clock();
    this.atomically(() => this.db.setMeta("next_reconcile_at", String(listedAt + RECONCILE_INTERVAL_MS)));
    this.arm(listedAt);
    let live: Set<string>;
    try {
      live = new Set((await withDeadline(this.provider.list(), this.timeouts.list, "the platform's session list")).map((s) => s.sessionId));
    } catch (error) {
      log("reconcile_failed", { pool: this.name(), error: message(error) });
      if (this.current(epoch)) {
        this.atomically(() => this.db.setMeta("next_reconcile_at", String(this.clock() + RECONCILE_RETRY_MS)));
        this.arm(this.clock());
      }
      return;
    }
    if (!this.current(epoch)) return;
    const vanishedBefore = this.reconciledTotal().vanished;
    const report = this.transition((step) => reconcile(step, live, listedAt));
    // The suspects it found are probed; those the platform says are gone count as vanished too.
    await Promise.allSettled([...this.probes]);
    if (!this.current(epoch)) return;
    report.vanished = this.reconciledTotal().vanished - vanishedBefore;
    this.atomically(() => this.db.setMeta("last_reconcile", JSON.stringify({ at: listedAt, ...report })));
    if (report.vanished || report.reclosed || report.suspect || report.untrusted) log("reconciled", { pool: this.name(), ...report });
    if (report.vanished) {
      this.telemetry.alert("capacity_reclaimed", `reconciliation freed ${report.vanished} session(s) whose browsers were gone`, { ...report });
    }
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

  /** Resolves when the reconciliation in flight, if any, has finished (tests await it after an alarm). */
  async reconciled(): Promise<void> {
    await this.reconciling;
  }

  // ---- the shell ----------------------------------------------------------------

  private transition<T>(fn: (step: Step) => T): T {
    const step: Step = { db: this.db, now: this.clock(), config: this.config(), keepAliveMs: this.keepAliveMs, effects: [] };
    const result = this.atomically(() => fn(step));
    try {
      this.perform(step.effects);
    } finally {
      this.arm(step.now);
      this.telemetry.watchLaunchFailures();
    }
    return result;
  }

  /** Whether I/O started at `epoch` may still record its outcome: the storage it was started for still exists. */
  private current(epoch: number): boolean {
    return epoch === this.epoch && this.schema;
  }

  /** Records an effect's outcome, unless the pool's storage was deleted since the effect started. */
  private after(epoch: number, fn: (step: Step) => void): void {
    if (!this.current(epoch)) {
      log("late_outcome_dropped", { pool: this.name() });
      return;
    }
    this.transition(fn);
  }

  /** Performs each effect on its own: one that throws is logged and counted as failed, and the others still run. */
  private perform(effects: Effect[]): void {
    const epoch = this.epoch;
    for (const effect of effects) {
      try {
        this.start(effect, epoch);
      } catch (error) {
        log("effect_failed", { pool: this.name(), effect: effect.kind, error: message(error) });
        this.startFailed(effect, epoch, message(error));
      }
    }
  }

  private start(effect: Effect, epoch: number): void {
    switch (effect.kind) {
      case "launch":
        this.track(this.launch(effect.row, epoch));
        break;
      case "close":
        this.track(
          this.io(epoch, () => this.provider.close(effect.sessionId), CLOSE_TIMEOUT_MS, "a close", (s) => closeSucceeded(s, effect.row), (s, m) =>
            closeFailed(s, effect.row, m),
          ),
        );
        break;
      case "reset":
        this.track(
          this.io(
            epoch,
            async () => {
              // Never clean (and so never hand on) a browser a client of the last lease still drives.
              if (!(await this.untilDisconnected(effect.leaseId, DISCONNECT_GRACE_MS))) {
                throw new Error(`a CDP client of lease ${effect.leaseId} was still connected ${DISCONNECT_GRACE_MS} ms after it ended`);
              }
              await this.talk(effect.sessionId, () => this.provider.reset(effect.sessionId));
            },
            RESET_TIMEOUT_MS,
            "a reset",
            (s) => resetSucceeded(s, effect.row),
            (s, m) => resetFailed(s, effect.row, m),
          ),
        );
        break;
      case "check":
        this.track(
          this.io(epoch, () => this.talk(effect.sessionId, () => this.provider.ping(effect.sessionId)), CHECK_TIMEOUT_MS, "a check", (s) =>
            checkPassed(s, effect.row), (s, m) => checkFailed(s, effect.row, m),
          ),
        );
        break;
      case "ping":
        this.track(
          this.io(epoch, () => this.talk(effect.sessionId, () => this.provider.ping(effect.sessionId)), CLOSE_TIMEOUT_MS, "a ping", (s) =>
            pingSucceeded(s, effect.row), (s, m) => pingFailed(s, effect.row, m),
          ),
        );
        break;
      case "probe": {
        const probe = withDeadline((async () => this.provider.probe(effect.sessionId))(), this.timeouts.probe, "a probe").then(
          (alive) => this.after(epoch, (s) => probeAnswered(s, effect.row, alive)),
          // The platform did not say: the session stays suspect; a later list decides.
          (error) => log("probe_failed", { pool: this.name(), sessionId: effect.sessionId, error: message(error) }),
        );
        this.probes.add(probe);
        void probe.finally(() => this.probes.delete(probe));
        this.track(probe);
        break;
      }
      case "disconnect":
        this.leaseEnded.signal(effect.leaseId, { reason: effect.reason });
        this.callers.ended(effect.leaseId);
        break;
      // The registry calls are retried by tick until acknowledged.
      case "register":
        this.track(this.rpc(() => this.registry().track(effect.sessionId, this.name()), "the session registry").then(() => this.after(epoch, (s) => registered(s, effect.row))));
        break;
      case "forget":
        this.track(this.rpc(() => this.registry().forget(effect.sessionId), "the session registry").then(() => this.after(epoch, (s) => registryDone(s, [effect.row]))));
        break;
      case "reportLost":
        this.track(
          this.rpc(() => this.registry().lostLaunches(this.name(), effect.windows), "the session registry").then(() =>
            this.after(epoch, (s) => registryDone(s, effect.rows)),
          ),
        );
        break;
      case "grant": {
        const lease = this.db.lease(effect.leaseId);
        if (lease) this.callers.answer(effect.leaseId, { ok: true, value: { lease: this.view(lease), replayed: false } });
        break;
      }
      case "reject":
        this.callers.answer(effect.leaseId, fail(effect.failure));
        break;
    }
  }

  /** An effect could not even be started: its failure is recorded as if it had failed (the rest are retried by tick). */
  private startFailed(effect: Effect, epoch: number, error: string): void {
    const outcome: ((s: Step) => void) | undefined =
      effect.kind === "launch"
        ? (s) => launchFailed(s, effect.row, { message: error, platformLimited: false })
        : effect.kind === "close"
          ? (s) => closeFailed(s, effect.row, error)
          : effect.kind === "reset"
            ? (s) => resetFailed(s, effect.row, error)
            : effect.kind === "check"
              ? (s) => checkFailed(s, effect.row, error)
              : effect.kind === "ping"
                ? (s) => pingFailed(s, effect.row, error)
                : undefined;
    if (!outcome) return;
    try {
      this.after(epoch, outcome);
    } catch (failure) {
      log("effect_failed", { pool: this.name(), effect: effect.kind, error: message(failure) });
    }
  }

  /**
   * Starts a launch. Its outcome is recorded whenever the platform answers, even
   * after the deadline (a late browser is then closed). The deadline itself is
   * enforced by `tick`, from the alarm and from a timer here, whichever is first.
   */
  private launch(row: number, epoch: number): Promise<unknown> {
    const timeoutMs = this.config().launchTimeoutSeconds * 1000;
    const attempt = (async () => this.provider.launch({ keepAliveMs: this.keepAliveMs }))().then(
      (sessionId) => this.after(epoch, (s) => launchSucceeded(s, row, sessionId)),
      (error) =>
        this.after(epoch, (s) =>
          launchFailed(s, row, {
            message: message(error),
            platformLimited: error instanceof PlatformLimitError,
            ...(error instanceof PlatformLimitError ? { retryAfterSeconds: error.retryAfterSeconds } : {}),
          }),
        ),
    );
    return raceDeadline(attempt, timeoutMs + 50, () => this.after(epoch, tick));
  }

  /** An effect's I/O with its deadline; its outcome (success, failure, or the deadline) becomes a transition. */
  private io(
    epoch: number,
    op: () => Promise<void>,
    timeoutMs: number,
    what: string,
    ok: (step: Step) => void,
    failed: (step: Step, message: string) => void,
  ): Promise<void> {
    return withDeadline((async () => op())(), timeoutMs, what).then(
      () => this.after(epoch, ok),
      (error) => this.after(epoch, (s) => failed(s, message(error))),
    );
  }

  /** A call to another object (the registry, the tenant), with a deadline. */
  private rpc<T>(call: () => Promise<T>, what: string): Promise<T> {
    return withDeadline((async () => call())(), this.timeouts.rpc, what);
  }

  /** Runs the pool's own CDP conversation with a browser, so a client's connect can wait for it to end. */
  private talk<T>(sessionId: string, op: () => Promise<T>): Promise<T> {
    const conversation = (async () => op())();
    this.talking.set(sessionId, conversation);
    const done = () => {
      if (this.talking.get(sessionId) === conversation) this.talking.delete(sessionId);
    };
    conversation.then(done, done);
    return conversation;
  }

  private track(promise: Promise<unknown>): void {
    const tracked = promise
      // Logging must not touch storage: a crashed instance's late continuation ends up here.
      .catch((error) => log("effect_failed", { pool: this.name(), error: message(error) }))
      .finally(() => this.inflight.delete(tracked));
    this.inflight.add(tracked);
  }

  /** Makes sure the alarm fires no later than the earliest deadline in SQL (see AlarmSchedule: never trusted from memory). */
  private arm(now: number): void {
    if (!this.exists() && !this.deleting()) return;
    const next = this.nextDeadline(now);
    if (next !== null) void this.alarms.request(next);
  }

  private nextDeadline(now: number): number | null {
    const { earliest, idempotency, history, unconnected, registryOwed } = this.db.deadlines();
    const config = this.config();
    const candidates = earliest === null ? [] : [earliest];
    const blocked = Number(this.db.getMeta("launch_blocked_until") ?? 0);
    if (blocked > now) candidates.push(blocked);
    // Reconcile periodically while the pool holds anything, or may have left a
    // browser running (see keepReconciling); otherwise an empty pool sleeps.
    if (earliest !== null || Number(this.db.getMeta("reconcile_until") ?? 0) > now) {
      candidates.push(Number(this.db.getMeta("next_reconcile_at") ?? now));
    }
    if (unconnected !== null && config.connectWithinSeconds > 0) candidates.push(unconnected + config.connectWithinSeconds * 1000);
    if (idempotency !== null) candidates.push(idempotency + IDEMPOTENCY_TTL_MS);
    if (history !== null) candidates.push(history + HISTORY_RETENTION_MS);
    if (registryOwed || this.db.getMeta("pool_registered") !== "1" || this.db.getMeta("tenant_claimed") !== String(config.maxSessions)) {
      candidates.push(now + REGISTER_RETRY_MS);
    }
    const exhaustion = this.telemetry.exhaustionDeadline();
    if (exhaustion !== null) candidates.push(exhaustion);
    return candidates.length === 0 ? null : Math.min(...candidates);
  }

  /**
   * Makes the account's registry list this pool (GET /v1/pools). Retried by
   * the constructor and the alarm (due within REGISTER_RETRY_MS while it is
   * not done) until the registry has acknowledged it. Never throws.
   */
  private registerPool(): Promise<void> {
    if (!this.exists() || this.db.getMeta("pool_registered") === "1") return Promise.resolve();
    const epoch = this.epoch;
    this.registeringPool ??= (async () => {
      try {
        await this.rpc(() => this.registry().trackPool(this.tenant, this.poolName, Number(this.db.getMeta("created_at"))), "the session registry");
        if (this.current(epoch)) this.atomically(() => this.db.setMeta("pool_registered", "1"));
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
   * Answers 503 if the tenant object cannot be reached in time: nothing was
   * changed here, and the caller may retry (a claim is absolute, so a retry
   * never counts twice).
   */
  private async claim(tenant: string, pool: string, maxSessions: number): Promise<Result<null>> {
    try {
      const claimed: Result<null> = await this.rpc(async () => {
        const answer = await tenantOf(this.env, tenant).claimPool(tenant, pool, maxSessions);
        return answer.ok ? { ok: true as const, value: null } : { ok: false as const, failure: answer.failure };
      }, "the tenant's object");
      if (claimed.ok && this.schema) this.atomically(() => this.db.setMeta("tenant_claimed", String(maxSessions)));
      else if (claimed.ok) this.claimedBeforeCreation = maxSessions;
      return claimed;
    } catch (error) {
      log("quota_claim_failed", { pool: `${tenant}/${pool}`, error: message(error) });
      return fail({ status: 503, code: "quota_unavailable", detail: "the tenant's quota could not be checked; retry", retryAfter: 1 });
    }
  }

  /** A claim granted before the pool's tables existed; recorded by ensureCreated. */
  private claimedBeforeCreation: number | undefined;

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
    const epoch = this.epoch;
    try {
      await this.rpc(() => tenantOf(this.env, this.tenant).reportPool(this.tenant, this.poolName, size), "the tenant's object");
      if (this.current(epoch) && this.config().maxSessions === size) this.atomically(() => this.db.setMeta("tenant_claimed", String(size)));
    } catch (error) {
      log("quota_report_failed", { pool: this.name(), error: message(error) });
    }
  }

  /** Runs `task` after every earlier one has finished: pool creation, config changes and deletion, which await other objects. */
  private serially<T>(task: () => Promise<T>): Promise<T> {
    this.turns += 1;
    const run = this.lifecycleChain.then(task).finally(() => {
      this.turns -= 1;
    });
    this.lifecycleChain = run.catch(() => undefined);
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
    return this.schema && this.db.getMeta("created_at") !== undefined && !this.deleting();
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
    return this.schema && this.db.getMeta("deleting") === "1";
  }

  /** Records the pool's creation (after the tenant's quota granted it: `claim` noted the size). The pool's tables are made here. */
  private ensureCreated(tenant: string, pool: string): void {
    if (this.exists()) return;
    if (!this.schema) {
      migrate(this.ctx.storage);
      this.schema = true;
    }
    this.tenant = tenant;
    this.poolName = pool;
    const now = this.clock();
    const claimed = this.claimedBeforeCreation;
    this.claimedBeforeCreation = undefined;
    this.atomically(() => {
      this.db.setMeta("tenant", tenant);
      this.db.setMeta("pool", pool);
      this.db.setMeta("created_at", String(now));
      this.db.setMeta("config", JSON.stringify(DEFAULT_CONFIG));
      this.db.setMeta("next_reconcile_at", String(now + RECONCILE_INTERVAL_MS));
      if (claimed !== undefined) this.db.setMeta("tenant_claimed", String(claimed));
      this.db.journal(now, "pool_created", null, null, { tenant, pool });
    });
    this.cachedConfig = undefined;
    this.track(this.registerPool());
  }

  private config(): PoolConfig {
    if (!this.cachedConfig) {
      const stored = this.schema ? this.db.getMeta("config") : undefined;
      this.cachedConfig = stored ? { ...DEFAULT_CONFIG, ...(JSON.parse(stored) as Partial<PoolConfig>) } : { ...DEFAULT_CONFIG };
    }
    return this.cachedConfig;
  }

  private maxSessionsLimit(): number {
    const configured = Number(this.env.MAX_SESSIONS_PER_POOL);
    return Number.isInteger(configured) && configured > 0 ? configured : DEFAULT_CONFIG.maxSessions;
  }

  /**
   * The pool as GET /v1/pools/{pool} shows it. O(1) in the pool's size: counts
   * come from the tallies, and `consistent`/`violations` from the last full
   * invariant check (the alarm's, or an operator's), which reads the whole wait
   * queue and so never runs on the read path; a capacity overrun, the one
   * violation the tallies show, is added at once.
   */
  private poolView(): PoolView {
    const config = this.config();
    const counts = this.db.counts();
    const inUse = liveOf(counts);
    const check = this.telemetry.lastCheck();
    const violations = [...(check?.violations ?? [])];
    if (inUse > config.maxSessions) violations.push(`${inUse} sessions hold capacity, above maxSessions ${config.maxSessions}`);
    const last = this.db.getMeta("last_reconcile");
    const lastReport = last ? (JSON.parse(last) as ReconcileReport & { at: number }) : null;
    return {
      pool: this.poolName,
      config,
      counts,
      capacity: { max: config.maxSessions, inUse, available: Math.max(0, config.maxSessions - inUse) + counts.idle },
      draining: isDraining(this.db),
      consistent: violations.length === 0,
      violations,
      checkedAt: check ? iso(check.at) : null,
      createdAt: iso(Number(this.db.getMeta("created_at"))),
      lastReconciledAt: lastReport ? iso(lastReport.at) : null,
      lastReconcile: lastReport
        ? {
            vanished: lastReport.vanished,
            suspect: lastReport.suspect ?? 0,
            reclosed: lastReport.reclosed,
            unknown: lastReport.unknown,
            untrusted: lastReport.untrusted ?? false,
          }
        : null,
      reconciledTotal: this.reconciledTotal(),
    };
  }

  /** Reconciliation's fixes since the pool was created. */
  private reconciledTotal(): { vanished: number; reclosed: number } {
    return { vanished: Number(this.db.getMeta("vanished_total") ?? 0), reclosed: Number(this.db.getMeta("reclosed_total") ?? 0) };
  }

  private view(row: LeaseRow): LeaseView {
    return leaseView(row, this.poolName);
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
    this.telemetry.publish(this.db.takeWritten());
    return result;
  }
}

/** Compares two SHA-256 hex digests in constant time. */
function sameHash(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  const encoder = new TextEncoder();
  return crypto.subtle.timingSafeEqual(encoder.encode(a), encoder.encode(b));
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
