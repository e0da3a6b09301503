/**
 * The pool object's SQLite schema, its versioned migrations, and the row types
 * read from it. Everything the pool knows lives here, so that a restarted
 * object rebuilds its whole state from these tables (see recovery in machine.ts).
 *
 * Migrations are append-only: never edit a shipped step, add a new one.
 */

export type SessionState = "launching" | "idle" | "leased" | "resetting" | "closing" | "closed" | "failed";
export type LeaseStatus = "waiting" | "active" | "released" | "expired" | "failed";

export const SESSION_STATES: readonly SessionState[] = ["launching", "idle", "leased", "resetting", "closing", "closed", "failed"];
export const LEASE_STATUSES: readonly LeaseStatus[] = ["waiting", "active", "released", "expired", "failed"];

/** States that hold a slot of the pool's capacity (maxSessions). */
export const LIVE_SESSION_STATES = ["launching", "idle", "leased", "resetting", "closing"] as const;

/** One browser session slot. `id` is local; `session_id` is the platform's id once launched. */
export type SessionRow = {
  id: number;
  session_id: string | null;
  state: SessionState;
  /**
   * launching: the waiting lease it is launched for (null = warm target);
   * resetting: the waiting lease it is checked for (null = cleaning after a release);
   * leased: the active lease.
   */
  lease_id: string | null;
  /** launching: launch timeout; idle: idle timeout or keep-alive ping due; leased: keep-alive ping due; resetting/closing: give-up time. */
  deadline: number | null;
  created_at: number;
  launched_at: number | null;
  ended_at: number | null;
  end_reason: string | null;
  /** How many leases this session has served (0 = fresh). */
  uses: number;
  /** Close attempts made so far while closing (for backoff and give-up). */
  attempts: number;
  /** What the account's session registry knows (see src/registry): 0 = to be told, 1 = registered, 2 = nothing more to tell. */
  registered: number;
  /** When the browser last proved alive (launched, reset, checked, pinged, probed); null = never checked. */
  alive_at: number | null;
  /** When the platform first failed to show it (suspect until a probe or a second list decides); null = seen. */
  missed_at: number | null;
};

export type LeaseRow = {
  id: string;
  /** Arrival order; waiters of equal rank are served by ascending seq (FIFO). */
  seq: number;
  status: LeaseStatus;
  session_row: number | null;
  session_id: string | null;
  owner: string;
  labels: string;
  ttl_ms: number;
  created_at: number;
  /** waiting: when the caller stops waiting. */
  wait_deadline: number | null;
  granted_at: number | null;
  expires_at: number | null;
  ended_at: number | null;
  end_reason: string | null;
  idempotency_key: string | null;
  /** SHA-256 (hex) of the lease's connect token; the token itself is never stored. */
  token_hash: string | null;
  /** When a client first connected to the lease's browser; null = never (see connectWithinSeconds). */
  connected_at: number | null;
  /** 0 high, 1 normal, 2 low. */
  priority: number;
  /** Queue order: created_at shifted by the priority (machine.ts, PRIORITY_AGEING_MS); ties by seq. */
  rank: number;
  /** The waitSeconds asked for, in ms: a caller's wait returns to it when a launch it waited for is deferred. */
  wait_ms: number;
  /** 1: the lease's screen is recorded while it is active (src/recorder). */
  record: number;
  /** The tenant's profile the browser's state is saved to when the lease ends (src/profiles), or null. */
  persist_profile: string | null;
  /** SHA-256 of the token of the lease's own viewer URL (the `viewerUrl` of its 201); further viewers are rows of `viewers`. */
  viewer_hash: string | null;
};

/** A CDP socket the Worker is proxying for a lease (registered before it opens, removed once both ends are closed). */
export type ConnectionRow = {
  id: string;
  lease_id: string;
  opened_at: number;
  /** "client": the lessee's CDP connection; "viewer": a live viewer's (its own budget, never counts as the lessee connecting). */
  kind: "client" | "viewer";
};

/** A viewer URL handed out for a lease: its token's hash, and whether it may drive the page. */
export type ViewerRow = {
  token_hash: string;
  lease_id: string;
  interactive: number;
  created_at: number;
};

export type JournalRow = {
  seq: number;
  at: number;
  event: string;
  lease_id: string | null;
  session_row: number | null;
  detail: string | null;
};

type Migration = { version: number; statements: string[] };

const MIGRATIONS: Migration[] = [
  {
    version: 1,
    statements: [
      `CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`,
      `CREATE TABLE sessions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        session_id TEXT UNIQUE,
        state TEXT NOT NULL CHECK (state IN ('launching','idle','leased','resetting','closing','closed','failed')),
        lease_id TEXT,
        deadline INTEGER,
        created_at INTEGER NOT NULL,
        launched_at INTEGER,
        ended_at INTEGER,
        end_reason TEXT,
        uses INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0
      )`,
      `CREATE INDEX sessions_by_state ON sessions (state, deadline)`,
      `CREATE TABLE leases (
        id TEXT PRIMARY KEY,
        seq INTEGER NOT NULL UNIQUE,
        status TEXT NOT NULL CHECK (status IN ('waiting','active','released','expired','failed')),
        session_row INTEGER REFERENCES sessions (id),
        session_id TEXT,
        owner TEXT NOT NULL,
        labels TEXT NOT NULL DEFAULT '{}',
        ttl_ms INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        wait_deadline INTEGER,
        granted_at INTEGER,
        expires_at INTEGER,
        ended_at INTEGER,
        end_reason TEXT,
        idempotency_key TEXT
      )`,
      `CREATE INDEX leases_by_status ON leases (status, seq)`,
      `CREATE INDEX leases_active_expiry ON leases (expires_at) WHERE status = 'active'`,
      `CREATE INDEX leases_waiting_deadline ON leases (wait_deadline) WHERE status = 'waiting'`,
      `CREATE INDEX leases_by_session ON leases (session_row, status)`,
      `CREATE TABLE idempotency (
        key TEXT PRIMARY KEY,
        lease_id TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        created_at INTEGER NOT NULL
      )`,
      `CREATE INDEX idempotency_by_age ON idempotency (created_at)`,
      `CREATE TABLE journal (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        event TEXT NOT NULL,
        lease_id TEXT,
        session_row INTEGER,
        detail TEXT
      )`,
      `CREATE INDEX journal_by_lease ON journal (lease_id) WHERE lease_id IS NOT NULL`,
    ],
  },
  {
    version: 2,
    statements: [
      `ALTER TABLE leases ADD COLUMN token_hash TEXT`,
      `CREATE TABLE connections (
        id TEXT PRIMARY KEY,
        lease_id TEXT NOT NULL,
        opened_at INTEGER NOT NULL
      )`,
      `CREATE INDEX connections_by_lease ON connections (lease_id)`,
    ],
  },
  {
    version: 3,
    statements: [
      `ALTER TABLE sessions ADD COLUMN registered INTEGER NOT NULL DEFAULT 0`,
      `CREATE INDEX sessions_unregistered ON sessions (id) WHERE registered = 0 AND session_id IS NOT NULL`,
    ],
  },
  {
    // O(1) counts (a pool with 10,000 waiters must not count 10,000 rows per
    // request) and indexes for pruning ended leases and sessions by age.
    version: 4,
    statements: [
      `CREATE TABLE tallies (
        kind TEXT NOT NULL CHECK (kind IN ('session','lease')),
        state TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (kind, state)
      ) WITHOUT ROWID`,
      ...SESSION_STATES.map(
        (state) => `INSERT INTO tallies (kind, state, n) VALUES ('session', '${state}', (SELECT COUNT(*) FROM sessions WHERE state = '${state}'))`,
      ),
      ...LEASE_STATUSES.map(
        (status) => `INSERT INTO tallies (kind, state, n) VALUES ('lease', '${status}', (SELECT COUNT(*) FROM leases WHERE status = '${status}'))`,
      ),
      ...tallyTriggers("sessions", "session", "state"),
      ...tallyTriggers("leases", "lease", "status"),
      `CREATE INDEX leases_ended ON leases (ended_at) WHERE status IN ('released','expired','failed')`,
      `CREATE INDEX sessions_ended ON sessions (ended_at) WHERE state IN ('closed','failed')`,
    ],
  },
  {
    // Metrics (src/pool/metrics.ts), written by the transitions that cause them.
    version: 5,
    statements: [
      `CREATE TABLE counters (name TEXT NOT NULL, labels TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (name, labels)) WITHOUT ROWID`,
      `CREATE TABLE histograms (
        name TEXT NOT NULL,
        labels TEXT NOT NULL,
        le TEXT NOT NULL,
        n INTEGER NOT NULL,
        sum REAL NOT NULL,
        PRIMARY KEY (name, labels, le)
      ) WITHOUT ROWID`,
    ],
  },
  {
    // Hardening against the platform's own failures: liveness before a borrow
    // (alive_at), confirmation before an observation destroys (missed_at),
    // leases nobody connects to (connected_at), and the registry told of closes
    // and lost launches (registered 2 = done).
    version: 6,
    statements: [
      `ALTER TABLE sessions ADD COLUMN alive_at INTEGER`,
      `ALTER TABLE sessions ADD COLUMN missed_at INTEGER`,
      `ALTER TABLE leases ADD COLUMN connected_at INTEGER`,
      // Leases granted before this version count as connected: they are not ended for it.
      `UPDATE leases SET connected_at = granted_at WHERE status = 'active'`,
      // History needs nothing more from the registry.
      `UPDATE sessions SET registered = 2 WHERE state IN ('closed', 'failed')`,
      `CREATE INDEX leases_unconnected ON leases (granted_at) WHERE status = 'active' AND connected_at IS NULL`,
      `CREATE INDEX sessions_unforgotten ON sessions (id) WHERE registered = 1 AND state IN ('closed', 'failed')`,
      `CREATE INDEX sessions_lost ON sessions (id)
         WHERE registered = 0 AND session_id IS NULL AND state = 'failed' AND end_reason IN ('launch_timeout', 'object_restarted')`,
    ],
  },
  {
    // The pool's own lifecycle is a state of the machine (meta 'lifecycle':
    // created or deleting), instead of a 'created_at' row and a 'deleting' flag.
    version: 7,
    statements: [
      `INSERT INTO meta (key, value)
         SELECT 'lifecycle', CASE WHEN EXISTS (SELECT 1 FROM meta WHERE key = 'deleting' AND value = '1') THEN 'deleting' ELSE 'created' END
         WHERE EXISTS (SELECT 1 FROM meta WHERE key = 'created_at')
       ON CONFLICT (key) DO NOTHING`,
      `DELETE FROM meta WHERE key = 'deleting'`,
    ],
  },
  {
    // Priority with ageing: waiters are served by rank (arrival time moved
    // earlier for high priority, later for low), then arrival order.
    version: 8,
    statements: [
      `ALTER TABLE leases ADD COLUMN priority INTEGER NOT NULL DEFAULT 1`,
      `ALTER TABLE leases ADD COLUMN rank INTEGER NOT NULL DEFAULT 0`,
      `ALTER TABLE leases ADD COLUMN wait_ms INTEGER NOT NULL DEFAULT 0`,
      `UPDATE leases SET rank = created_at`,
      `CREATE INDEX leases_waiting_rank ON leases (rank, seq) WHERE status = 'waiting'`,
    ],
  },
  {
    // Live viewers: a viewer token per URL handed out (stored hashed, as connect
    // tokens), and which proxied sockets are viewers rather than the lessee's.
    version: 9,
    statements: [
      `CREATE TABLE viewers (
        token_hash TEXT PRIMARY KEY,
        lease_id TEXT NOT NULL,
        interactive INTEGER NOT NULL,
        created_at INTEGER NOT NULL
      ) WITHOUT ROWID`,
      `CREATE INDEX viewers_by_lease ON viewers (lease_id)`,
      `ALTER TABLE connections ADD COLUMN kind TEXT NOT NULL DEFAULT 'client'`,
    ],
  },
  {
    // Recordings: whether a lease's screencast is kept (src/recorder).
    version: 10,
    statements: [`ALTER TABLE leases ADD COLUMN record INTEGER NOT NULL DEFAULT 0`],
  },
  {
    // Profiles: the profile a lease's browser state is saved to when it ends (src/profiles).
    version: 11,
    statements: [`ALTER TABLE leases ADD COLUMN persist_profile TEXT`],
  },
  {
    // The lease's own viewer token in its row: no `viewers` row (and index entry) written per acquire.
    // Leases granted before keep theirs in `viewers`, which is still read.
    version: 12,
    statements: [`ALTER TABLE leases ADD COLUMN viewer_hash TEXT`],
  },
];

/**
 * Triggers that keep `tallies` equal to the number of rows of `table` in each
 * `column` value, inside the statement that changes the row (so inside its
 * transaction: a rolled-back transition rolls its tallies back too).
 */
function tallyTriggers(table: string, kind: string, column: string): string[] {
  const bump = (row: "NEW" | "OLD", delta: string) => `UPDATE tallies SET n = n ${delta} WHERE kind = '${kind}' AND state = ${row}.${column};`;
  return [
    `CREATE TRIGGER ${table}_tally_insert AFTER INSERT ON ${table} BEGIN ${bump("NEW", "+ 1")} END`,
    `CREATE TRIGGER ${table}_tally_update AFTER UPDATE OF ${column} ON ${table} WHEN OLD.${column} != NEW.${column}
       BEGIN ${bump("OLD", "- 1")} ${bump("NEW", "+ 1")} END`,
    `CREATE TRIGGER ${table}_tally_delete AFTER DELETE ON ${table} BEGIN ${bump("OLD", "- 1")} END`,
  ];
}

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

/** Whether this object has the pool's tables (they are made by the pool's creation, never by a read). */
export function hasSchema(sql: SqlStorage): boolean {
  return sql.exec(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'`).toArray().length > 0;
}

/** Brings the schema up to date: at the pool's creation, and in the constructor of a pool that has tables. */
export function migrate(storage: DurableObjectStorage): void {
  const sql = storage.sql;
  storage.transactionSync(() => {
    sql.exec(`CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`);
    const row = sql.exec<{ version: number }>(`SELECT version FROM schema_version`).toArray()[0];
    let current = row?.version ?? 0;
    if (!row) sql.exec(`INSERT INTO schema_version (version) VALUES (0)`);
    for (const step of MIGRATIONS) {
      if (step.version <= current) continue;
      for (const statement of step.statements) sql.exec(statement);
      current = step.version;
    }
    sql.exec(`UPDATE schema_version SET version = ?`, current);
  });
}
