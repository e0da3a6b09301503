/**
 * Typed reads and writes over the pool object's meta, sessions and leases: the
 * rows machine.ts decides over, the deadlines the alarm is set from, and the
 * pruning of ended history. No decisions live here: machine.ts decides, this
 * module only knows how rows are stored. The journal, idempotency keys, CDP
 * connections and metrics are in the base class, `PoolRecords` (records.ts).
 * Every query that runs on the hot path is served by an index in schema.ts, so
 * its cost does not grow with the pool's history of ended leases and sessions.
 */
import { PoolRecords } from "./records";
import type { LeaseRow, LeaseStatus, SessionRow, SessionState } from "./schema";
import { LIVE_SESSION_STATES } from "./schema";

/** What the alarm must be no later than, as one statement reads it (see deadlines()). */
export type Deadlines = {
  /** The earliest deadline of any lease or live session. */
  earliest: number | null;
  /** The oldest idempotency record (expires IDEMPOTENCY_TTL_MS later). */
  idempotency: number | null;
  /** The oldest ended lease (pruned HISTORY_RETENTION_MS later). */
  history: number | null;
  /** The earliest grant of an active lease nobody connected to (ended connectWithinSeconds later). */
  unconnected: number | null;
  /**
   * 1 while the registry has a close or a lost launch to be told of. (A live
   * session's registration needs no deadline of its own: while the pool holds
   * a session, its alarm runs at least every reconciliation interval.)
   */
  registryOwed: number;
};

export type Counts = Record<"launching" | "idle" | "leased" | "resetting" | "closing" | "waiting", number>;

const NEVER = Number.MAX_SAFE_INTEGER;
/**
 * The predicates of the partial indexes sessions_unforgotten and sessions_lost
 * (schema v6): a query that names one of those indexes must repeat its
 * predicate exactly, so both the lists and the alarm's check use these.
 */
const UNFORGOTTEN = `registered = 1 AND state IN ('closed', 'failed')`;
const LOST_LAUNCH = `registered = 0 AND session_id IS NULL AND state = 'failed' AND end_reason IN ('launch_timeout', 'object_restarted')`;
const LIVE = LIVE_SESSION_STATES.map((s) => `'${s}'`).join(",");

export class PoolStore extends PoolRecords {
  /**
   * Meta values read so far (a missing key is cached as undefined). Only this
   * class writes `meta`, so the cache stays exact, except across a rolled-back
   * transaction: whoever runs one calls `forgetCached()` when it throws.
   */
  private readonly metaCache = new Map<string, string | undefined>();

  // ---- meta ---------------------------------------------------------------

  getMeta(key: string): string | undefined {
    if (this.metaCache.has(key)) return this.metaCache.get(key);
    const value = this.sql.exec<{ value: string }>(`SELECT value FROM meta WHERE key = ?`, key).toArray()[0]?.value;
    this.metaCache.set(key, value);
    return value;
  }

  setMeta(key: string, value: string): void {
    this.sql.exec(`INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value);
    this.metaCache.set(key, value);
  }

  /** A transaction rolled back: what was cached may no longer be what is stored. */
  override forgetCached(): void {
    this.metaCache.clear();
    super.forgetCached();
  }

  // ---- sessions -----------------------------------------------------------

  session(id: number): SessionRow | undefined {
    return this.sql.exec<SessionRow>(`SELECT * FROM sessions WHERE id = ?`, id).toArray()[0];
  }

  sessionsIn(state: SessionState, limit = 1000): SessionRow[] {
    return this.sql.exec<SessionRow>(`SELECT * FROM sessions WHERE state = ? ORDER BY id LIMIT ?`, state, limit).toArray();
  }

  /** Sessions in `state` whose deadline has passed. */
  sessionsDue(state: SessionState, now: number): SessionRow[] {
    return this.sql
      .exec<SessionRow>(`SELECT * FROM sessions WHERE state = ? AND deadline <= ? ORDER BY deadline`, state, now)
      .toArray();
  }

  /** The idle session that has waited longest (keeps every warm session in rotation). */
  oldestIdle(): SessionRow | undefined {
    return this.sql.exec<SessionRow>(`SELECT * FROM sessions WHERE state = 'idle' ORDER BY deadline, id LIMIT 1`).toArray()[0];
  }

  insertLaunching(leaseId: string | null, now: number, deadline: number): number {
    return this.sql
      .exec<{ id: number }>(
        `INSERT INTO sessions (state, lease_id, deadline, created_at) VALUES ('launching', ?, ?, ?) RETURNING id`,
        leaseId,
        deadline,
        now,
      )
      .one().id;
  }

  /** The rows of every session holding a slot (each holds one of the account's permits). */
  liveRows(): number[] {
    return this.sql
      .exec<{ id: number }>(`SELECT id FROM sessions WHERE state IN ('launching', 'idle', 'leased', 'resetting', 'closing')`)
      .toArray()
      .map((row) => row.id);
  }

  /** Removes a `launching` row whose launch never started (the account gave no permit): it leaves no history. */
  deleteSession(id: number): void {
    this.sql.exec(`DELETE FROM sessions WHERE id = ? AND state = 'launching'`, id);
  }

  updateSession(id: number, fields: Partial<Omit<SessionRow, "id">>): void {
    const keys = Object.keys(fields) as (keyof typeof fields)[];
    if (keys.length === 0) return;
    const assignments = keys.map((k) => `${k} = ?`).join(", ");
    this.sql.exec(`UPDATE sessions SET ${assignments} WHERE id = ?`, ...keys.map((k) => fields[k] ?? null), id);
  }

  /** Sessions launching or being checked for a given waiting lease. */
  reservationsOf(leaseId: string): SessionRow[] {
    return this.sql.exec<SessionRow>(`SELECT * FROM sessions WHERE state IN ('launching','resetting') AND lease_id = ?`, leaseId).toArray();
  }

  /**
   * Sessions on their way to idle that no caller owns (a reset after a release,
   * a warm launch): how many, and the latest of their deadlines.
   */
  incomingUnowned(): { count: number; deadline: number } | undefined {
    const row = this.sql
      .exec<{ n: number; deadline: number | null }>(
        `SELECT COUNT(*) AS n, MAX(deadline) AS deadline FROM sessions WHERE state IN ('launching','resetting') AND lease_id IS NULL`,
      )
      .one();
    return row.n > 0 && row.deadline !== null ? { count: row.n, deadline: row.deadline } : undefined;
  }

  sessionBySessionId(sessionId: string): SessionRow | undefined {
    return this.sql.exec<SessionRow>(`SELECT * FROM sessions WHERE session_id = ?`, sessionId).toArray()[0];
  }

  /** Browsers this pool launched that the account's registry has not acknowledged yet (not yet closed). */
  unregistered(limit = 100): SessionRow[] {
    return this.sql
      .exec<SessionRow>(`SELECT * FROM sessions WHERE registered = 0 AND session_id IS NOT NULL AND state != 'closed' ORDER BY id LIMIT ?`, limit)
      .toArray();
  }

  /** Closed browsers the registry still has registered (it forgets one only when told). */
  unforgotten(limit = 100): SessionRow[] {
    return this.sql
      .exec<SessionRow>(
        `SELECT * FROM sessions INDEXED BY sessions_unforgotten WHERE ${UNFORGOTTEN} ORDER BY id LIMIT ?`,
        limit,
      )
      .toArray()
      .filter((row) => row.session_id !== null);
  }

  /** Launches whose outcome was lost (restart, or no answer by the deadline) that the registry has not been told of. */
  lostLaunches(limit = 100): SessionRow[] {
    return this.sql
      .exec<SessionRow>(
        `SELECT * FROM sessions INDEXED BY sessions_lost
           WHERE ${LOST_LAUNCH}
           ORDER BY id LIMIT ?`,
        limit,
      )
      .toArray();
  }

  /** Sessions that hold a platform browser we know the id of and that should still be alive. */
  trackedAlive(): SessionRow[] {
    return this.sql
      .exec<SessionRow>(`SELECT * FROM sessions WHERE state IN ('idle','leased','resetting','closing') AND session_id IS NOT NULL`)
      .toArray();
  }

  /** Live sessions by state and waiting leases: one read of the trigger-kept tallies, whatever the pool's size. */
  counts(): Counts {
    const counts: Counts = { launching: 0, idle: 0, leased: 0, resetting: 0, closing: 0, waiting: 0 };
    for (const row of this.sql.exec<{ state: keyof Counts; n: number }>(
      `SELECT state, n FROM tallies WHERE (kind = 'session' AND state IN (${LIVE})) OR (kind = 'lease' AND state = 'waiting')`,
    )) {
      counts[row.state] = row.n;
    }
    return counts;
  }

  /** Sessions holding a slot of capacity (launching, idle, leased, resetting, closing). */
  liveSessions(): number {
    return this.sql.exec<{ n: number }>(`SELECT SUM(n) AS n FROM tallies WHERE kind = 'session' AND state IN (${LIVE})`).one().n;
  }

  waitingCount(): number {
    return this.sql.exec<{ n: number }>(`SELECT n FROM tallies WHERE kind = 'lease' AND state = 'waiting'`).one().n;
  }


  /** Launching sessions not reserved for any waiter (the warm-pool target's launches). */
  unownedLaunches(): number {
    return this.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM sessions WHERE state = 'launching' AND lease_id IS NULL`).one().n;
  }

  // ---- leases -------------------------------------------------------------

  lease(id: string): LeaseRow | undefined {
    return this.sql.exec<LeaseRow>(`SELECT * FROM leases WHERE id = ?`, id).toArray()[0];
  }

  nextSeq(): number {
    return this.sql.exec<{ n: number }>(`SELECT COALESCE(MAX(seq), 0) + 1 AS n FROM leases`).one().n;
  }

  insertLease(row: LeaseRow): void {
    this.sql.exec(
      `INSERT INTO leases (id, seq, status, session_row, session_id, owner, labels, ttl_ms, created_at, wait_deadline,
        granted_at, expires_at, ended_at, end_reason, idempotency_key, token_hash, connected_at, priority, rank, wait_ms, record, persist_profile, viewer_hash)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      row.id,
      row.seq,
      row.status,
      row.session_row,
      row.session_id,
      row.owner,
      row.labels,
      row.ttl_ms,
      row.created_at,
      row.wait_deadline,
      row.granted_at,
      row.expires_at,
      row.ended_at,
      row.end_reason,
      row.idempotency_key,
      row.token_hash,
      row.connected_at,
      row.priority,
      row.rank,
      row.wait_ms,
      row.record,
      row.persist_profile,
      row.viewer_hash,
    );
  }

  updateLease(id: string, fields: Partial<Omit<LeaseRow, "id" | "seq">>): void {
    const keys = Object.keys(fields) as (keyof typeof fields)[];
    if (keys.length === 0) return;
    const assignments = keys.map((k) => `${k} = ?`).join(", ");
    this.sql.exec(`UPDATE leases SET ${assignments} WHERE id = ?`, ...keys.map((k) => fields[k] ?? null), id);
  }

  /** Waiting leases in queue order: by rank (arrival shifted by priority), then arrival. */
  waiters(limit = 1000): LeaseRow[] {
    return this.sql
      .exec<LeaseRow>(`SELECT * FROM leases INDEXED BY leases_waiting_rank WHERE status = 'waiting' ORDER BY rank, seq LIMIT ?`, limit)
      .toArray();
  }

  /**
   * How many waiters are ahead of a new one of this rank (queued before it,
   * rank for rank), counted no further than `limit`: `exact` is false when
   * the count stopped there. A newcomer that ranks behind every waiter (the
   * usual arrival: no priority ahead of the queue's) is answered from the
   * tally and one index probe, however long the queue; one that ranks ahead
   * of some reads at most `limit` index entries. `waiting` is the tally of
   * waiters, which the caller has already read in this transaction.
   */
  waitersAhead(rank: number, waiting: number, limit: number): { ahead: number; exact: boolean } {
    if (waiting === 0) return { ahead: 0, exact: true };
    const last = this.sql
      .exec<{ rank: number }>(`SELECT MAX(rank) AS rank FROM leases INDEXED BY leases_waiting_rank WHERE status = 'waiting'`)
      .one().rank;
    if (last <= rank) return { ahead: waiting, exact: true };
    const ahead = this.sql
      .exec<{ n: number }>(
        `SELECT COUNT(*) AS n FROM (SELECT 1 FROM leases INDEXED BY leases_waiting_rank WHERE status = 'waiting' AND rank <= ? LIMIT ?)`,
        rank,
        limit,
      )
      .one().n;
    return { ahead, exact: ahead < limit };
  }

  oldestWaiter(): LeaseRow | undefined {
    // Asked after every release and in every pump: the tally answers the common "nobody" without the index walk.
    return this.waitingCount() === 0 ? undefined : this.waiters(1)[0];
  }

  /** The oldest waiter that no idle session is being checked for. */
  oldestWaiterUnchecked(): LeaseRow | undefined {
    return this.sql
      .exec<LeaseRow>(
        `SELECT l.* FROM leases l WHERE l.status = 'waiting'
           AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.state = 'resetting' AND s.lease_id = l.id)
         ORDER BY l.rank, l.seq LIMIT 1`,
      )
      .toArray()[0];
  }

  /** The oldest waiters that have no launch or check under way for them, in FIFO order. */
  waitersWithoutReservation(limit: number): LeaseRow[] {
    return this.sql
      .exec<LeaseRow>(
        `SELECT l.* FROM leases l WHERE l.status = 'waiting'
           AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.state IN ('launching','resetting') AND s.lease_id = l.id)
         ORDER BY l.rank, l.seq LIMIT ?`,
        limit,
      )
      .toArray();
  }

  /** Active leases granted at or before `cutoff` that no client ever connected to. */
  unconnectedSince(cutoff: number): LeaseRow[] {
    return this.sql
      .exec<LeaseRow>(
        `SELECT * FROM leases INDEXED BY leases_unconnected WHERE status = 'active' AND connected_at IS NULL AND granted_at <= ? ORDER BY granted_at`,
        cutoff,
      )
      .toArray();
  }

  leasesDue(status: "active" | "waiting", now: number): LeaseRow[] {
    // Literal statuses, so the partial indexes on the deadlines serve these
    // (10,000 waiters are not walked to find the few that are due).
    return status === "active"
      ? this.sql
          .exec<LeaseRow>(`SELECT * FROM leases INDEXED BY leases_active_expiry WHERE status = 'active' AND expires_at <= ? ORDER BY expires_at`, now)
          .toArray()
      : this.sql
          .exec<LeaseRow>(
            `SELECT * FROM leases INDEXED BY leases_waiting_deadline WHERE status = 'waiting' AND wait_deadline <= ? ORDER BY wait_deadline`,
            now,
          )
          .toArray();
  }

  leasesIn(status: LeaseStatus, limit = 10_000): LeaseRow[] {
    return this.sql.exec<LeaseRow>(`SELECT * FROM leases WHERE status = ? ORDER BY seq LIMIT ?`, status, limit).toArray();
  }

  listLeases(status: LeaseStatus | undefined, beforeSeq: number | undefined, limit: number): LeaseRow[] {
    const before = beforeSeq ?? Number.MAX_SAFE_INTEGER;
    return status
      ? this.sql
          .exec<LeaseRow>(`SELECT * FROM leases WHERE status = ? AND seq < ? ORDER BY seq DESC LIMIT ?`, status, before, limit)
          .toArray()
      : this.sql.exec<LeaseRow>(`SELECT * FROM leases WHERE seq < ? ORDER BY seq DESC LIMIT ?`, before, limit).toArray();
  }

  /**
   * The earliest deadline of any lease or live session, and the oldest
   * idempotency record: one statement, each part served by an index.
   */
  deadlines(): Deadlines {
    return this.sql
      .exec<Deadlines>(
        // Scalar MIN() over indexed aggregates (the platform caps compound SELECTs);
        // NEVER stands in for "no deadline", since multi-argument MIN() is NULL if any argument is.
        `SELECT NULLIF(MIN(COALESCE((SELECT MIN(expires_at) FROM leases INDEXED BY leases_active_expiry WHERE status = 'active'), ${NEVER}),
                           COALESCE((SELECT MIN(wait_deadline) FROM leases INDEXED BY leases_waiting_deadline WHERE status = 'waiting'), ${NEVER}),
                           COALESCE((SELECT MIN(deadline) FROM sessions WHERE state = 'launching'), ${NEVER}),
                           COALESCE((SELECT MIN(deadline) FROM sessions WHERE state = 'idle'), ${NEVER}),
                           COALESCE((SELECT MIN(deadline) FROM sessions WHERE state = 'leased'), ${NEVER}),
                           COALESCE((SELECT MIN(deadline) FROM sessions WHERE state = 'resetting'), ${NEVER}),
                           COALESCE((SELECT MIN(deadline) FROM sessions WHERE state = 'closing'), ${NEVER})), ${NEVER}) AS earliest,
                (SELECT MIN(created_at) FROM idempotency) AS idempotency,
                (SELECT MIN(granted_at) FROM leases INDEXED BY leases_unconnected WHERE status = 'active' AND connected_at IS NULL) AS unconnected,
                (SELECT MIN(ended_at) FROM leases INDEXED BY leases_ended WHERE status IN ('released','expired','failed')) AS history,
                EXISTS (SELECT 1 FROM sessions INDEXED BY sessions_unforgotten WHERE ${UNFORGOTTEN})
                  OR EXISTS (SELECT 1 FROM sessions INDEXED BY sessions_lost
                               WHERE ${LOST_LAUNCH})
                  AS registryOwed`,
      )
      .one();
  }

  earliestActiveExpiry(): number | null {
    return this.sql.exec<{ t: number | null }>(`SELECT MIN(expires_at) AS t FROM leases INDEXED BY leases_active_expiry WHERE status = 'active'`).one().t;
  }

  /**
   * Deletes up to `limit` leases that ended before `cutoff`, and up to `limit`
   * closed or failed sessions that ended before it and that no remaining lease
   * refers to. Oldest first; both walk the partial indexes on ended_at.
   */
  pruneHistory(cutoff: number, limit: number): { leases: number; sessions: number } {
    // Counted by RETURNING: rowsWritten would include the tally triggers' writes.
    const leases = this.sql.exec(
      `DELETE FROM leases WHERE id IN (
         SELECT id FROM leases INDEXED BY leases_ended
           WHERE status IN ('released','expired','failed') AND ended_at < ? ORDER BY ended_at LIMIT ?) RETURNING 1`,
      cutoff,
      limit,
    ).toArray().length;
    const sessions = this.sql.exec(
      `DELETE FROM sessions WHERE id IN (
         SELECT s.id FROM sessions s INDEXED BY sessions_ended WHERE s.state IN ('closed','failed') AND s.ended_at < ?
           AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.session_row = s.id)
         ORDER BY s.ended_at LIMIT ?) RETURNING 1`,
      cutoff,
      limit,
    ).toArray().length;
    return { leases, sessions };
  }
}
