/**
 * The registry's SQLite tables, how storage written by earlier code is brought
 * up to date on start, the row types the sweep reads, and the `meta` key-value
 * reads and writes (sweep totals, the last report, the deprecated watch).
 */

const MIGRATIONS = [
  `CREATE TABLE IF NOT EXISTS sessions (session_id TEXT PRIMARY KEY, pool TEXT NOT NULL, registered_at INTEGER NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`,
  // Every pool of every tenant, so operators (and each tenant, its own) can list them.
  `CREATE TABLE IF NOT EXISTS pools (tenant TEXT NOT NULL, pool TEXT NOT NULL, created_at INTEGER NOT NULL, PRIMARY KEY (tenant, pool)) WITHOUT ROWID`,
  // Tenants an operator gave keys or a quota (tenants with pools are known from their pools too).
  `CREATE TABLE IF NOT EXISTS tenants (tenant TEXT PRIMARY KEY, created_at INTEGER NOT NULL) WITHOUT ROWID`,
  // Launches pools reported lost. claimed_session: the orphan it was matched to and closed
  // (kept until the window expires, so a repeated report cannot claim a second browser).
  `CREATE TABLE IF NOT EXISTS lost_launches (pool TEXT NOT NULL, started_at INTEGER NOT NULL, ended_at INTEGER NOT NULL, recorded_at INTEGER NOT NULL, claimed_session TEXT, PRIMARY KEY (pool, started_at, ended_at)) WITHOUT ROWID`,
];

/** Columns added to `sessions` after its first version (storage written by earlier code gets them on start). */
const SESSION_COLUMNS: Array<[name: string, definition: string]> = [
  // Consecutive trusted sweeps whose list did not show it, and when the first of them was.
  ["misses", "INTEGER NOT NULL DEFAULT 0"],
  ["missed_at", "INTEGER"],
  // Set when its pool was deleted: the next sweep closes it if live.
  ["abandoned_at", "INTEGER"],
];

/** Creates the tables and adds the columns storage written by earlier code lacks. Idempotent. */
export function migrate(sql: SqlStorage): void {
  for (const statement of MIGRATIONS) sql.exec(statement);
  const have = new Set(sql.exec<{ name: string }>(`PRAGMA table_info(sessions)`).toArray().map((c) => c.name));
  for (const [name, definition] of SESSION_COLUMNS) {
    if (!have.has(name)) sql.exec(`ALTER TABLE sessions ADD COLUMN ${name} ${definition}`);
  }
}

/** A row of `sessions`: a browser a pool registered. */
export type Registration = {
  session_id: string;
  pool: string;
  registered_at: number;
  misses: number;
  missed_at: number | null;
  abandoned_at: number | null;
};

/** A row of `lost_launches`, as far as matching needs it. */
export type WindowRow = {
  pool: string;
  started_at: number;
  ended_at: number;
};

export function readMeta(sql: SqlStorage, key: string): string | undefined {
  return sql.exec<{ value: string }>(`SELECT value FROM meta WHERE key = ?`, key).toArray()[0]?.value;
}

export function writeMeta(sql: SqlStorage, key: string, value: string): void {
  sql.exec(`INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value);
}
