/**
 * A pool's life with the objects around it: its creation (after the tenant's
 * quota granted its maxSessions), config changes (growth claimed first, a
 * shrink reported after), its registration with the account's registry (so
 * GET /v1/pools lists it), and its deletion. The states are machine.ts's
 * (created → deleting → deleted, and back); what is here is the I/O with the
 * tenant's object and the registry, each call with a deadline.
 *
 * Creation, config changes, deletion and size reports run one at a time
 * (`serially`), so the size the tenant object records is always the size of
 * the last change: a report of an old size cannot land after a growth was
 * claimed, and a change queued behind a deletion cannot re-create the pool.
 */
import { message, withDeadline } from "../deadline";
import { deleteRecordings } from "../recorder/store";
import { log } from "../log";
import { fail, type Failure, type Result } from "../result";
import { registryOf, tenantOf } from "../stubs";
import { DEFAULT_CONFIG, mergeConfig, type PoolConfigPatch } from "./config";
import { notFound, recover } from "./machine";
import { applyConfig, createPool, retire, undoDeletion } from "./operations";
import type { PoolShell } from "./shell";

/** One pass of deleting a deleted pool's recordings may take this long. */
const RECORDINGS_DELETE_TIMEOUT_MS = 30_000;

/**
 * An acquire or config change while the pool is being deleted: answered at
 * once rather than held until the deletion's closes finish; retried, it
 * creates the pool anew.
 */
export const beingDeleted = (): Failure => ({
  status: 409,
  code: "pool_busy",
  detail: "the pool is being deleted; retry in a moment to create it anew",
  retryAfter: 1,
});

export class Lifecycle {
  /** The chain creation, config changes, deletion and size reports run on, one at a time. */
  private chain: Promise<unknown> = Promise.resolve();
  /** Tasks queued or running on that chain. */
  private turns = 0;
  private registering: Promise<void> | undefined;
  /** A claim granted before the pool's tables existed; recorded by its creation. */
  private claimedBeforeCreation: number | undefined;

  constructor(
    private readonly shell: PoolShell,
    private readonly env: () => Env,
  ) {}

  /**
   * After a restart: a deletion that did not finish is taken back, and a pool
   * that exists registers and reports its size again, and recovers (waiters
   * and launches lost with the old instance end; resets and closes restart).
   */
  restore(): void {
    const shell = this.shell;
    if (shell.state() === "deleting") shell.transition(undoDeletion);
    if (!shell.serving()) return;
    shell.track(this.register());
    shell.track(this.reportSize());
    shell.transition(recover);
    // Right after a restart, compare with the platform (a lost launch may have left a browser behind).
    shell.atomically(() => shell.db.setMeta("next_reconcile_at", String(shell.clock())));
    shell.arm(shell.clock());
  }

  /** The alarm's share: registration and size reports still owed are retried. */
  retryOwed(): void {
    this.shell.track(this.register());
    this.shell.track(this.reportSize());
  }

  /** The first acquire of a pool that does not exist creates it with the default config, if the tenant's quota allows it. */
  async createForAcquire(tenant: string, pool: string): Promise<Result<null>> {
    return this.serially(async () => {
      if (this.shell.serving()) return { ok: true as const, value: null };
      const claimed = await this.claim(tenant, pool, DEFAULT_CONFIG.maxSessions);
      if (claimed.ok) this.create(tenant, pool);
      return claimed;
    });
  }

  /**
   * Creates the pool or changes its config. A pool that is created or grows
   * first claims its new maxSessions from the tenant's quota; one that shrinks
   * tells the tenant after it has shrunk. A change to a pool that existed when
   * it arrived, and was deleted while it waited its turn, is refused (404): it
   * must not create the pool anew. Answers the applied config's failure, if any.
   */
  async configure(tenant: string, pool: string, patch: PoolConfigPatch, maxSessionsLimit: number): Promise<Result<null>> {
    const shell = this.shell;
    if (shell.state() === "deleting") return fail(beingDeleted());
    const existed = shell.serving();
    return this.serially(async () => {
      if (existed && !shell.serving()) return fail({ status: 404, code: "not_found", detail: "the pool was deleted while this change waited its turn" });
      const merged = mergeConfig(shell.config(), patch, maxSessionsLimit);
      if ("problem" in merged) {
        return fail({ status: 400, code: "invalid_request", detail: `${merged.problem.field}: ${merged.problem.detail}` });
      }
      const before = shell.serving() ? shell.config().maxSessions : null;
      const after = merged.config.maxSessions;
      if (before === null || after > before) {
        const claimed = await this.claim(tenant, pool, after);
        if (!claimed.ok) return claimed;
      }
      this.create(tenant, pool);
      // A pool created by this call is listed by GET /v1/pools once the call has answered.
      await this.register();
      const failure = shell.transition((step) => {
        const problem = applyConfig(step, merged.config);
        if (!problem) step.db.setMeta("config", JSON.stringify(merged.config));
        return problem;
      });
      if (!failure) shell.configChanged(merged.config);
      // Tell the tenant the size the pool has now: smaller after a shrink, or
      // unchanged after a failed change whose growth was already claimed.
      await this.reportSizeNow();
      return failure ? fail(failure) : { ok: true, value: null };
    });
  }

  /**
   * Deletes the pool, refused (409 pool_busy) while anything is in use. Its
   * idle browsers are closed, the registry and the tenant let it go (its share
   * of the tenant's quota is free again), and its storage is deleted: the next
   * acquire or PUT of the name creates a new, empty pool. `asTenant`/`asPool`
   * are the names the caller addressed (a pool object that was never created
   * does not know its own).
   */
  async delete(asTenant: string, asPool: string): Promise<Result<{ pool: string; deleted: true; closedSessions: number }>> {
    const shell = this.shell;
    return this.serially(async () => {
      if (!shell.serving()) {
        // Nothing to delete; but a creation that failed after the tenant granted
        // its claim (the answer lost, the object gone before it recorded the
        // pool) left that claim counted. No creation of this name can be under
        // way here (they run in turn), so the claim, if any, is stale: free it.
        await shell.rpc(() => tenantOf(this.env(), asTenant).releasePool(asPool), "the tenant's object").catch(() => undefined);
        return fail(notFound("pool"));
      }
      const retired = shell.transition(retire);
      if ("status" in retired) return fail(retired);
      // The idle browsers' closes, and any registration still on its way (each has a deadline).
      await shell.effectsDone();
      const { tenant, poolName } = shell;
      try {
        await shell.rpc(() => registryOf(this.env()).untrackPool(tenant, poolName), "the session registry");
        await shell.rpc(() => tenantOf(this.env(), tenant).releasePool(poolName), "the tenant's object");
      } catch (error) {
        // Nothing is deleted: the pool stays, drained, and the alarm registers it
        // and reports its size again. The caller may retry.
        log("pool_delete_failed", { pool: shell.name(), error: message(error) });
        shell.transition(undoDeletion);
        return fail({ status: 503, code: "unavailable", detail: "the pool could not be unregistered; nothing was deleted (it stays drained): retry", retryAfter: 1 });
      }
      await shell.dropStorage();
      // Its recordings go with it, in the background (a recorder still finishing
      // one deletes it at its own retention alarm).
      shell.track(this.deleteRecordings(tenant, poolName));
      log("pool_deleted", { pool: `${tenant}/${poolName}`, closedSessions: retired.closed });
      return { ok: true, value: { pool: poolName, deleted: true as const, closedSessions: retired.closed } };
    });
  }

  /** Deletes a deleted pool's recordings from R2, pass after pass (each bounded), until none is left. */
  private async deleteRecordings(tenant: string, pool: string): Promise<void> {
    const bucket = this.env().RECORDINGS;
    let total = 0;
    for (let pass = 0; pass < 100; pass += 1) {
      const deleted = await withDeadline(deleteRecordings(bucket, tenant, pool), RECORDINGS_DELETE_TIMEOUT_MS, "deleting the pool's recordings");
      total += deleted;
      if (deleted === 0) break;
    }
    if (total > 0) log("recordings_deleted", { pool: `${tenant}/${pool}`, objects: total });
  }

  /** Records the pool's creation (after the tenant's quota granted it). Its tables are made here. */
  private create(tenant: string, pool: string): void {
    const shell = this.shell;
    if (shell.serving()) return;
    shell.openTables();
    shell.tenant = tenant;
    shell.poolName = pool;
    const claimed = this.claimedBeforeCreation;
    this.claimedBeforeCreation = undefined;
    shell.record((step) => createPool(step, { tenant, pool, config: { ...DEFAULT_CONFIG }, claimed }));
    shell.configChanged();
    shell.track(this.register());
  }

  /**
   * Makes the account's registry list this pool (GET /v1/pools). Retried by
   * the constructor and the alarm (due within REGISTER_RETRY_MS while it is
   * not done) until the registry has acknowledged it. Never throws.
   */
  private register(): Promise<void> {
    const shell = this.shell;
    if (!shell.serving() || shell.db.getMeta("pool_registered") === "1") return Promise.resolve();
    const epoch = shell.currentEpoch();
    this.registering ??= (async () => {
      try {
        await shell.rpc(() => registryOf(this.env()).trackPool(shell.tenant, shell.poolName, Number(shell.db.getMeta("created_at"))), "the session registry");
        if (shell.current(epoch)) shell.atomically(() => shell.db.setMeta("pool_registered", "1"));
      } catch (error) {
        log("pool_register_failed", { pool: shell.name(), error: message(error) });
      } finally {
        this.registering = undefined;
      }
    })();
    return this.registering;
  }

  /**
   * Asks the tenant's quota for `maxSessions` of capacity for this pool.
   * Answers 503 if the tenant object cannot be reached in time: nothing was
   * changed here, and the caller may retry (a claim is absolute, so a retry
   * never counts twice).
   */
  private async claim(tenant: string, pool: string, maxSessions: number): Promise<Result<null>> {
    const shell = this.shell;
    try {
      const claimed: Result<null> = await shell.rpc(async () => {
        const answer = await tenantOf(this.env(), tenant).claimPool(tenant, pool, maxSessions);
        return answer.ok ? { ok: true as const, value: null } : { ok: false as const, failure: answer.failure };
      }, "the tenant's object");
      if (claimed.ok && shell.serving()) shell.atomically(() => shell.db.setMeta("tenant_claimed", String(maxSessions)));
      else if (claimed.ok) this.claimedBeforeCreation = maxSessions;
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
   * which errs on the side of refusing. Runs in turn with config changes.
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
    const shell = this.shell;
    if (!shell.serving()) return;
    const size = shell.config().maxSessions;
    if (shell.db.getMeta("tenant_claimed") === String(size)) return;
    const epoch = shell.currentEpoch();
    try {
      await shell.rpc(() => tenantOf(this.env(), shell.tenant).reportPool(shell.tenant, shell.poolName, size), "the tenant's object");
      if (shell.current(epoch) && shell.config().maxSessions === size) shell.atomically(() => shell.db.setMeta("tenant_claimed", String(size)));
    } catch (error) {
      log("quota_report_failed", { pool: shell.name(), error: message(error) });
    }
  }

  /** Runs `task` after every earlier one has finished. */
  private serially<T>(task: () => Promise<T>): Promise<T> {
    this.turns += 1;
    const run = this.chain.then(task).finally(() => {
      this.turns -= 1;
    });
    this.chain = run.catch(() => undefined);
    return run;
  }
}
