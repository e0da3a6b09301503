/**
 * The recorder's SQLite: one row, the recording. Its counters move only when a
 * chunk is in R2, so a restart loses at most the frames not yet flushed.
 */

/** The recording's row (`id` is always 1). Times are epoch ms. */
export interface RecordingRow extends Record<string, SqlStorageValue> {
  tenant: string;
  pool: string;
  lease: string;
  session_id: string;
  started_at: number;
  /** "recording" until `stop` (or the safety alarm) wrote the manifest, then "stopped". */
  state: "recording" | "stopped";
  frames: number;
  bytes: number;
  chunks: number;
  /** 1 once a frame was dropped for RECORDING_MAX_BYTES. */
  truncated: number;
  /** The last flushed frame's time: later frames are stamped after it, even across a restart. */
  last_t: number;
  /** 1 once nothing more is to be captured: the browser's socket closed, the size bound was reached, or the recording is ending. */
  capture_over: number;
  /** When the recording finalizes on its own if no `stop` came (the pool is asked first whether the lease still runs). */
  safety_at: number;
  /** Set once stopped: when the retention deletes the recording. */
  expires_at: number | null;
  /** The manifest as written to R2, once stopped. */
  manifest: string | null;
}

const MIGRATIONS = [
  `CREATE TABLE IF NOT EXISTS recording (
     id INTEGER PRIMARY KEY CHECK (id = 1),
     tenant TEXT NOT NULL, pool TEXT NOT NULL, lease TEXT NOT NULL, session_id TEXT NOT NULL, started_at INTEGER NOT NULL,
     state TEXT NOT NULL, frames INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0, chunks INTEGER NOT NULL DEFAULT 0,
     truncated INTEGER NOT NULL DEFAULT 0, last_t INTEGER NOT NULL DEFAULT 0, capture_over INTEGER NOT NULL DEFAULT 0,
     safety_at INTEGER NOT NULL, expires_at INTEGER, manifest TEXT)`,
];

/** Whether this object has a recording's tables at all (none before `start`, none after the retention deleted them). */
export function hasSchema(sql: SqlStorage): boolean {
  return sql.exec(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'recording'`).toArray().length > 0;
}

/** Creates the tables. Idempotent. */
export function migrate(sql: SqlStorage): void {
  for (const statement of MIGRATIONS) sql.exec(statement);
}
