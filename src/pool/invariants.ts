/**
 * The invariants of docs/reliability.md, checked against SQL. Tests run this after every
 * step; `GET /v1/pools/{pool}` reports it as `consistent` and `violations`, so
 * an operator sees a broken pool instead of a silently exhausted one.
 */
import type { PoolConfig } from "./config";

export interface InvariantReport {
  consistent: boolean;
  violations: string[];
}

/** How long past its deadline a waiter may linger before it counts as a violation (alarm latency). */
export const DEADLINE_GRACE_MS = 2000;

export function checkInvariants(sql: SqlStorage, config: PoolConfig, now: number): InvariantReport {
  const violations: string[] = [];
  const rows = <T extends Record<string, SqlStorageValue>>(query: string, ...params: SqlStorageValue[]) =>
    sql.exec<T>(query, ...params).toArray();

  const live = rows<{ n: number }>(
    `SELECT COUNT(*) AS n FROM sessions WHERE state IN ('launching','idle','leased','resetting','closing')`,
  )[0]!.n;
  if (live > config.maxSessions) violations.push(`${live} sessions hold capacity, above maxSessions ${config.maxSessions}`);

  for (const r of rows<{ id: string; state: string | null; lease_id: string | null }>(
    `SELECT l.id, s.state, s.lease_id FROM leases l LEFT JOIN sessions s ON s.id = l.session_row WHERE l.status = 'active'`,
  )) {
    if (r.state !== "leased" || r.lease_id !== r.id) {
      violations.push(`active lease ${r.id} does not hold a leased session (session state ${r.state ?? "none"})`);
    }
  }
  for (const r of rows<{ id: number; lease_id: string | null; status: string | null }>(
    `SELECT s.id, s.lease_id, l.status FROM sessions s LEFT JOIN leases l ON l.id = s.lease_id WHERE s.state = 'leased'`,
  )) {
    if (r.status !== "active") violations.push(`leased session ${r.id} is not held by an active lease (lease ${r.lease_id ?? "none"})`);
  }
  for (const r of rows<{ session_row: number; n: number }>(
    `SELECT session_row, COUNT(*) AS n FROM leases WHERE status = 'active' GROUP BY session_row HAVING n > 1`,
  )) {
    violations.push(`session ${r.session_row} is held by ${r.n} active leases`);
  }

  for (const r of rows<{ id: number; deadline: number | null; lease_id: string | null; status: string | null }>(
    `SELECT s.id, s.deadline, s.lease_id, l.status FROM sessions s LEFT JOIN leases l ON l.id = s.lease_id WHERE s.state = 'launching'`,
  )) {
    if (r.deadline === null) violations.push(`launching session ${r.id} has no deadline`);
    if (r.lease_id !== null && r.status !== "waiting") {
      violations.push(`launching session ${r.id} is reserved for lease ${r.lease_id}, which is ${r.status ?? "missing"}, not waiting`);
    }
  }
  for (const r of rows<{ id: number; state: string }>(
    `SELECT id, state FROM sessions WHERE state IN ('idle','leased','resetting') AND session_id IS NULL`,
  )) {
    violations.push(`${r.state} session ${r.id} has no platform session id`);
  }
  for (const r of rows<{ id: number; state: string }>(
    `SELECT id, state FROM sessions WHERE state IN ('idle','resetting','closing') AND deadline IS NULL`,
  )) {
    violations.push(`${r.state} session ${r.id} has no deadline`);
  }

  const overdue = rows<{ id: string }>(
    `SELECT id FROM leases WHERE status = 'waiting' AND wait_deadline < ?`,
    now - DEADLINE_GRACE_MS,
  );
  for (const r of overdue) violations.push(`waiter ${r.id} outlived its deadline`);
  // A waiter an idle session is being checked for is being served; any other one must not queue beside an idle session.
  const idle = rows<{ n: number }>(`SELECT COUNT(*) AS n FROM sessions WHERE state = 'idle'`)[0]!.n;
  const waiting = rows<{ n: number }>(
    `SELECT COUNT(*) AS n FROM leases l WHERE l.status = 'waiting'
       AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.state = 'resetting' AND s.lease_id = l.id)`,
  )[0]!.n;
  if (idle > 0 && waiting > 0) violations.push(`${waiting} waiters queue while ${idle} sessions are idle`);
  for (const r of rows<{ id: number; deadline: number | null; status: string | null }>(
    `SELECT s.id, s.deadline, l.status FROM sessions s JOIN leases l ON l.id = s.lease_id WHERE s.state = 'resetting'`,
  )) {
    if (r.status !== "waiting") violations.push(`resetting session ${r.id} is checked for a lease that is ${r.status}, not waiting`);
  }

  // The tallies the hot path reads instead of counting rows must be the counts.
  // Only live states are recounted: they are bounded by maxSessions and
  // maxWaiters, so this check does not grow with history either.
  const tallies = rows<{ kind: string; state: string; n: number }>(`SELECT kind, state, n FROM tallies`);
  const actual = new Map<string, number>();
  for (const r of rows<{ state: string; n: number }>(
    `SELECT state, COUNT(*) AS n FROM sessions WHERE state IN ('launching','idle','leased','resetting','closing') GROUP BY state`,
  )) {
    actual.set(`session/${r.state}`, r.n);
  }
  for (const r of rows<{ status: string; n: number }>(`SELECT status, COUNT(*) AS n FROM leases WHERE status IN ('waiting','active') GROUP BY status`)) {
    actual.set(`lease/${r.status}`, r.n);
  }
  for (const t of tallies) {
    const key = `${t.kind}/${t.state}`;
    const live = t.kind === "session" ? !["closed", "failed"].includes(t.state) : ["waiting", "active"].includes(t.state);
    if (live && t.n !== (actual.get(key) ?? 0)) violations.push(`the tally of ${t.kind}s ${t.state} says ${t.n}, the rows say ${actual.get(key) ?? 0}`);
    if (t.n < 0) violations.push(`the tally of ${t.kind}s ${t.state} is negative (${t.n})`);
  }

  // A session is closed once a lease on it expires or fails, so a live session
  // with such a lease in its history is a violation. Starting from live
  // sessions (at most maxSessions) keeps this check's cost independent of history.
  for (const r of rows<{ session_row: number; state: string; ended: string; holder: string | null }>(
    `SELECT s.id AS session_row, s.state, l.id AS ended, s.lease_id AS holder
     FROM sessions s JOIN leases l ON l.session_row = s.id AND l.status IN ('expired','failed')
     WHERE s.state IN ('idle','leased','resetting')`,
  )) {
    violations.push(
      r.state === "leased" && r.holder !== r.ended
        ? `session ${r.session_row} was handed to another lease after lease ${r.ended} expired or failed`
        : `session ${r.session_row} is ${r.state} after its lease ${r.ended} expired or failed; it must be closed`,
    );
  }

  return { consistent: violations.length === 0, violations };
}
