/**
 * The registry's sweep: it lists the platform's live sessions and judges them
 * against the registrations and the lost launches pools reported, over the
 * registry's SQL; the orphan policies; matching lost-launch windows to
 * sessions. docs/registry.md has the rules; in short:
 *
 * - It never destroys on an unconfirmed observation. The platform's list can
 *   lag or be partial, so a registration is forgotten when its pool reports the
 *   session closed (`forget`), not when a list omits it; an empty list while a
 *   registration is believed live judges nothing; a list that fails or passes
 *   its deadline judges nothing.
 * - It never closes a browser the broker did not launch. The account's list
 *   includes other Workers' browsers, so a live session no pool registered is
 *   closed (by default) only if it matches a launch a pool reported lost
 *   (`lostLaunches`): older than the grace, no client connected, started
 *   within the lost launch's window; one per window. ORPHAN_POLICY "all"
 *   (an account dedicated to the broker) closes every unknown session older
 *   than the grace; "off" closes none.
 * - A deleted pool's registrations are marked abandoned; the next sweep closes
 *   those still live (they are ours) and forgets them.
 *
 * Every platform call it awaits has a deadline.
 */
import { type BrowserProvider, KEEP_ALIVE_MS, type LiveSession } from "../browser/provider";
import { message, withDeadline } from "../deadline";
import { log } from "../log";
import { readMeta, type Registration, type WindowRow, writeMeta } from "./schema";

/** An unregistered live session is never closed before it is this old (a registration may be on its way). */
export const ORPHAN_GRACE_MS = 3 * 60_000;
/** How often the registry sweeps while it has anything to watch. */
export const SWEEP_INTERVAL_MS = 60_000;
/** Deadline of one platform list. */
export const LIST_TIMEOUT_MS = 10_000;
/** Deadline of one platform close. */
export const CLOSE_TIMEOUT_MS = 15_000;
/** Clock skew allowed, either side, between a pool's lost-launch window and the platform's start times. */
export const LAUNCH_SKEW_MS = 5_000;
/**
 * A registration its pool never reported closed is dropped (garbage) only once
 * this old and absent from two trusted sweeps at least SWEEP_INTERVAL_MS apart.
 */
export const STALE_REGISTRATION_MS = 24 * 60 * 60_000;

/**
 * Which live sessions no pool registered the registry closes (Worker var
 * ORPHAN_POLICY): "launches" (default) only those matching a lost launch;
 * "all" every one older than the grace, for an account used by the broker
 * alone; "off" none.
 */
export type OrphanPolicy = "launches" | "all" | "off";

export function orphanPolicy(value: unknown): OrphanPolicy {
  if (value === undefined || value === null || value === "") return "launches";
  if (value === "launches" || value === "all" || value === "off") return value;
  log("registry_policy_invalid", { value: String(value), using: "launches" });
  return "launches";
}

export interface SweepReport {
  at: string;
  /** Sessions the platform listed (0 when the list failed). */
  live: number;
  /** Registrations after the sweep (abandoned ones included, until closed or forgotten). */
  tracked: number;
  /** Live sessions no pool registered, closed by the policy (lost launches, or all under "all"). */
  orphansClosed: number;
  /** Registrations dropped as garbage: older than 24 h and absent from two trusted sweeps (or abandoned and absent twice). */
  forgotten: number;
  /** Unknown live sessions still within the grace (a registration may be on its way). */
  young: number;
  /** The list answered empty while registrations are believed live: not believed, nothing judged. */
  untrusted: boolean;
  /** The list failed or passed its deadline: nothing judged. */
  listFailed: boolean;
  /** Unknown live sessions older than the grace left alone (another Worker's, or not matching any lost launch). */
  foreign: number;
  /** Live browsers of deleted pools, closed (and forgotten). */
  abandonedClosed: number;
  /** Registrations absent from this (trusted) list: counted, never acted on alone. */
  missed: number;
  policy: OrphanPolicy;
}

/**
 * What a sweep needs of the registry object. The provider and the deadlines
 * are functions, read at each use as the object's own fields were: tests swap
 * and shorten them on the live object.
 */
export interface SweepHost {
  sql: SqlStorage;
  now(): number;
  provider(): BrowserProvider;
  policy(): OrphanPolicy;
  graceMs(): number;
  listTimeoutMs(): number;
  closeTimeoutMs(): number;
  /** Makes sure a sweep runs within `ms`; never throws. */
  armWithin(ms: number): Promise<void>;
}

/** One sweep: compares the platform's live sessions with the registrations and lost launches; closes what the rules allow. */
export async function sweepOnce(host: SweepHost): Promise<SweepReport> {
  const sql = host.sql;
  const policy = host.policy();
  const listedAt = host.now();
  const report: SweepReport = {
    at: new Date(listedAt).toISOString(),
    live: 0,
    tracked: 0,
    orphansClosed: 0,
    forgotten: 0,
    young: 0,
    untrusted: false,
    listFailed: false,
    foreign: 0,
    abandonedClosed: 0,
    missed: 0,
    policy,
  };
  // Windows whose browsers the keep-alive has killed by now: nothing left to claim.
  sql.exec(`DELETE FROM lost_launches WHERE ended_at + ? < ?`, KEEP_ALIVE_MS, listedAt);

  let live: LiveSession[];
  try {
    live = await withDeadline(host.provider().list(), host.listTimeoutMs(), "the platform's session list");
  } catch (error) {
    log("registry_list_failed", { error: message(error) });
    report.listFailed = true;
    return finish(sql, report);
  }
  report.live = live.length;

  // Read after the list: a registration that arrived while it was in flight is known.
  const registrations = sql
    .exec<Registration>(`SELECT session_id, pool, registered_at, misses, missed_at, abandoned_at FROM sessions`)
    .toArray();
  if (live.length === 0 && registrations.some((r) => r.misses === 0)) {
    // Browsers we believe live, and a list showing none: the list, not the browsers, is suspect.
    log("registry_list_untrusted", { reason: "empty list while registrations are believed live", tracked: registrations.length });
    report.untrusted = true;
    return finish(sql, report);
  }

  const liveById = new Map(live.map((s) => [s.sessionId, s]));
  const abandonedLive: string[] = [];
  for (const r of registrations) {
    if (liveById.has(r.session_id)) {
      if (r.misses !== 0) sql.exec(`UPDATE sessions SET misses = 0, missed_at = NULL WHERE session_id = ?`, r.session_id);
      if (r.abandoned_at !== null) abandonedLive.push(r.session_id);
      continue;
    }
    // Registered while the list was in flight: the list cannot have shown it.
    if (r.registered_at >= listedAt) continue;
    report.missed += 1;
    const misses = r.misses + 1;
    const missedAt = r.missed_at ?? listedAt;
    const garbage = r.abandoned_at !== null || listedAt - r.registered_at >= STALE_REGISTRATION_MS;
    if (garbage && misses >= 2 && listedAt - missedAt >= SWEEP_INTERVAL_MS) {
      sql.exec(`DELETE FROM sessions WHERE session_id = ?`, r.session_id);
      report.forgotten += 1;
      log("registration_dropped", { sessionId: r.session_id, pool: r.pool, abandoned: r.abandoned_at !== null, ageMs: listedAt - r.registered_at });
    } else {
      sql.exec(`UPDATE sessions SET misses = ?, missed_at = ? WHERE session_id = ?`, misses, missedAt, r.session_id);
    }
  }

  const known = new Set(registrations.map((r) => r.session_id));
  const unknown = live.filter((s) => !known.has(s.sessionId));
  const old = unknown.filter((s) => s.startTime <= listedAt - host.graceMs());
  report.young = unknown.length - old.length;
  const windows = activeWindows(sql, listedAt);
  const claims = policy === "launches" ? claim(windows, old.filter((s) => !s.connected)) : new Map<string, WindowRow>();
  const orphans = policy === "all" ? old : policy === "launches" ? old.filter((s) => claims.has(s.sessionId)) : [];
  report.foreign = old.length - orphans.length;

  await Promise.all([
    ...abandonedLive.map(async (sessionId) => {
      if (await close(host, sessionId, "abandoned")) {
        sql.exec(`DELETE FROM sessions WHERE session_id = ?`, sessionId);
        report.abandonedClosed += 1;
      }
    }),
    ...orphans.map(async (orphan) => {
      const window = claims.get(orphan.sessionId);
      if (await close(host, orphan.sessionId, "orphan", { ageMs: listedAt - orphan.startTime, policy, lostBy: window?.pool })) {
        report.orphansClosed += 1;
        if (window) {
          sql.exec(
            `UPDATE lost_launches SET claimed_session = ? WHERE pool = ? AND started_at = ? AND ended_at = ?`,
            orphan.sessionId,
            window.pool,
            window.started_at,
            window.ended_at,
          );
        }
      }
    }),
  ]);

  // A young unknown session may be an orphan once past the grace: look again then, if anything could close it.
  if (report.young > 0 && (policy === "all" || (policy === "launches" && windows.length > 0))) await host.armWithin(host.graceMs() + 1_000);
  return finish(sql, report);
}

/** Anything a later sweep could act on: registrations, unclaimed lost launches, a deprecated `expectOrphans` watch. */
export function watching(sql: SqlStorage, now: number): boolean {
  const sessions = sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM sessions`).one().n;
  return sessions > 0 || activeWindows(sql, now).length > 0 || Number(readMeta(sql, "watch_until") ?? 0) > now;
}

/** Closes one browser within the close deadline; true if it is gone. Never throws. */
async function close(host: SweepHost, sessionId: string, kind: "orphan" | "abandoned", fields: Record<string, unknown> = {}): Promise<boolean> {
  try {
    await withDeadline(host.provider().close(sessionId), host.closeTimeoutMs(), `closing ${sessionId}`);
    log(`${kind}_closed`, { sessionId, ...fields });
    return true;
  } catch (error) {
    log(`${kind}_close_failed`, { sessionId, error: message(error), ...fields });
    return false;
  }
}

/** Counts what is tracked after the sweep and keeps the totals and the report for `stats`. */
function finish(sql: SqlStorage, report: SweepReport): SweepReport {
  report.tracked = sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM sessions`).one().n;
  if (report.orphansClosed > 0) writeMeta(sql, "orphans_closed", String(Number(readMeta(sql, "orphans_closed") ?? 0) + report.orphansClosed));
  writeMeta(sql, "last_sweep", JSON.stringify(report));
  return report;
}

/** Lost-launch windows that have not claimed a browser yet, oldest first. */
function activeWindows(sql: SqlStorage, now: number): WindowRow[] {
  return sql
    .exec<WindowRow>(
      `SELECT pool, started_at, ended_at FROM lost_launches WHERE claimed_session IS NULL AND ended_at + ? >= ? ORDER BY started_at, pool, ended_at`,
      KEEP_ALIVE_MS,
      now,
    )
    .toArray();
}

/**
 * Matches lost-launch windows (oldest first) to candidate sessions: each
 * window claims at most one, the candidate whose start is nearest the
 * window's start among those that started within it (± LAUNCH_SKEW_MS), and
 * each session is claimed by at most one window.
 */
function claim(windows: WindowRow[], candidates: LiveSession[]): Map<string, WindowRow> {
  const claims = new Map<string, WindowRow>();
  for (const window of windows) {
    let best: LiveSession | undefined;
    for (const s of candidates) {
      if (claims.has(s.sessionId)) continue;
      if (s.startTime < window.started_at - LAUNCH_SKEW_MS || s.startTime > window.ended_at + LAUNCH_SKEW_MS) continue;
      if (!best || Math.abs(s.startTime - window.started_at) < Math.abs(best.startTime - window.started_at)) best = s;
    }
    if (best) claims.set(best.sessionId, window);
  }
  return claims;
}
