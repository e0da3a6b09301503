/**
 * PoolObject: the Durable Object that owns one pool (one per tenant and pool
 * name), and its RPC surface: what the Worker may ask of a pool. Each method
 * checks what only the object can check, then runs a transition of
 * machine.ts through the shell (shell.ts; a request for a lease, through
 * acquire.ts), or a step of the pool's life with the objects around it
 * (lifecycle.ts), or of its CDP sockets (connections.ts), and answers with a
 * view (views.ts).
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
import { acquireLease } from "./acquire";
import { DEFAULT_CONFIG, type PoolConfigPatch } from "./config";
import { Connections } from "./connections";
import { type ViewerGrant, Viewers } from "./viewers";
import { checkInvariants, type InvariantReport } from "./invariants";
import { Lifecycle } from "./lifecycle";
import {
  abandonLease,
  cancelWaiter,
  notFound,
  releaseAll,
  releaseLease,
  renewLease,
} from "./machine";
import { drain, forceRelease, purgeIdle, resume } from "./operations";
import { permitsAvailable, shed } from "./permits";
import { type ReconcileReport } from "./reconcile";
import type { LeaseStatus } from "./schema";
import { PoolShell } from "./shell";
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
  poolDashboard,
  poolMetrics,
  poolView,
  pressureView,
} from "./views";

export type { AcquireInput, AcquireView, ConnectGrant, LeaseEvent, LeaseView, PoolDashboard, PoolMetrics, PoolPressure, PoolView } from "./views";

export class PoolObject extends DurableObject<Env> {
  private readonly shell: PoolShell;
  private readonly lifecycle: Lifecycle;
  private readonly connections: Connections;
  private readonly viewers: Viewers;
  /** The shell's store and telemetry, named here for tests that look inside the object. */
  private readonly db: PoolStore;
  private readonly telemetry: Telemetry;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.shell = new PoolShell(ctx, () => this.env);
    this.lifecycle = new Lifecycle(this.shell, () => this.env);
    this.connections = new Connections(this.shell);
    this.viewers = new Viewers(this.shell);
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

  /** A lease for the caller (acquire.ts: retries, Idempotency-Key replays, the wait). */
  async acquire(input: AcquireInput): Promise<Result<AcquireView>> {
    return acquireLease(this.shell, this.lifecycle, input);
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

  /** Newest first; `cursor` (a page's nextCursor) or `afterLease` (the last lease id of a page, as Steel's cursorId) continues a listing. */
  async listLeases(options: { status?: LeaseStatus; limit: number; cursor?: number; afterLease?: string }): Promise<Result<{ leases: LeaseView[]; nextCursor: number | null }>> {
    if (!this.shell.serving()) return fail(notFound("pool"));
    const after = options.afterLease === undefined ? options.cursor : (this.db.lease(options.afterLease)?.seq ?? 0);
    const rows = this.db.listLeases(options.status, after, options.limit + 1);
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
    return this.shell.serving() ? poolMetrics(this.shell) : undefined;
  }

  /** What the operators' dashboard shows of this pool: its metrics, the head of its queue, its latest events. */
  async dashboard(): Promise<PoolDashboard | undefined> {
    return this.shell.serving() ? poolDashboard(this.shell) : undefined;
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

  // ---- RPC: live viewers (viewers.ts; the Worker streams the screencast) ----------------

  /** A new viewer URL's token for the lease (POST …/viewer). */
  async mintViewer(leaseId: string, tokenHash: string, interactive: boolean): Promise<Result<{ interactive: boolean; expiresAt: string | null }>> {
    const minted = this.viewers.mint(leaseId, tokenHash, interactive);
    return minted.ok ? { ok: true, value: { interactive, expiresAt: minted.value.expiresAt === null ? null : iso(minted.value.expiresAt) } } : minted;
  }

  /** Checks a viewer token (the page) or registers a viewer socket (the stream); watch and close it as a CDP connection. */
  async openViewer(leaseId: string, tokenHash: string, register: boolean): Promise<Result<ViewerGrant>> {
    return this.viewers.open(leaseId, tokenHash, register);
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
