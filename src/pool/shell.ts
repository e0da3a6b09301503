/**
 * The pool object's shell around machine.ts: it runs each transition inside
 * one `transactionSync` and hands the effects the transition asked for to
 * effects.ts (which feeds every outcome back here as another transition),
 * keeps the one alarm no later than the earliest deadline in SQL, and runs the
 * alarm's work (reconciliation beside it, never in front of it). It also owns
 * the pool's storage and identity, and the deadlines on its calls to other
 * objects and to the platform.
 *
 * A Durable Object runs one event at a time only until it awaits, so every
 * decision is made synchronously inside a transition; while I/O is awaited
 * other requests run freely, and the transition that records the outcome
 * re-reads the rows it touches. An outcome that arrives after the pool's
 * storage was deleted (or deleted and created anew) is dropped: `epoch`.
 */
import { providerFactory } from "../browser/factory";
import { keepAliveOf, type BrowserProvider } from "../browser/provider";
import { message, withDeadline } from "../deadline";
import { log } from "../log";
import { recorderOf, registryOf } from "../stubs";
import { AlarmSchedule } from "./alarm";
import { Callers } from "./callers";
import { Effects } from "./effects";
import { DEFAULT_CONFIG, type PoolConfig } from "./config";
import { liveOf, RECONCILE_INTERVAL_MS, type Step, tick } from "./machine";
import { AccountLink, GOVERNOR_TIMEOUT_MS } from "./account";
import { shed as shedSessions } from "./permits";
import { poolState, type PoolState } from "./operations";
import { reconcile, type ReconcileReport } from "./reconcile";
import { hasSchema, type LeaseRow, migrate } from "./schema";
import { Signals } from "./signals";
import { PoolStore } from "./store";
import { Telemetry } from "./telemetry";
import { leaseView, type LeaseView } from "./views";

/** How soon a reconciliation whose list failed or timed out is tried again. */
export const RECONCILE_RETRY_MS = 10_000;
/** Idempotency keys are honoured this long (24 h). */
export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;
/** Ended leases and closed sessions are kept this long (as long as an Idempotency-Key), then pruned by the alarm. */
export const HISTORY_RETENTION_MS = IDEMPOTENCY_TTL_MS;
/** How soon the alarm retries telling the registry or the tenant what they have not acknowledged. */
export const REGISTER_RETRY_MS = 10_000;
/** Rows of each kind one alarm prunes at most (the next alarm follows at once while more are due). */
export const PRUNE_BATCH = 1000;
/** Journal rows kept per pool; older history is pruned by the alarm. */
export const JOURNAL_KEEP = 20_000;
/** A connection row whose lease ended and that no Worker reported closed (it crashed) is forgotten after this. */
const STALE_CONNECTION_MS = 5 * 60_000;

/** Deadlines of the pool's I/O that is not an effect with its own (launch, close, reset, check, ping). */
export const IO_TIMEOUTS = {
  /** The platform's session list. */
  list: 10_000,
  /** A probe of one session. */
  probe: 5_000,
  /** A call to the account's registry or the tenant's object. */
  rpc: 10_000,
  /** A call to the account's capacity governor (it is asked before launches, so it is kept short). */
  governor: GOVERNOR_TIMEOUT_MS,
};

export class PoolShell {
  readonly db: PoolStore;
  provider: BrowserProvider;
  /** The time source for every transition; tests replace it to drive deadlines without sleeping. */
  clock: () => number = providerFactory.now ?? (() => Date.now());
  /** keep_alive given to the platform at launch; tests shorten it. */
  keepAliveMs: number;
  /** Deadlines of the pool's own I/O; tests shorten them. */
  readonly timeouts = { ...IO_TIMEOUTS };
  readonly callers = new Callers();
  /** The pool's calls to the account's capacity governor (permits for launches). */
  readonly account: AccountLink;
  readonly telemetry: Telemetry;
  /** Performs the effects transitions ask for (effects.ts). */
  readonly effects: Effects;
  /** Workers proxying a lease's CDP sockets, told when the lease ends. */
  readonly leaseEnded = new Signals<{ reason: string }>();
  /** Resets waiting for a lease's last socket to close. */
  readonly leaseDrained = new Signals<boolean>();
  /** The pool's identity, kept in memory: views and logs never need storage for it. */
  tenant = "";
  poolName = "";
  /** Whether the pool's tables exist: they are made by its creation, so a read of a pool that does not exist writes nothing. */
  private schema = false;
  /** Bumped when the pool's storage is deleted: outcomes of I/O started before are dropped. */
  private epoch = 0;
  private cachedConfig: PoolConfig | undefined;
  private readonly inflight = new Set<Promise<unknown>>();
  private readonly alarms: AlarmSchedule;
  private reconciling: Promise<void> | undefined;

  /** `env` is read at each use: operators' settings (alert thresholds, EVENT_LOGS) are the object's current env. */
  constructor(
    private readonly ctx: DurableObjectState,
    readonly env: () => Env,
  ) {
    this.db = new PoolStore(ctx.storage.sql);
    this.provider = providerFactory.create(env());
    this.keepAliveMs = keepAliveOf(env());
    this.alarms = new AlarmSchedule(ctx.storage, () => this.name());
    this.effects = new Effects(this);
    this.account = new AccountLink({
      env,
      tenant: () => this.tenant,
      pool: () => this.poolName,
      clock: () => this.clock(),
      live: () => liveOf(this.db.counts()),
      timeoutMs: () => this.timeouts.governor,
    });
    this.telemetry = new Telemetry({
      env,
      db: this.db,
      clock: () => this.clock(),
      tenant: () => this.tenant,
      pool: () => this.poolName,
      config: () => this.config(),
      atomically: (fn) => this.atomically(fn),
      track: (promise) => this.track(promise),
    });
  }

  // ---- the pool's storage and identity ---------------------------------------

  /** Loads a pool that has tables (after a restart): migrates them and reads its identity. False if it has none. */
  open(): boolean {
    if (!hasSchema(this.db.sql)) return false;
    this.openTables();
    this.tenant = this.db.getMeta("tenant") ?? "";
    this.poolName = this.db.getMeta("pool") ?? "";
    return true;
  }

  /** Makes (or upgrades) the pool's tables: at its creation, or when a pool that has them is loaded. */
  openTables(): void {
    migrate(this.ctx.storage);
    this.schema = true;
  }

  /** Deletes the pool's storage; nothing started before writes or arms anything afterwards. */
  async dropStorage(): Promise<void> {
    this.epoch += 1;
    this.alarms.cancel();
    await this.ctx.storage.deleteAlarm();
    await this.ctx.storage.deleteAll();
    this.db.forgetCached();
    this.schema = false;
    this.cachedConfig = undefined;
    this.tenant = "";
    this.poolName = "";
  }

  /** The pool's place in its life (machine.ts): none before its creation (and without tables). */
  state(): PoolState {
    return this.schema ? poolState(this.db) : "none";
  }

  /** Created and not being deleted: the pool serves requests. */
  serving(): boolean {
    return this.state() === "created";
  }

  /** "tenant/pool", for logs. */
  name(): string {
    return `${this.tenant}/${this.poolName}`;
  }

  config(): PoolConfig {
    if (!this.cachedConfig) {
      const stored = this.schema ? this.db.getMeta("config") : undefined;
      this.cachedConfig = stored ? { ...DEFAULT_CONFIG, ...(JSON.parse(stored) as Partial<PoolConfig>) } : { ...DEFAULT_CONFIG };
    }
    return this.cachedConfig;
  }

  /** The config changed in storage (a creation or a config change committed). */
  configChanged(config?: PoolConfig): void {
    this.cachedConfig = config;
  }

  view(row: LeaseRow): LeaseView {
    return leaseView(row, this.poolName);
  }

  // ---- running transitions -----------------------------------------------------

  /** Runs a transition atomically, performs its effects, and keeps the alarm in step. */
  transition<T>(fn: (step: Step) => T): T {
    const step = this.newStep();
    const result = this.atomically(() => fn(step));
    try {
      this.effects.perform(step.effects);
    } finally {
      this.arm(step.now);
      this.telemetry.watchLaunchFailures();
    }
    return result;
  }

  /**
   * Runs a transition that asks for no I/O and sets no deadline (a pool's
   * creation) atomically, without touching the alarm: the pool's registration
   * is still on its way, and arming now would only add an alarm for its retry.
   */
  record(fn: (step: Step) => void): void {
    const step = this.newStep();
    this.atomically(() => fn(step));
    if (step.effects.length > 0) throw new Error(`a recorded transition asked for I/O (${step.effects.map((e) => e.kind).join(", ")})`);
  }

  /** A step for reading only (views): what a transition would see now. Nothing may be written through it. */
  peek(): Step {
    return this.newStep();
  }

  /** What a transition runs with: the store, the time now, the config, and no effects yet. */
  private newStep(): Step {
    return { db: this.db, now: this.clock(), config: this.config(), keepAliveMs: this.keepAliveMs, effects: [] };
  }

  /** One SQLite transaction; if it throws, everything it wrote is rolled back, in SQL and in the store's cache. */
  atomically<T>(fn: () => T): T {
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

  /** The generation of the pool's storage I/O starts in: `current(epoch)` later says whether its outcome may still be recorded. */
  currentEpoch(): number {
    return this.epoch;
  }

  /** Whether I/O started at `epoch` may still record its outcome: the storage it was started for still exists. */
  current(epoch: number): boolean {
    return epoch === this.epoch && this.schema;
  }

  /** Records an effect's outcome, unless the pool's storage was deleted since the effect started. */
  after(epoch: number, fn: (step: Step) => void): void {
    if (!this.current(epoch)) {
      log("late_outcome_dropped", { pool: this.name() });
      return;
    }
    this.transition(fn);
  }

  // ---- I/O helpers -------------------------------------------------------------

  /** Asks the platform whether a session still runs, with a deadline (rejects when it does not say). */
  probe(sessionId: string): Promise<boolean> {
    return withDeadline((async () => this.provider.probe(sessionId))(), this.timeouts.probe, "a probe of the session");
  }

  /** A call to another object (the registry, the tenant), with a deadline. */
  rpc<T>(call: () => Promise<T>, what: string): Promise<T> {
    return withDeadline((async () => call())(), this.timeouts.rpc, what);
  }

  /** Keeps I/O the pool started alive with the object, and logs how it failed (never touching storage). */
  track(promise: Promise<unknown>): void {
    const tracked = promise
      .catch((error) => log("effect_failed", { pool: this.name(), error: message(error) }))
      .finally(() => this.inflight.delete(tracked));
    this.inflight.add(tracked);
  }

  /** Resolves when no effect is in flight any more. */
  async effectsDone(): Promise<void> {
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
  }

  /** Resolves when the reconciliation in flight, if any, has finished. */
  async reconciliationDone(): Promise<void> {
    await this.reconciling;
  }

  /** The account's registry (a fresh stub per call). */
  registry() {
    return registryOf(this.env());
  }

  /** The recorder of one of this pool's leases (src/recorder; a fresh stub per call). */
  recorder(leaseId: string) {
    return recorderOf(this.env(), this.tenant, this.poolName, leaseId);
  }

  // ---- the alarm ----------------------------------------------------------------

  /** Makes sure the alarm fires no later than the earliest deadline in SQL (see AlarmSchedule: never trusted from memory). */
  arm(now: number): void {
    if (this.state() === "none") return;
    const next = this.nextDeadline(now);
    if (next !== null) void this.alarms.request(next);
  }

  private nextDeadline(now: number): number | null {
    const { earliest, idempotency, history, unconnected, registryOwed } = this.db.deadlines();
    const config = this.config();
    const candidates = earliest === null ? [] : [earliest];
    for (const key of ["launch_blocked_until", "warm_blocked_until"]) {
      const blocked = Number(this.db.getMeta(key) ?? 0);
      if (blocked > now) candidates.push(blocked);
    }
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
   * The alarm's own work: everything due (tick), history pruned, health
   * watched, then re-armed in a `finally`, so a step that throws never leaves
   * the pool without its next alarm. Reconciliation, whose list can hang, is
   * started beside it (with its own deadline), never awaited in front of it.
   * (Registering the pool and reporting its size to the tenant are the
   * lifecycle's, run by the object's alarm beside this.)
   */
  async alarm(): Promise<void> {
    try {
      if (!this.serving()) return;
      this.transition(tick);
      const now = this.clock();
      if (Number(this.db.getMeta("next_reconcile_at") ?? 0) <= now) {
        this.reconcileNow().catch((error) => log("reconcile_failed", { pool: this.name(), error: message(error) }));
      }
      const pruned = this.atomically(() => {
        this.db.purgeIdempotentBefore(now - IDEMPOTENCY_TTL_MS);
        this.db.pruneJournal(JOURNAL_KEEP);
        this.db.pruneConnections(now - STALE_CONNECTION_MS);
        this.db.pruneViewers(PRUNE_BATCH);
        return this.db.pruneHistory(now - HISTORY_RETENTION_MS, PRUNE_BATCH);
      });
      if (pruned.leases || pruned.sessions) log("history_pruned", { pool: this.name(), ...pruned });
      this.telemetry.watchHealth(now);
    } finally {
      if (this.serving()) await this.alarms.rearm(this.nextDeadline(this.clock()));
    }
  }

  // ---- reconciliation ------------------------------------------------------------

  /**
   * Compares SQL with the platform's live sessions; one at a time. The list has
   * a deadline; whatever happens to it, the next one is already scheduled (a
   * full interval later, or sooner after a failure), so a list that hangs can
   * neither stall the alarm nor make it fire in a loop. Answers once the
   * suspects it found have been probed.
   */
  async reconcileNow(): Promise<ReconcileReport | undefined> {
    if (!this.serving()) return undefined;
    this.reconciling ??= this.reconcileOnce().finally(() => {
      this.reconciling = undefined;
    });
    await this.reconciling;
    const last = this.serving() ? this.db.getMeta("last_reconcile") : undefined;
    return last ? (JSON.parse(last) as ReconcileReport) : undefined;
  }

  private async reconcileOnce(): Promise<void> {
    const epoch = this.epoch;
    const listedAt = this.clock();
    this.atomically(() => this.db.setMeta("next_reconcile_at", String(listedAt + RECONCILE_INTERVAL_MS)));
    this.arm(listedAt);
    this.track(this.syncPermits(epoch));
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
    await this.effects.probesDone();
    if (!this.current(epoch)) return;
    report.vanished = this.reconciledTotal().vanished - vanishedBefore;
    this.atomically(() => this.db.setMeta("last_reconcile", JSON.stringify({ at: listedAt, ...report })));
    if (report.vanished || report.reclosed || report.suspect || report.untrusted) log("reconciled", { pool: this.name(), ...report });
    if (report.vanished) {
      this.telemetry.alert("capacity_reclaimed", `reconciliation freed ${report.vanished} session(s) whose browsers were gone`, { ...report });
    }
  }

  /**
   * Tells the account's governor every permit the pool holds (so it renews
   * them, adopts those launched while it was unreachable, and drops what a lost
   * release left behind), and gives back the browsers it asks for. Beside
   * reconciliation, at its pace (every RECONCILE_INTERVAL_MS while the pool
   * holds anything); the governor's permits outlive a few missed rounds.
   */
  private async syncPermits(epoch: number): Promise<void> {
    const shed = await this.account.sync(this.db.liveRows());
    if (shed > 0 && this.current(epoch) && this.serving()) this.transition((step) => shedSessions(step, shed));
  }

  /** Reconciliation's fixes since the pool was created. */
  reconciledTotal(): { vanished: number; reclosed: number } {
    return { vanished: Number(this.db.getMeta("vanished_total") ?? 0), reclosed: Number(this.db.getMeta("reclosed_total") ?? 0) };
  }
}
