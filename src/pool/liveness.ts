/**
 * Whether the pool's browsers are still alive: what its keep-alive pings
 * answer, what a probe of the platform answers, and the two steps every
 * observation of a browser's death goes through (suspect, then vanish once
 * confirmed). Transitions of the machine, deciding with its building blocks
 * (machine.ts), as reconcile.ts does; nothing imports back.
 */
import type { SessionRow } from "./schema";
import { closed, pump, startClosing, type Step } from "./machine";

/** A keep-alive ping answered: the browser is alive and the platform saw activity. */
export function pingSucceeded(step: Step, row: number): void {
  const session = step.db.session(row);
  if (session?.state === "idle" || session?.state === "leased") step.db.updateSession(row, { alive_at: step.now, missed_at: null });
}

/**
 * A keep-alive ping failed. An idle session is closed rather than handed out
 * (closing an idle browser costs only a launch). A leased one is only suspect:
 * a ping can fail for reasons that are not the browser's death (a platform
 * that refused a second connection), so a direct probe decides.
 */
export function pingFailed(step: Step, row: number, message: string): void {
  const session = step.db.session(row);
  if (session?.state === "idle") {
    startClosing(step, session, "ping_failed", { error: message });
    pump(step);
  } else if (session?.state === "leased") {
    suspect(step, session, "ping_failed");
  }
}

/**
 * The platform answered whether a suspect session is still running (a probe
 * never connects to the browser). Gone: its slot is freed and its lease, if
 * any, fails with browser_gone. Alive: it is no longer suspect.
 */
export function probeAnswered(step: Step, row: number, alive: boolean): void {
  const session = step.db.session(row);
  if (!session || !TRACKED.has(session.state)) return;
  if (alive) {
    step.db.updateSession(row, { missed_at: null, alive_at: step.now });
    return;
  }
  vanish(step, session);
  pump(step);
}

/** Session states whose browser the pool tracks as running. */
const TRACKED = new Set<SessionRow["state"]>(["idle", "leased", "resetting", "closing"]);

/**
 * One observation says a tracked session may be gone (missing from a list, a
 * failed ping of a leased session): it keeps its slot and its lease, and the
 * platform is asked directly. `since` is when it was first missed.
 */
export function suspect(step: Step, session: SessionRow, why: string, since = step.now): void {
  const { db, now } = step;
  if (session.missed_at === null) db.updateSession(session.id, { missed_at: since });
  db.journal(now, "suspect", session.state === "leased" ? session.lease_id : null, session.id, { sessionId: session.session_id, why });
  step.effects.push({ kind: "probe", row: session.id, sessionId: session.session_id! });
}

/**
 * A tracked session is confirmed gone: its slot is freed at once and its
 * lease, if any, fails with browser_gone (its CDP sockets are closed).
 */
export function vanish(step: Step, session: SessionRow): void {
  const { db, now } = step;
  if (session.state === "leased" && session.lease_id) {
    const lease = db.lease(session.lease_id);
    if (lease?.status === "active") {
      db.updateLease(lease.id, { status: "failed", ended_at: now, end_reason: "browser_gone" });
      db.journal(now, "lease_failed", lease.id, session.id, { reason: "browser_gone" });
      db.observe("lease_duration_seconds", { reason: "failed" }, (now - (lease.granted_at ?? now)) / 1000);
      step.effects.push({ kind: "disconnect", leaseId: lease.id, reason: "browser_gone" });
      if (lease.record) step.effects.push({ kind: "stopRecording", leaseId: lease.id });
    }
  }
  closed(step, session, { end_reason: session.state === "closing" ? session.end_reason : "vanished" });
  db.journal(now, "reconciled_vanished", session.state === "leased" ? session.lease_id : null, session.id, {
    sessionId: session.session_id,
    was: session.state,
  });
  db.setMeta("vanished_total", String(Number(db.getMeta("vanished_total") ?? 0) + 1));
}
