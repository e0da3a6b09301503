/**
 * The governor's SQLite tables, their row types, and the reads and writes of
 * its one `account` row (limits set by operators, what the platform reported,
 * the launch bucket, the breaker). Everything the governor decides with lives
 * here, so an eviction or restart loses nothing but caches.
 */
import type { Breaker } from "./breaker";
import type { Bucket } from "./bucket";

const MIGRATIONS = [
  // One row per browser the account runs (or is launching), granted to a pool.
  // expires_at: the permit ends by itself unless its pool renews it (acquire again, sync).
  `CREATE TABLE IF NOT EXISTS permits (
     permit_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, pool TEXT NOT NULL, kind TEXT NOT NULL,
     granted_at INTEGER NOT NULL, expires_at INTEGER NOT NULL)`,
  `CREATE INDEX IF NOT EXISTS permits_by_pool ON permits (tenant, pool)`,
  `CREATE INDEX IF NOT EXISTS permits_by_expiry ON permits (expires_at)`,
  // Launches a caller waits for that were refused: the tenant's unmet demand, until it goes stale.
  `CREATE TABLE IF NOT EXISTS demand (permit_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, pool TEXT NOT NULL, at INTEGER NOT NULL)`,
  `CREATE INDEX IF NOT EXISTS demand_by_at ON demand (at)`,
  // The account as a whole: exactly one row (id 1).
  `CREATE TABLE IF NOT EXISTS account (
     id INTEGER PRIMARY KEY CHECK (id = 1),
     max_concurrent INTEGER, launches_per_second REAL,
     platform_max INTEGER, platform_at INTEGER,
     blocked_until INTEGER NOT NULL DEFAULT 0,
     tokens REAL, tokens_at INTEGER,
     breaker_streak INTEGER NOT NULL DEFAULT 0, breaker_until INTEGER, breaker_opens INTEGER NOT NULL DEFAULT 0, breaker_probe TEXT)`,
  `INSERT INTO account (id) VALUES (1) ON CONFLICT (id) DO NOTHING`,
];

/** Creates the tables and the account row. Idempotent. */
export function migrate(sql: SqlStorage): void {
  for (const statement of MIGRATIONS) sql.exec(statement);
}

export type PermitKind = "demand" | "warm";

/** A row of `permits`. `adopted`: listed by a pool's sync or settled launched without a grant the governor remembers. */
export type PermitRow = {
  permit_id: string;
  tenant: string;
  pool: string;
  kind: PermitKind | "adopted";
  granted_at: number;
  expires_at: number;
};

/** The `account` row. Null limits: the Worker vars' values. */
export type AccountRow = {
  max_concurrent: number | null;
  launches_per_second: number | null;
  platform_max: number | null;
  platform_at: number | null;
  blocked_until: number;
  tokens: number | null;
  tokens_at: number | null;
  breaker_streak: number;
  breaker_until: number | null;
  breaker_opens: number;
  breaker_probe: string | null;
};

export function readAccount(sql: SqlStorage): AccountRow {
  return sql.exec<AccountRow>(
    `SELECT max_concurrent, launches_per_second, platform_max, platform_at, blocked_until, tokens, tokens_at,
            breaker_streak, breaker_until, breaker_opens, breaker_probe FROM account WHERE id = 1`,
  ).one();
}

export function readBreaker(row: AccountRow): Breaker {
  return { streak: row.breaker_streak, until: row.breaker_until, opens: row.breaker_opens, probe: row.breaker_probe };
}

export function writeBreaker(sql: SqlStorage, breaker: Breaker): void {
  sql.exec(
    `UPDATE account SET breaker_streak = ?, breaker_until = ?, breaker_opens = ?, breaker_probe = ? WHERE id = 1`,
    breaker.streak,
    breaker.until,
    breaker.opens,
    breaker.probe,
  );
}

/** The stored bucket, or null if none was written yet (the governor starts full). */
export function readBucket(row: AccountRow): Bucket | null {
  return row.tokens === null || row.tokens_at === null ? null : { tokens: row.tokens, at: row.tokens_at };
}

export function writeBucket(sql: SqlStorage, bucket: Bucket): void {
  sql.exec(`UPDATE account SET tokens = ?, tokens_at = ? WHERE id = 1`, bucket.tokens, bucket.at);
}

export function writeOverrides(sql: SqlStorage, patch: { maxConcurrentSessions?: number | null; launchesPerSecond?: number | null }): void {
  if (patch.maxConcurrentSessions !== undefined) sql.exec(`UPDATE account SET max_concurrent = ? WHERE id = 1`, patch.maxConcurrentSessions);
  if (patch.launchesPerSecond !== undefined) sql.exec(`UPDATE account SET launches_per_second = ? WHERE id = 1`, patch.launchesPerSecond);
}

/** The platform refused a launch for its limits: no grant before `until`; `platformMax`, if it said, is the concurrency it allows. */
export function writeLimited(sql: SqlStorage, until: number, platformMax: number | undefined, now: number): void {
  sql.exec(`UPDATE account SET blocked_until = MAX(blocked_until, ?) WHERE id = 1`, until);
  if (platformMax !== undefined) sql.exec(`UPDATE account SET platform_max = ?, platform_at = ? WHERE id = 1`, platformMax, now);
}

export function forgetPlatformMax(sql: SqlStorage): void {
  sql.exec(`UPDATE account SET platform_max = NULL, platform_at = NULL WHERE id = 1`);
}
