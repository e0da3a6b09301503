/**
 * SessionRegistry: one Durable Object per account (name "registry") that
 * knows every browser session the broker's pools launched, and closes the
 * browsers the broker launched and lost: a pool's launch whose outcome it
 * never learned (the object restarted mid-launch, or the launch passed its
 * deadline) may have started a browser no pool records, holding one of the
 * account's concurrent browsers until the platform's keep-alive kills it.
 * docs/registry.md has the rules; in short:
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
 * Every platform call it awaits has a deadline, and the alarm re-arms itself
 * whatever the sweep did.
 */
import { DurableObject } from "cloudflare:workers";
import { type BrowserProvider, KEEP_ALIVE_MS, type LiveSession } from "../browser/provider";
import { message, withDeadline } from "../deadline";
import { log } from "../log";
import { providerFactory } from "../browser/factory";

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
/** A deleted pool's leftover browsers are looked for this soon after `untrackPool`. */
export const ABANDONED_SWEEP_DELAY_MS = 1_000;

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

/** A launch a pool started and never learned the outcome of: when it may have started a browser (the pool's clock). */
export interface LostLaunchWindow {
  startedAt: number;
  endedAt: number;
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

export interface RegistryStats {
  tracked: number;
  orphansClosedTotal: number;
  lastSweep: SweepReport | null;
}

/** A pool as the registry knows it: enough to list it and to reach its object. */
export interface PoolEntry {
  tenant: string;
  pool: string;
  createdAt: string;
}

export interface PoolPage {
  pools: PoolEntry[];
  /** Pass back as `cursor` for the next page; null on the last. */
  nextCursor: string | null;
}

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

type Registration = {
  session_id: string;
  pool: string;
  registered_at: number;
  misses: number;
  missed_at: number | null;
  abandoned_at: number | null;
};

type WindowRow = {
  pool: string;
  started_at: number;
  ended_at: number;
};

export class SessionRegistry extends DurableObject<Env> {
  private provider: BrowserProvider;
  clock: () => number = providerFactory.now ?? (() => Date.now());
  /** Tests shorten these to sweep real browsers, or a hung list, without waiting minutes. */
  graceMs = ORPHAN_GRACE_MS;
  listTimeoutMs = LIST_TIMEOUT_MS;
  closeTimeoutMs = CLOSE_TIMEOUT_MS;
  /** From the ORPHAN_POLICY var; tests set it directly. */
  policy: OrphanPolicy;
  private sweeping: Promise<SweepReport> | undefined;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.provider = providerFactory.create(env);
    this.policy = orphanPolicy(env.ORPHAN_POLICY);
    ctx.blockConcurrencyWhile(async () => {
      const sql = ctx.storage.sql;
      for (const statement of MIGRATIONS) sql.exec(statement);
      const have = new Set(sql.exec<{ name: string }>(`PRAGMA table_info(sessions)`).toArray().map((c) => c.name));
      for (const [name, definition] of SESSION_COLUMNS) {
        if (!have.has(name)) sql.exec(`ALTER TABLE sessions ADD COLUMN ${name} ${definition}`);
      }
    });
  }

  /** A pool launched `sessionId`. Idempotent. */
  async track(sessionId: string, pool: string): Promise<void> {
    this.ctx.storage.sql.exec(
      `INSERT INTO sessions (session_id, pool, registered_at) VALUES (?, ?, ?) ON CONFLICT (session_id) DO NOTHING`,
      sessionId,
      pool,
      this.clock(),
    );
    await this.armWithin(SWEEP_INTERVAL_MS);
  }

  /** A pool recorded `sessionId` closed: the registry stops tracking it. Idempotent. */
  async forget(sessionId: string): Promise<void> {
    this.ctx.storage.sql.exec(`DELETE FROM sessions WHERE session_id = ?`, sessionId);
  }

  /**
   * `pool` started these launches and never learned their outcome (the object
   * restarted mid-launch, or the launch passed its deadline and never
   * answered); each may have left a browser nobody records. Each window lets
   * a sweep close at most one unregistered, unconnected session that started
   * within it (± LAUNCH_SKEW_MS) once older than the grace. Idempotent per
   * pool and window; windows whose browsers the keep-alive has killed already
   * are ignored.
   */
  async lostLaunches(pool: string, windows: LostLaunchWindow[]): Promise<void> {
    const now = this.clock();
    let recorded = 0;
    for (const window of windows) {
      const { startedAt, endedAt } = window;
      if (!Number.isFinite(startedAt) || !Number.isFinite(endedAt) || endedAt < startedAt) {
        log("lost_launch_invalid", { pool, startedAt, endedAt });
        continue;
      }
      if (endedAt + KEEP_ALIVE_MS < now) continue;
      recorded += this.ctx.storage.sql.exec(
        `INSERT INTO lost_launches (pool, started_at, ended_at, recorded_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`,
        pool,
        startedAt,
        endedAt,
        now,
      ).rowsWritten;
    }
    if (recorded > 0) log("lost_launches_recorded", { pool, windows: recorded });
    await this.armWithin(SWEEP_INTERVAL_MS);
  }

  /**
   * Deprecated: what pool objects of earlier versions call after losing a
   * launch (kept for them during a deploy or after a rollback; current pools
   * report `lostLaunches`). Keeps the registry sweeping until such a browser
   * would have died anyway; closes nothing by itself.
   */
  async expectOrphans(): Promise<void> {
    const until = this.clock() + KEEP_ALIVE_MS;
    const current = Number(this.meta("watch_until") ?? 0);
    if (until > current) this.setMeta("watch_until", String(until));
    await this.armWithin(SWEEP_INTERVAL_MS);
  }

  /**
   * A pool object was created (or came back). Idempotent; the pool retries
   * from its alarm until this succeeds. A pool that comes back after an
   * interrupted deletion (same creation time) claims its abandoned sessions
   * back, so they are not closed under it; a new pool of the same name
   * (created after the abandonment) does not.
   */
  async trackPool(tenant: string, pool: string, createdAt: number): Promise<void> {
    const sql = this.ctx.storage.sql;
    sql.exec(`INSERT INTO pools (tenant, pool, created_at) VALUES (?, ?, ?) ON CONFLICT (tenant, pool) DO NOTHING`, tenant, pool, createdAt);
    sql.exec(
      `UPDATE sessions SET abandoned_at = NULL WHERE pool = ? AND abandoned_at IS NOT NULL AND abandoned_at > ? AND registered_at >= ?`,
      `${tenant}/${pool}`,
      createdAt,
      createdAt,
    );
  }

  /**
   * A pool was deleted: it is no longer listed, and the sessions it registered
   * are marked abandoned. A sweep soon after closes those still running (a
   * close that failed during the deletion) and forgets them. Idempotent.
   */
  async untrackPool(tenant: string, pool: string): Promise<void> {
    const sql = this.ctx.storage.sql;
    sql.exec(`DELETE FROM pools WHERE tenant = ? AND pool = ?`, tenant, pool);
    sql.exec(`UPDATE sessions SET abandoned_at = ? WHERE pool = ? AND abandoned_at IS NULL`, this.clock(), `${tenant}/${pool}`);
    const abandoned = sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM sessions WHERE pool = ? AND abandoned_at IS NOT NULL`, `${tenant}/${pool}`).one().n;
    if (abandoned > 0) await this.armWithin(ABANDONED_SWEEP_DELAY_MS);
  }

  /** A tenant object was written to by an operator (keys, quota). Idempotent. */
  async trackTenant(tenant: string, createdAt: number): Promise<void> {
    this.ctx.storage.sql.exec(`INSERT INTO tenants (tenant, created_at) VALUES (?, ?) ON CONFLICT (tenant) DO NOTHING`, tenant, createdAt);
  }

  /** Tenant names in order, those with keys or a quota and those with pools; the cursor is the last name. */
  async listTenants(options: { cursor?: string; limit: number }): Promise<{ tenants: string[]; nextCursor: string | null }> {
    const rows = this.ctx.storage.sql
      .exec<{ tenant: string }>(
        `SELECT tenant FROM tenants WHERE tenant > ?1 UNION SELECT DISTINCT tenant FROM pools WHERE tenant > ?1 ORDER BY tenant LIMIT ?2`,
        options.cursor ?? "",
        options.limit + 1,
      )
      .toArray();
    const page = rows.slice(0, options.limit).map((r) => r.tenant);
    return { tenants: page, nextCursor: rows.length > options.limit ? page[page.length - 1]! : null };
  }

  /**
   * Pools in (tenant, pool) order, one tenant's or everyone's. The cursor is
   * the last entry's "tenant/pool" (pool names cannot contain "/").
   */
  async listPools(options: { tenant?: string; cursor?: string; limit: number }): Promise<PoolPage> {
    const [afterTenant, afterPool] = options.cursor?.includes("/") ? (options.cursor.split("/", 2) as [string, string]) : ["", ""];
    const sql = this.ctx.storage.sql;
    type Row = { tenant: string; pool: string; created_at: number };
    const rows =
      options.tenant === undefined
        ? sql
            .exec<Row>(`SELECT tenant, pool, created_at FROM pools WHERE (tenant, pool) > (?, ?) ORDER BY tenant, pool LIMIT ?`, afterTenant, afterPool, options.limit + 1)
            .toArray()
        : sql
            .exec<Row>(
              `SELECT tenant, pool, created_at FROM pools WHERE tenant = ? AND pool > ? ORDER BY pool LIMIT ?`,
              options.tenant,
              afterTenant === options.tenant ? afterPool : "",
              options.limit + 1,
            )
            .toArray();
    const page = rows.slice(0, options.limit);
    const last = page[page.length - 1];
    return {
      pools: page.map((r) => ({ tenant: r.tenant, pool: r.pool, createdAt: new Date(r.created_at).toISOString() })),
      nextCursor: rows.length > options.limit && last ? `${last.tenant}/${last.pool}` : null,
    };
  }

  async stats(): Promise<RegistryStats> {
    const last = this.meta("last_sweep");
    return {
      tracked: this.ctx.storage.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM sessions`).one().n,
      orphansClosedTotal: Number(this.meta("orphans_closed") ?? 0),
      lastSweep: last ? (JSON.parse(last) as SweepReport) : null,
    };
  }

  /** Compares the platform's live sessions with the registrations and lost launches; closes what the rules allow. One sweep at a time. */
  async sweep(): Promise<SweepReport> {
    this.sweeping ??= this.sweepOnce().finally(() => {
      this.sweeping = undefined;
    });
    return this.sweeping;
  }

  override async alarm(): Promise<void> {
    try {
      await this.sweep();
    } catch (error) {
      log("registry_sweep_failed", { error: message(error) });
    } finally {
      // Whatever the sweep did, the next one is armed while there is anything to watch.
      if (this.watching(this.clock())) await this.armWithin(SWEEP_INTERVAL_MS);
    }
  }

  useProvider(provider: BrowserProvider): void {
    this.provider = provider;
  }

  private async sweepOnce(): Promise<SweepReport> {
    const sql = this.ctx.storage.sql;
    const policy = this.policy;
    const listedAt = this.clock();
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
      live = await withDeadline(this.provider.list(), this.listTimeoutMs, "the platform's session list");
    } catch (error) {
      log("registry_list_failed", { error: message(error) });
      report.listFailed = true;
      return this.finish(report);
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
      return this.finish(report);
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
    const old = unknown.filter((s) => s.startTime <= listedAt - this.graceMs);
    report.young = unknown.length - old.length;
    const windows = this.activeWindows(listedAt);
    const claims = policy === "launches" ? claim(windows, old.filter((s) => !s.connected)) : new Map<string, WindowRow>();
    const orphans = policy === "all" ? old : policy === "launches" ? old.filter((s) => claims.has(s.sessionId)) : [];
    report.foreign = old.length - orphans.length;

    await Promise.all([
      ...abandonedLive.map(async (sessionId) => {
        if (await this.close(sessionId, "abandoned")) {
          sql.exec(`DELETE FROM sessions WHERE session_id = ?`, sessionId);
          report.abandonedClosed += 1;
        }
      }),
      ...orphans.map(async (orphan) => {
        const window = claims.get(orphan.sessionId);
        if (await this.close(orphan.sessionId, "orphan", { ageMs: listedAt - orphan.startTime, policy, lostBy: window?.pool })) {
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
    if (report.young > 0 && (policy === "all" || (policy === "launches" && windows.length > 0))) await this.armWithin(this.graceMs + 1_000);
    return this.finish(report);
  }

  /** Closes one browser within the close deadline; true if it is gone. Never throws. */
  private async close(sessionId: string, kind: "orphan" | "abandoned", fields: Record<string, unknown> = {}): Promise<boolean> {
    try {
      await withDeadline(this.provider.close(sessionId), this.closeTimeoutMs, `closing ${sessionId}`);
      log(`${kind}_closed`, { sessionId, ...fields });
      return true;
    } catch (error) {
      log(`${kind}_close_failed`, { sessionId, error: message(error), ...fields });
      return false;
    }
  }

  private finish(report: SweepReport): SweepReport {
    report.tracked = this.ctx.storage.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM sessions`).one().n;
    if (report.orphansClosed > 0) this.setMeta("orphans_closed", String(Number(this.meta("orphans_closed") ?? 0) + report.orphansClosed));
    this.setMeta("last_sweep", JSON.stringify(report));
    return report;
  }

  /** Lost-launch windows that have not claimed a browser yet, oldest first. */
  private activeWindows(now: number): WindowRow[] {
    return this.ctx.storage.sql
      .exec<WindowRow>(
        `SELECT pool, started_at, ended_at FROM lost_launches WHERE claimed_session IS NULL AND ended_at + ? >= ? ORDER BY started_at, pool, ended_at`,
        KEEP_ALIVE_MS,
        now,
      )
      .toArray();
  }

  /** Anything a later sweep could act on: registrations, unclaimed lost launches, a deprecated `expectOrphans` watch. */
  private watching(now: number): boolean {
    const sessions = this.ctx.storage.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM sessions`).one().n;
    return sessions > 0 || this.activeWindows(now).length > 0 || Number(this.meta("watch_until") ?? 0) > now;
  }

  /**
   * Makes sure a sweep runs within `ms`. Never throws: if the alarm cannot be
   * read or set, that is logged and the next call or alarm tries again.
   */
  private async armWithin(ms: number): Promise<void> {
    const now = this.clock();
    const at = now + ms;
    try {
      const current = await this.ctx.storage.getAlarm();
      // An alarm in the past is the one running now (or one about to): it will not sweep again.
      if (current === null || current <= now || current > at) await this.ctx.storage.setAlarm(at);
    } catch (error) {
      log("registry_arm_failed", { error: message(error), at });
    }
  }

  private meta(key: string): string | undefined {
    return this.ctx.storage.sql.exec<{ value: string }>(`SELECT value FROM meta WHERE key = ?`, key).toArray()[0]?.value;
  }

  private setMeta(key: string, value: string): void {
    this.ctx.storage.sql.exec(`INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value);
  }
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
