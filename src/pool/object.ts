/**
 * PoolObject: the Durable Object that owns one pool (one per tenant and pool
 * name), and its RPC surface: what the Worker may ask of a pool. Each method
 * checks what only the object can check, then runs a transition of
 * machine.ts through the shell (shell.ts), or a step of the pool's life with
 * the objects around it (lifecycle.ts), or of its CDP sockets
 * (connections.ts), and answers with a view (views.ts).
 *
 * In memory there is only what a restart may lose without breaking a
 * guarantee: the callers waiting for an answer (callers.ts; their requests end
 * with the object, and `recover` fails their rows), in-flight I/O (whose rows
 * carry deadlines), and the Workers watching CDP sockets (they ask again).
 */
import { DurableObject } from "cloudflare:workers";
import type { BrowserProvider } from "../browser/provider";
import { log } from "../log";
import { fail, type Result } from "../result";
import { DEFAULT_CONFIG, type PoolConfigPatch } from "./config";
import { Connections } from "./connections";
import { checkInvariants, type InvariantReport } from "./invariants";
import { beingDeleted, Lifecycle } from "./lifecycle";
import {
  abandonLease,
  cancelWaiter,
  isDraining,
  notFound,
  releaseAll,
  releaseLease,
  renewLease,
  requestLease,
} from "./machine";
import { drain, forceRelease, purgeIdle, resume } from "./operations";
import { permitsAvailable, shed } from "./permits";
import { type ReconcileReport } from "./reconcile";
import type { LeaseRow, LeaseStatus } from "./schema";
import { IDEMPOTENCY_TTL_MS, PoolShell } from "./shell";
import type { PoolStore } from "./store";
import type { Telemetry } from "./telemetry";
import {
  type AcquireInput,
  type AcquireView,
  type ConnectGrant,
  eventView,
  iso,
  type LeaseEvent,
  type LeaseView,
  type PoolDashboard,
  type PoolMetrics,
  type PoolPressure,
  type PoolView,
  breakerView,
  poolView,
  pressureView,
} from "./views";

export type { AcquireInput, AcquireView, ConnectGrant, LeaseEvent, LeaseView, PoolDashboard, PoolMetrics, PoolPressure, PoolView } from "./views";

export class PoolObject extends DurableObject<Env> {
  private readonly shell: PoolShell;
  private readonly lifecycle: Lifecycle;
  private readonly connections: Connections;
  /** The shell's store and telemetry, named here for tests that look inside the object. */
  private readonly db: PoolStore;
  private readonly telemetry: Telemetry;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.shell = new PoolShell(ctx, () => this.env);
    this.lifecycle = new Lifecycle(this.shell, () => this.env);
    this.connections = new Connections(this.shell);
    this.db = this.shell.db;
    this.telemetry = this.shell.telemetry;
    void ctx.blockConcurrencyWhile(async () => {
      // A pool object that was never created has no tables, and reading must not make them.
      if (this.shell.open()) this.lifecycle.restore();
    });
  }

  // ---- test seams (time, keep-alive, deadlines and the provider are injected) ----

  /** The time source for every transition; tests replace it to drive deadlines without sleeping. */
  get clock(): () => number {
    return this.shell.clock;
  }
  set clock(clock: () => number) {
    this.shell.clock = clock;
  }

  /** keep_alive given to the platform at launch; tests shorten it. */
  get keepAliveMs(): number {
    return this.shell.keepAliveMs;
  }
  set keepAliveMs(ms: number) {
    this.shell.keepAliveMs = ms;
  }

  /** Deadlines of the pool's own I/O; tests shorten them. */
  get timeouts(): PoolShell["timeouts"] {
    return this.shell.timeouts;
  }

  /** Replaces the browser provider (fault injection in tests, simulation in benchmarks). */
  useProvider(provider: BrowserProvider): void {
    this.shell.provider = provider;
  }

  /** Resolves when the permits asked for so far have been answered (a launch then starts, or is deferred). */
  async permitsAnswered(): Promise<void> {
    await this.shell.account.answered();
  }

  /** The account's governor this pool asks for permits (tests: one of the test's own, by name). */
  useGovernor(name: string): void {
    this.shell.account.governorName = name;
  }

  /** Resolves when no effect is in flight any more (tests await this instead of sleeping). */
  async effectsDone(): Promise<void> {
    await this.shell.effectsDone();
  }

  /** Resolves when the reconciliation in flight, if any, has finished (tests await it after an alarm). */
  async reconciled(): Promise<void> {
    await this.shell.reconciliationDone();
  }

  // ---- RPC: leases ------------------------------------------------------------------

  async acquire(input: AcquireInput): Promise<Result<AcquireView>> {
    const shell = this.shell;
    if (shell.state() === "deleting") return fail(beingDeleted());
    if (!shell.serving()) {
      const created = await this.lifecycle.createForAcquire(input.tenant, input.pool);
      if (!created.ok) return created;
      if (!shell.serving()) return fail(beingDeleted());
    }
    const config = shell.config();
    const ttlSeconds = input.ttlSeconds ?? config.defaultTtlSeconds;
    if (ttlSeconds > config.maxTtlSeconds) {
      return fail({ status: 400, code: "invalid_request", detail: `ttlSeconds must be at most maxTtlSeconds (${config.maxTtlSeconds})` });
    }
    if (shell.callers.takeEarlyCancel(input.leaseId)) {
      return fail({ status: 409, code: "lease_not_active", detail: "the request was cancelled" });
    }
    // Idempotency-Keys belong to the API key that sent them: another key's identical key is another request.
    const key = input.idempotencyKey === undefined ? null : `${input.owner} ${input.idempotencyKey}`;
    const fingerprint = input.fingerprint ?? "";
    const outcome = shell.transition((step) => {
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
        ...(input.priority ? { priority: input.priority } : {}),
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
    if (lease.status === "waiting") return this.shell.callers.wait(lease.id, requestId, replayed);
    if (lease.status === "active") this.shell.callers.held(lease.id, requestId);
    return { ok: true, value: { lease: this.shell.view(lease), replayed } };
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
    const shell = this.shell;
    const leaving = shell.callers.leave(requestId, fail({ status: 409, code: "lease_not_active", detail: "the request was cancelled" }));
    if (leaving.kind === "others") return false;
    if (leaving.kind === "unknown") {
      // Its acquire has not arrived yet (the two calls race), or was answered already.
      if (!shell.serving() || !shell.db.lease(requestId)) shell.callers.cancelEarly(requestId);
      return false;
    }
    if (!shell.serving()) return false;
    return shell.transition((step) => cancelWaiter(step, leaving.leaseId));
  }

  /**
   * The caller of an acquire that was granted had gone before the answer left
   * the Worker: nobody can use the lease (its connect token never left), so it
   * is released (endReason `abandoned`) unless another request holds it too.
   */
  async abandon(requestId: string): Promise<boolean> {
    const shell = this.shell;
    if (!shell.serving()) return false;
    const leaseId = shell.callers.abandon(requestId, (id) => (shell.db.lease(id) ? id : undefined));
    if (leaseId === undefined) return false;
    const lease = shell.transition((step) => abandonLease(step, leaseId));
    return lease?.end_reason === "abandoned";
  }

  async getLease(leaseId: string): Promise<Result<LeaseView>> {
    const lease = this.shell.serving() ? this.db.lease(leaseId) : undefined;
    return lease ? { ok: true, value: this.shell.view(lease) } : fail(notFound("lease"));
  }

  /** A lease's audit trail: every journal row about it, oldest first. */
  async leaseEvents(leaseId: string): Promise<Result<{ lease: string; events: LeaseEvent[] }>> {
    if (!this.shell.serving() || !this.db.lease(leaseId)) return fail(notFound("lease"));
    const events = this.db.journalFor(leaseId).map((row) => ({
      ...eventView(row),
      ...(row.session_row === null ? {} : { sessionRow: row.session_row }),
    }));
    return { ok: true, value: { lease: leaseId, events } };
  }

  async listLeases(options: { status?: LeaseStatus; limit: number; cursor?: number }): Promise<Result<{ leases: LeaseView[]; nextCursor: number | null }>> {
    if (!this.shell.serving()) return fail(notFound("pool"));
    const rows = this.db.listLeases(options.status, options.cursor, options.limit + 1);
    const page = rows.slice(0, options.limit);
    const nextCursor = rows.length > options.limit ? page[page.length - 1]!.seq : null;
    return { ok: true, value: { leases: page.map((row) => this.shell.view(row)), nextCursor } };
  }

  async renew(leaseId: string, ttlSeconds?: number): Promise<Result<LeaseView>> {
    if (!this.shell.serving()) return fail(notFound("lease"));
    const config = this.shell.config();
    const ttl = ttlSeconds ?? config.defaultTtlSeconds;
    if (ttl > config.maxTtlSeconds) {
      return fail({ status: 400, code: "invalid_request", detail: `ttlSeconds must be at most maxTtlSeconds (${config.maxTtlSeconds})` });
    }
    const result = this.shell.transition((step) => renewLease(step, leaseId, ttl * 1000));
    return "failure" in result ? fail(result.failure) : { ok: true, value: this.shell.view(result.lease) };
  }

  async release(leaseId: string): Promise<Result<LeaseView>> {
    if (!this.shell.serving()) return fail(notFound("lease"));
    const lease = this.shell.transition((step) => releaseLease(step, leaseId));
    return lease ? { ok: true, value: this.shell.view(lease) } : fail(notFound("lease"));
  }

  /** Releases the active leases of `owner` (one API key), or all of them without one. */
  async releaseAll(owner?: string): Promise<Result<{ released: number }>> {
    if (!this.shell.serving()) return fail(notFound("pool"));
    return { ok: true, value: { released: this.shell.transition((step) => releaseAll(step, owner)) } };
  }

  // ---- RPC: the pool ------------------------------------------------------------------

  async describe(): Promise<Result<PoolView>> {
    if (!this.shell.serving()) return fail(notFound("pool"));
    return { ok: true, value: poolView(this.shell) };
  }

  /** Creates the pool or changes its config (lifecycle.ts: quota claims, one change at a time). */
  async configure(tenant: string, pool: string, patch: PoolConfigPatch): Promise<Result<PoolView>> {
    const configured = await this.lifecycle.configure(tenant, pool, patch, this.maxSessionsLimit());
    return configured.ok ? { ok: true, value: poolView(this.shell) } : configured;
  }

  /** Resize or reconfigure an existing pool (never creates one). */
  async reconfigure(patch: PoolConfigPatch): Promise<Result<PoolView>> {
    if (!this.shell.serving()) return fail(notFound("pool"));
    return this.configure(this.shell.tenant, this.shell.poolName, patch);
  }

  /** Deletes the pool (lifecycle.ts), refused (409 pool_busy) while anything is in use. */
  async deletePool(asTenant: string, asPool: string): Promise<Result<{ pool: string; deleted: true; closedSessions: number }>> {
    return this.lifecycle.delete(asTenant, asPool);
  }

  /** GET /v1/pools/{pool}/pressure: how loaded the pool is, from its tallies and meta (no scan of its rows). */
  async pressure(): Promise<Result<PoolPressure>> {
    if (!this.shell.serving()) return fail(notFound("pool"));
    return { ok: true, value: pressureView(this.shell) };
  }

  // ---- RPC: the account's capacity governor (src/governor) ------------------------------

  /** The governor asks this pool to give `count` browsers back to the account (its tenant is above its fair share). */
  async shed(count: number): Promise<number> {
    if (!this.shell.serving()) return 0;
    const shedding = this.shell.transition((step) => shed(step, count));
    if (shedding > 0) log("shedding", { pool: this.shell.name(), count: shedding });
    return shedding;
  }

  /** The governor says account capacity came free: a launch waiting for a permit is tried again now. */
  async capacityFreed(): Promise<void> {
    if (this.shell.serving()) this.shell.transition(permitsAvailable);
  }

  /** Everything GET /metrics shows for this pool; undefined if it was never created. */
  async metrics(): Promise<PoolMetrics | undefined> {
    if (!this.shell.serving()) return undefined;
    const config = this.shell.config();
    return {
      tenant: this.shell.tenant,
      pool: this.shell.poolName,
      counts: this.db.counts(),
      maxSessions: config.maxSessions,
      maxWaiters: config.maxWaiters,
      consistent: this.telemetry.lastCheck()?.consistent ?? true,
      breaker: breakerView(this.shell),
      governorUnreachable: this.shell.account.unreachable(),
      counters: this.db.counters(),
      histograms: this.db.histograms(),
      reconciled: this.shell.reconciledTotal(),
    };
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

  /** Compares SQL with the platform's live sessions now (the alarm does every minute while the pool holds anything). */
  async reconcileNow(): Promise<ReconcileReport | undefined> {
    return this.shell.reconcileNow();
  }

  /** The full invariant check, without keeping its report (tests call it after every step). */
  async checkInvariants(): Promise<InvariantReport> {
    if (this.shell.state() === "none") return { consistent: true, violations: [] };
    return checkInvariants(this.db.sql, this.shell.config(), this.shell.clock());
  }

  // ---- RPC: operators' actions (admin token; the pool must exist) ---------------------

  async drain(): Promise<Result<{ waitersTurnedAway: number; pool: PoolView }>> {
    if (!this.shell.serving()) return fail(notFound("pool"));
    const waitersTurnedAway = this.shell.transition(drain);
    log("pool_drained", { pool: this.shell.name(), waitersTurnedAway });
    return { ok: true, value: { waitersTurnedAway, pool: poolView(this.shell) } };
  }

  async resume(): Promise<Result<PoolView>> {
    if (!this.shell.serving()) return fail(notFound("pool"));
    this.shell.transition(resume);
    log("pool_resumed", { pool: this.shell.name() });
    return { ok: true, value: poolView(this.shell) };
  }

  async forceRelease(leaseId: string): Promise<Result<LeaseView>> {
    if (!this.shell.serving()) return fail(notFound("lease"));
    const lease = this.shell.transition((step) => forceRelease(step, leaseId));
    if (lease) log("lease_forced", { pool: this.shell.name(), lease: leaseId });
    return lease ? { ok: true, value: this.shell.view(lease) } : fail(notFound("lease"));
  }

  async purgeIdle(): Promise<Result<{ closed: number; pool: PoolView }>> {
    if (!this.shell.serving()) return fail(notFound("pool"));
    const closed = this.shell.transition(purgeIdle);
    log("idle_purged", { pool: this.shell.name(), closed });
    return { ok: true, value: { closed, pool: poolView(this.shell) } };
  }

  /** Runs the full invariant check now (it reads the whole wait queue) and keeps its report for the pool's view. */
  async checkNow(): Promise<Result<InvariantReport & { checkedAt: string }>> {
    if (!this.shell.serving()) return fail(notFound("pool"));
    const now = this.shell.clock();
    const report = this.telemetry.checkNow(now);
    return { ok: true, value: { ...report, checkedAt: iso(now) } };
  }

  // ---- RPC: CDP connections (connections.ts; the Worker proxies the sockets) ----------

  async openConnection(leaseId: string, tokenHash: string, register: boolean): Promise<Result<ConnectGrant>> {
    return this.connections.open(leaseId, tokenHash, register);
  }

  async connectFailed(connectionId: string): Promise<{ gone: boolean }> {
    return this.connections.failed(connectionId);
  }

  async watchConnection(connectionId: string): Promise<{ reason: string }> {
    return this.connections.watch(connectionId);
  }

  async closeConnection(connectionId: string): Promise<void> {
    return this.connections.close(connectionId);
  }

  // ---- alarm ----------------------------------------------------------------------------

  override async alarm(): Promise<void> {
    if (this.shell.serving()) this.lifecycle.retryOwed();
    await this.shell.alarm();
  }

  private maxSessionsLimit(): number {
    const configured = Number(this.env.MAX_SESSIONS_PER_POOL);
    return Number.isInteger(configured) && configured > 0 ? configured : DEFAULT_CONFIG.maxSessions;
  }
}
