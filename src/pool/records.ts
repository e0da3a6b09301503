/**
 * The pool object's records kept beside its sessions and leases: the CDP
 * connections the Worker proxies, idempotency keys, the metrics counters and
 * histograms, and the journal (with the entries written since the shell last
 * took them). Typed reads and writes only: no decisions live here. `PoolStore`
 * (store.ts) extends this class, so every caller holds one object over the
 * pool's SQL. Every query that runs on the hot path is served by an index or
 * primary key in schema.ts, so its cost does not grow with the pool's history.
 */
import type { ConnectionRow, JournalRow, ViewerRow } from "./schema";
import {
  bucketOf,
  type CounterName,
  type CounterSnapshot,
  type HistogramName,
  type HistogramSnapshot,
  histogramSnapshots,
  labelKey,
} from "./metrics";

export interface JournalEntry {
  at: number;
  event: string;
  leaseId: string | null;
  sessionRow: number | null;
  detail?: Record<string, unknown>;
}

export class PoolRecords {
  constructor(readonly sql: SqlStorage) {}

  // ---- connections (CDP sockets the Worker proxies) -------------------------

  connection(id: string): ConnectionRow | undefined {
    return this.sql.exec<ConnectionRow>(`SELECT * FROM connections WHERE id = ?`, id).toArray()[0];
  }

  /** Sockets of the lease still open (`kind`: only the lessee's, or only viewers'). */
  connectionsOf(leaseId: string, kind?: ConnectionRow["kind"]): number {
    return kind
      ? this.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM connections WHERE lease_id = ? AND kind = ?`, leaseId, kind).one().n
      : this.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM connections WHERE lease_id = ?`, leaseId).one().n;
  }

  insertConnection(row: ConnectionRow): void {
    this.sql.exec(`INSERT INTO connections (id, lease_id, opened_at, kind) VALUES (?, ?, ?, ?)`, row.id, row.lease_id, row.opened_at, row.kind);
  }

  deleteConnection(id: string): boolean {
    return this.sql.exec(`DELETE FROM connections WHERE id = ?`, id).rowsWritten > 0;
  }

  /** Forgets connections whose lease has ended and that no Worker reported closed (it crashed). */
  pruneConnections(openedBefore: number): number {
    return this.sql.exec(
      `DELETE FROM connections WHERE opened_at < ?
         AND lease_id NOT IN (SELECT id FROM leases WHERE status = 'active')`,
      openedBefore,
    ).rowsWritten;
  }

  // ---- viewer tokens ---------------------------------------------------------

  insertViewer(row: ViewerRow): void {
    this.sql.exec(
      `INSERT INTO viewers (token_hash, lease_id, interactive, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (token_hash) DO NOTHING`,
      row.token_hash,
      row.lease_id,
      row.interactive,
      row.created_at,
    );
  }

  viewer(tokenHash: string): ViewerRow | undefined {
    return this.sql.exec<ViewerRow>(`SELECT * FROM viewers WHERE token_hash = ?`, tokenHash).toArray()[0];
  }

  /** Forgets the viewer tokens of leases that have ended (they are refused anyway); at most `limit`. */
  pruneViewers(limit: number): number {
    return this.sql.exec(
      `DELETE FROM viewers WHERE token_hash IN (SELECT v.token_hash FROM viewers v
         WHERE NOT EXISTS (SELECT 1 FROM leases l WHERE l.id = v.lease_id AND l.status IN ('waiting', 'active')) LIMIT ?)`,
      limit,
    ).rowsWritten;
  }

  // ---- idempotency --------------------------------------------------------

  idempotent(key: string): { lease_id: string; fingerprint: string; created_at: number } | undefined {
    return this.sql
      .exec<{ lease_id: string; fingerprint: string; created_at: number }>(
        `SELECT lease_id, fingerprint, created_at FROM idempotency WHERE key = ?`,
        key,
      )
      .toArray()[0];
  }

  rememberIdempotent(key: string, leaseId: string, fingerprint: string, now: number): void {
    this.sql.exec(
      `INSERT INTO idempotency (key, lease_id, fingerprint, created_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (key) DO UPDATE SET lease_id = excluded.lease_id, fingerprint = excluded.fingerprint, created_at = excluded.created_at`,
      key,
      leaseId,
      fingerprint,
      now,
    );
  }

  forgetIdempotent(key: string): void {
    this.sql.exec(`DELETE FROM idempotency WHERE key = ?`, key);
  }

  purgeIdempotentBefore(cutoff: number): number {
    return this.sql.exec(`DELETE FROM idempotency WHERE created_at < ?`, cutoff).rowsWritten;
  }

  // ---- metrics ------------------------------------------------------------

  count(name: CounterName, labels: Record<string, string>, by = 1): void {
    this.sql.exec(
      `INSERT INTO counters (name, labels, n) VALUES (?, ?, ?) ON CONFLICT (name, labels) DO UPDATE SET n = n + excluded.n`,
      name,
      labelKey(labels),
      by,
    );
  }

  observe(name: HistogramName, labels: Record<string, string>, seconds: number): void {
    this.sql.exec(
      `INSERT INTO histograms (name, labels, le, n, sum) VALUES (?, ?, ?, 1, ?)
       ON CONFLICT (name, labels, le) DO UPDATE SET n = n + 1, sum = sum + excluded.sum`,
      name,
      labelKey(labels),
      bucketOf(name, seconds),
      seconds,
    );
  }

  counters(): CounterSnapshot[] {
    return this.sql
      .exec<{ name: CounterName; labels: string; n: number }>(`SELECT name, labels, n FROM counters ORDER BY name, labels`)
      .toArray()
      .map((r) => ({ name: r.name, labels: JSON.parse(r.labels) as Record<string, string>, value: r.n }));
  }

  histograms(): HistogramSnapshot[] {
    return histogramSnapshots(
      this.sql.exec<{ name: string; labels: string; le: string; n: number; sum: number }>(`SELECT name, labels, le, n, sum FROM histograms`).toArray(),
    );
  }

  // ---- journal ------------------------------------------------------------

  /**
   * Journal rows written since the last `takeWritten()`: the shell publishes
   * them (logs, Analytics Engine) once their transaction has committed, and
   * drops them if it rolled back.
   */
  private written: JournalEntry[] = [];

  takeWritten(): JournalEntry[] {
    const entries = this.written;
    this.written = [];
    return entries;
  }

  /** A transaction rolled back: the journal rows it wrote were never stored, so they are not published. */
  forgetCached(): void {
    this.written = [];
  }

  journal(at: number, event: string, leaseId: string | null, sessionRow: number | null, detail?: Record<string, unknown>): void {
    this.written.push({ at, event, leaseId, sessionRow, ...(detail ? { detail } : {}) });
    this.sql.exec(
      `INSERT INTO journal (at, event, lease_id, session_row, detail) VALUES (?, ?, ?, ?, ?)`,
      at,
      event,
      leaseId,
      sessionRow,
      detail ? JSON.stringify(detail) : null,
    );
  }

  journalFor(leaseId: string): JournalRow[] {
    return this.sql.exec<JournalRow>(`SELECT * FROM journal WHERE lease_id = ? ORDER BY seq`, leaseId).toArray();
  }

  recentJournal(limit: number): JournalRow[] {
    return this.sql.exec<JournalRow>(`SELECT * FROM journal ORDER BY seq DESC LIMIT ?`, limit).toArray();
  }

  /** Keeps the newest `keep` journal rows; history beyond that is dropped. */
  pruneJournal(keep: number): number {
    return this.sql.exec(`DELETE FROM journal WHERE seq <= (SELECT MAX(seq) FROM journal) - ?`, keep).rowsWritten;
  }
}
