/**
 * Transitions that change the pool itself rather than one lease: its config
 * (`applyConfig`), operators' actions (drain, resume, force-release, purge
 * idle browsers), and the pool's own lifecycle as states of the machine:
 * none → created → deleting → (storage deleted), and back from deleting to
 * created when a deletion is taken back. They decide with machine.ts's
 * building blocks, and run in the shell like every other transition.
 */
import type { Failure } from "../result";
import type { PoolConfig } from "./config";
import {
  closed,
  draining,
  endActive,
  failWaiter,
  keepReconciling,
  notFound,
  pump,
  RECONCILE_INTERVAL_MS,
  startClosing,
  type Step,
} from "./machine";
import type { LeaseRow } from "./schema";
import type { PoolStore } from "./store";

/**
 * Applies a new config. Shrinking below the sessions in use (anything but idle)
 * is refused; idle sessions beyond the new maximum are retired at once.
 */
export function applyConfig(step: Step, next: PoolConfig): Failure | undefined {
  const { db, now } = step;
  const counts = db.counts();
  const busy = counts.launching + counts.leased + counts.resetting + counts.closing;
  if (next.maxSessions < busy) {
    return {
      status: 409,
      code: "pool_busy",
      detail: `maxSessions ${next.maxSessions} is below the ${busy} sessions in use; release leases first or try again later`,
      retryAfter: 1,
    };
  }
  step.config = next;
  let surplus = busy + counts.idle - next.maxSessions;
  while (surplus > 0) {
    const idle = db.oldestIdle()!;
    // Retired without a closing phase so capacity matches the new maximum at
    // once; the close itself is best effort and reconciliation re-closes it.
    closed(step, idle, { end_reason: "resized" });
    step.effects.push({ kind: "close", row: idle.id, sessionId: idle.session_id! });
    surplus -= 1;
    keepReconciling(step);
  }
  db.journal(now, "configured", null, null, { ...next });
  pump(step);
  return undefined;
}

// ---- operators' actions ------------------------------------------------------

/**
 * Stops granting: every waiter is answered 503 `pool_draining` now, new
 * acquires get the same at once, no warm sessions are launched. Active leases
 * run on until they end. Returns how many waiters were turned away.
 */
export function drain(step: Step): number {
  const { db, now } = step;
  db.setMeta("draining", "1");
  db.journal(now, "drained", null, null);
  let failed = 0;
  for (const lease of db.leasesIn("waiting")) {
    failWaiter(step, lease, "drained", draining());
    failed += 1;
  }
  return failed;
}

export function resume(step: Step): void {
  step.db.setMeta("draining", "0");
  step.db.journal(step.now, "resumed", null, null);
  pump(step);
}

/**
 * An operator ends an active lease. Its browser is closed, never reused: the
 * lease's client may still be connected. The lease ends `released` with
 * endReason `forced`. Undefined if there is no such lease.
 */
export function forceRelease(step: Step, leaseId: string): LeaseRow | undefined {
  const { db } = step;
  const lease = db.lease(leaseId);
  if (!lease) return undefined;
  if (lease.status === "waiting") {
    failWaiter(step, lease, "forced", { status: 409, code: "lease_not_active", detail: "the lease was released by an operator while waiting" });
    pump(step);
    return db.lease(leaseId);
  }
  return lease.status === "active" ? endActive(step, lease, "forced") : lease;
}

/** Closes every idle session (suspected bad browsers); the warm target launches fresh ones. Returns how many. */
export function purgeIdle(step: Step): number {
  const idle = step.db.sessionsIn("idle");
  for (const session of idle) startClosing(step, session, "purged");
  pump(step);
  return idle.length;
}

// ---- the pool's own lifecycle ---------------------------------------------------

/** Where the pool is in its life: not created (no tables, or no creation yet), created, or being deleted. */
export type PoolState = "none" | "created" | "deleting";

export function poolState(db: PoolStore): PoolState {
  const state = db.getMeta("lifecycle");
  return state === "created" || state === "deleting" ? state : "none";
}

export interface Creation {
  tenant: string;
  pool: string;
  config: PoolConfig;
  /** The maxSessions the tenant's quota granted for it (recorded, so the pool does not report it again). */
  claimed: number | undefined;
}

/** The pool is created: its identity, its config, and the first reconciliation a minute from now. */
export function createPool(step: Step, creation: Creation): void {
  const { db, now } = step;
  if (poolState(db) !== "none") return;
  db.setMeta("lifecycle", "created");
  db.setMeta("tenant", creation.tenant);
  db.setMeta("pool", creation.pool);
  db.setMeta("created_at", String(now));
  db.setMeta("config", JSON.stringify(creation.config));
  db.setMeta("next_reconcile_at", String(now + RECONCILE_INTERVAL_MS));
  if (creation.claimed !== undefined) db.setMeta("tenant_claimed", String(creation.claimed));
  db.journal(now, "pool_created", null, null, { tenant: creation.tenant, pool: creation.pool });
}

/**
 * The first step of deleting the pool: refused while anything is in use
 * (a lease active or waiting, a session launching, leased or resetting);
 * otherwise the pool is `deleting`: it stops granting and launching (drained)
 * and closes every idle session. The shell deletes the pool's storage once
 * the closes are done and the registry and the tenant have let it go.
 */
export function retire(step: Step): Failure | { closed: number } {
  const { db, now } = step;
  if (poolState(db) !== "created") return notFound("pool");
  const counts = db.counts();
  const inUse = counts.launching + counts.leased + counts.resetting;
  if (inUse + counts.waiting > 0) {
    return {
      status: 409,
      code: "pool_busy",
      detail:
        `the pool has ${counts.leased} leased and ${counts.launching + counts.resetting} starting sessions and ${counts.waiting} waiting callers; ` +
        `release its leases (DELETE /v1/pools/{pool}/leases) and try again`,
      retryAfter: 1,
    };
  }
  db.setMeta("lifecycle", "deleting");
  db.setMeta("draining", "1");
  db.journal(now, "retiring", null, null);
  const idle = db.sessionsIn("idle");
  for (const session of idle) startClosing(step, session, "pool_deleted");
  return { closed: idle.length };
}

/**
 * A deletion is taken back (its unregistering failed, or the object restarted
 * before the storage went): the pool exists again, drained, and registers with
 * the registry and reports its size to the tenant again, since either may have
 * forgotten it already. Delete it again, or resume it.
 */
export function undoDeletion(step: Step): void {
  const { db, now } = step;
  if (poolState(db) !== "deleting") return;
  db.setMeta("lifecycle", "created");
  db.setMeta("pool_registered", "0");
  db.setMeta("tenant_claimed", "none");
  db.journal(now, "deletion_undone", null, null);
}
