/**
 * Reconciliation as a transition: the pool's tracked sessions judged against
 * the platform's list of live sessions. The list lags and omits, and covers the
 * whole account, so it never destroys on its own: what it misses is suspect
 * and probed (machine.ts's `suspect`), and only a probe or a second miss frees
 * a slot (`vanish`). The shell takes the list (with a deadline) and runs this.
 */
import { suspect, vanish } from "./liveness";
import { pump, type Step } from "./machine";

export interface ReconcileReport {
  /** Tracked sessions confirmed gone (missing from two lists, or probed): their capacity was freed. */
  vanished: number;
  /** Tracked sessions missing from this list for the first time: suspect, probed, still holding their slot. */
  suspect: number;
  /** Sessions this pool ended that the platform still runs: closed again. */
  reclosed: number;
  /** Live platform sessions this pool never launched (other pools' or other Workers'). */
  unknown: number;
  /** The list was empty while this pool tracks live sessions: nothing was judged from it. */
  untrusted: boolean;
}

/** How many sessions one untrusted list sends probes to. */
const MAX_PROBES = 10;

/**
 * Compares SQL with the platform's list of live sessions, taken at `listedAt`.
 * The list can lag or be partial, so it never destroys on its own: a session
 * missing once is suspect (it keeps its slot and its lease) and is probed; it
 * is gone once a probe says so or a later list misses it again. An empty list
 * while sessions are tracked is not trusted at all (the sessions are probed).
 * Only sessions launched before the list was taken are judged, so a launch that
 * completes while the list is in flight is never mistaken for a vanished one.
 */
export function reconcile(step: Step, live: ReadonlySet<string>, listedAt: number): ReconcileReport {
  const { db, now } = step;
  const report: ReconcileReport = { vanished: 0, suspect: 0, reclosed: 0, unknown: 0, untrusted: false };
  const judged = db.trackedAlive().filter((session) => (session.launched_at ?? now) < listedAt);
  if (live.size === 0 && judged.length > 0) {
    report.untrusted = true;
    db.journal(now, "reconcile_untrusted", null, null, { tracked: judged.length });
    for (const session of judged.slice(0, MAX_PROBES)) step.effects.push({ kind: "probe", row: session.id, sessionId: session.session_id! });
    return report;
  }
  for (const session of judged) {
    if (live.has(session.session_id!)) {
      if (session.missed_at !== null) db.updateSession(session.id, { missed_at: null });
    } else if (session.missed_at !== null && session.missed_at < listedAt) {
      vanish(step, session);
      report.vanished += 1;
    } else if (session.missed_at === null) {
      suspect(step, session, "unlisted", listedAt);
      report.suspect += 1;
    }
  }
  for (const sessionId of live) {
    const session = db.sessionBySessionId(sessionId);
    if (!session) {
      report.unknown += 1;
    } else if ((session.state === "closed" || session.state === "failed") && (session.ended_at ?? now) < listedAt) {
      report.reclosed += 1;
      db.journal(now, "reconciled_reclose", null, session.id, { sessionId });
      step.effects.push({ kind: "close", row: session.id, sessionId });
    }
  }
  if (report.reclosed > 0) db.setMeta("reclosed_total", String(Number(db.getMeta("reclosed_total") ?? 0) + report.reclosed));
  pump(step);
  return report;
}
