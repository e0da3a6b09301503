/**
 * The tenant object's SQLite schema and the key row read from it:
 *
 * - `meta`: the tenant's name (the object's id is only a hash of it), its
 *   quota fields (quota.ts), and whether the account's registry lists it;
 * - `keys`: its managed API keys, each secret only as a SHA-256 digest
 *   (keys.ts); after a rotation with a grace period, also the previous
 *   secret's digest and until when it is accepted;
 * - `pools`: the capacity each of its pools has claimed (its maxSessions).
 *
 * The tables are created by the object's first write, never on construction
 * (TenantObject.remember), so an object only ever read keeps no storage.
 */

/** One managed key. Times are epoch ms. */
export interface KeyRow extends Record<string, SqlStorageValue> {
  id: string;
  name: string;
  hint: string;
  digest: string;
  previous_digest: string | null;
  previous_until: number | null;
  created_at: number;
  rotated_at: number | null;
  revoked_at: number | null;
  last_used_at: number | null;
}

const MIGRATIONS = [
  `CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS keys (
     id TEXT PRIMARY KEY, name TEXT NOT NULL, hint TEXT NOT NULL, digest TEXT NOT NULL UNIQUE,
     previous_digest TEXT, previous_until INTEGER,
     created_at INTEGER NOT NULL, rotated_at INTEGER, revoked_at INTEGER, last_used_at INTEGER)`,
  `CREATE INDEX IF NOT EXISTS keys_by_previous ON keys (previous_digest) WHERE previous_digest IS NOT NULL`,
  // The capacity each pool of the tenant has claimed: its maxSessions.
  `CREATE TABLE IF NOT EXISTS pools (pool TEXT PRIMARY KEY, max_sessions INTEGER NOT NULL, updated_at INTEGER NOT NULL) WITHOUT ROWID`,
];

/** Whether the tables exist (none until the tenant's first write). */
export function hasSchema(sql: SqlStorage): boolean {
  return sql.exec(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'keys'`).toArray().length > 0;
}

/** Creates the tables. Idempotent. */
export function migrate(sql: SqlStorage): void {
  for (const statement of MIGRATIONS) sql.exec(statement);
}
