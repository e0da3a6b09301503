/**
 * Transitions on the account's capacity (src/governor, called through
 * account.ts): a launch the governor gave no permit for, capacity coming free
 * in the account, and the governor asking this pool to give browsers back so
 * a starved tenant can launch. They decide with the machine's building blocks
 * (machine.ts), as operations.ts and reconcile.ts do; nothing imports back.
 */
import type { Failure } from "../result";
import { failWaiter, pump, startClosing, type Step } from "./machine";

/** How long warm launches wait after the governor refused one for want of room (unless told sooner that room came free). */
export const WARM_RETRY_MS = 15_000;

/**
 * The account's governor gave no permit for a reserved launch (the account is
 * full, its launch rate is spent, or the tenant is above its fair share): the
 * row is removed (no browser was started), launches pause for `retryAfterMs`
 * (or until the governor says capacity came free), and the caller it was for
 * keeps waiting, within its waitSeconds. Only the account's circuit breaker
 * answers that caller at once.
 */
export function launchDeferred(step: Step, row: number, why: { reason: string; retryAfterMs: number; failure?: Failure }): void {
  const { db, now } = step;
  const session = db.session(row);
  if (session?.state !== "launching") return;
  db.deleteSession(row);
  if (session.lease_id === null && (why.reason === "account_full" || why.reason === "over_share")) {
    // A warm launch nobody waits for: only warm launches pause, and for longer, so a
    // pool above its share does not ask every second; callers' launches still ask.
    db.setMeta("warm_blocked_until", String(now + Math.max(WARM_RETRY_MS, why.retryAfterMs)));
  } else {
    const until = now + Math.max(100, why.retryAfterMs);
    if (Number(db.getMeta("launch_blocked_until") ?? 0) < until) db.setMeta("launch_blocked_until", String(until));
    db.setMeta("launch_blocked_reason", why.reason);
  }
  db.journal(now, "launch_deferred", session.lease_id, null, { reason: why.reason, retryAfterMs: why.retryAfterMs });
  db.count("launch_deferred", { reason: why.reason });
  const owner = session.lease_id ? db.lease(session.lease_id) : undefined;
  if (owner?.status === "waiting") {
    // The launch bounded this caller's wait; now its own waitSeconds does again.
    const waitUntil = owner.created_at + owner.wait_ms;
    if (why.failure) failWaiter(step, owner, "launch_failed", why.failure);
    else if (waitUntil <= now) {
      failWaiter(step, owner, "launch_failed", {
        status: 503,
        code: "browser_unavailable",
        detail: `no browser may start now (${why.reason.replaceAll("_", " ")}), and waitSeconds did not allow waiting`,
        retryAfter: Math.max(1, Math.ceil(why.retryAfterMs / 1000)),
      });
    } else if (owner.wait_deadline !== waitUntil) db.updateLease(owner.id, { wait_deadline: waitUntil });
  }
  pump(step);
}

/** The governor says account capacity came free: a pause for want of a permit ends now. */
export function permitsAvailable(step: Step): void {
  const { db, now } = step;
  const reason = db.getMeta("launch_blocked_reason");
  if ((reason === "account_full" || reason === "over_share") && Number(db.getMeta("launch_blocked_until") ?? 0) > now) {
    db.setMeta("launch_blocked_until", "0");
  }
  if (Number(db.getMeta("warm_blocked_until") ?? 0) > now) db.setMeta("warm_blocked_until", "0");
  pump(step);
}

/**
 * The governor asks this pool to give browsers back to the account (its
 * tenant is above its fair share while another is starved): up to `count` idle
 * sessions are closed now, and the rest of the debt is paid by closing, rather
 * than reusing, the next sessions released. Returns how many will be closed.
 */
export function shed(step: Step, count: number): number {
  const { db } = step;
  let owed = Math.max(0, Math.floor(count));
  const asked = owed;
  for (const session of db.sessionsIn("idle", owed)) {
    startClosing(step, session, "shed");
    owed -= 1;
  }
  db.setMeta("shed_owed", String(owed));
  if (asked > 0) db.journal(step.now, "shed", null, null, { asked, closedIdle: asked - owed });
  return asked;
}
