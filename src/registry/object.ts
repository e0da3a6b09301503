/**
 * SessionRegistry: one Durable Object per account (name "registry") that
 * knows every browser session any pool launched, and closes the ones nobody
 * knows: orphans. A pool that crashes between the platform starting a browser
 * and recording its id leaves such a browser running until the platform's
 * keep-alive (10 minutes) kills it, holding one of the account's concurrent
 * browsers meanwhile. Pool reconciliation cannot close it, because the binding
 * lists the whole account's sessions and a pool cannot tell an orphan from
 * another pool's browser; the registry can.
 *
 * Protocol: a pool records a session in its own SQL first, then registers it
 * here, retrying from its alarm until that succeeds (sessions.registered). A
 * live session the registry does not know is closed only once it is older
 * than ORPHAN_GRACE_MS, comfortably longer than a pool takes to register,
 * so a browser some pool is using is never mistaken for an orphan.
 */
import { DurableObject } from "cloudflare:workers";
import type { BrowserProvider } from "../browser/provider";
import { log } from "../log";
import { KEEP_ALIVE_MS } from "../pool/config";
import { providerFactory } from "../pool/object";

/** A live session unknown to every pool is an orphan once it is this old. */
export const ORPHAN_GRACE_MS = 3 * 60_000;
/** How often the registry sweeps while it has anything to watch. */
export const SWEEP_INTERVAL_MS = 60_000;

export interface SweepReport {
  at: string;
  live: number;
  tracked: number;
  /** Live sessions no pool registered, older than the grace: closed now. */
  orphansClosed: number;
  /** Registrations of sessions the platform no longer runs: forgotten. */
  forgotten: number;
  /** Unknown live sessions still within the grace (a registration may be on its way). */
  young: number;
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
];

export class SessionRegistry extends DurableObject<Env> {
  private provider: BrowserProvider;
  clock: () => number = providerFactory.now ?? (() => Date.now());
  /** Tests shorten this to sweep real browsers without waiting minutes. */
  graceMs = ORPHAN_GRACE_MS;
  private sweeping: Promise<SweepReport> | undefined;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.provider = providerFactory.create(env);
    ctx.blockConcurrencyWhile(async () => {
      for (const statement of MIGRATIONS) ctx.storage.sql.exec(statement);
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

  /** A pool lost track of a launch (restart mid-launch): keep sweeping until its browser would have died anyway. */
  async expectOrphans(): Promise<void> {
    const until = this.clock() + KEEP_ALIVE_MS;
    const current = Number(this.meta("watch_until") ?? 0);
    if (until > current) this.setMeta("watch_until", String(until));
    await this.armWithin(SWEEP_INTERVAL_MS);
  }

  /** A pool object was created. Idempotent; the pool retries from its alarm until this succeeds. */
  async trackPool(tenant: string, pool: string, createdAt: number): Promise<void> {
    this.ctx.storage.sql.exec(
      `INSERT INTO pools (tenant, pool, created_at) VALUES (?, ?, ?) ON CONFLICT (tenant, pool) DO NOTHING`,
      tenant,
      pool,
      createdAt,
    );
  }

  /**
   * A pool was deleted: it is no longer listed, and the sessions it registered
   * are forgotten, so any of its browsers still running (a close that failed)
   * is an orphan to the next sweep and gets closed. Idempotent.
   */
  async untrackPool(tenant: string, pool: string): Promise<void> {
    this.ctx.storage.sql.exec(`DELETE FROM pools WHERE tenant = ? AND pool = ?`, tenant, pool);
    const forgotten = this.ctx.storage.sql.exec(`DELETE FROM sessions WHERE pool = ?`, `${tenant}/${pool}`).rowsWritten;
    if (forgotten > 0) await this.expectOrphans();
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

  /** Compares the platform's live sessions with the registrations; closes orphans. One sweep at a time. */
  async sweep(): Promise<SweepReport> {
    this.sweeping ??= this.sweepOnce().finally(() => {
      this.sweeping = undefined;
    });
    return this.sweeping;
  }

  override async alarm(): Promise<void> {
    await this.sweep();
    const sql = this.ctx.storage.sql;
    const tracked = sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM sessions`).one().n;
    if (tracked > 0 || Number(this.meta("watch_until") ?? 0) > this.clock()) {
      await this.ctx.storage.setAlarm(this.clock() + SWEEP_INTERVAL_MS);
    }
  }

  useProvider(provider: BrowserProvider): void {
    this.provider = provider;
  }

  private async sweepOnce(): Promise<SweepReport> {
    const sql = this.ctx.storage.sql;
    const listedAt = this.clock();
    const live = await this.provider.list();
    const liveIds = new Set(live.map((s) => s.sessionId));
    const known = new Map(
      sql.exec<{ session_id: string; registered_at: number }>(`SELECT session_id, registered_at FROM sessions`).toArray().map((r) => [r.session_id, r.registered_at]),
    );
    const orphans = live.filter((s) => !known.has(s.sessionId) && s.startTime <= listedAt - this.graceMs);
    const young = live.filter((s) => !known.has(s.sessionId) && s.startTime > listedAt - this.graceMs).length;
    let forgotten = 0;
    for (const [sessionId, registeredAt] of known) {
      // Registered before the list was taken and no longer running: the pool closed it (or it died).
      if (!liveIds.has(sessionId) && registeredAt < listedAt) {
        sql.exec(`DELETE FROM sessions WHERE session_id = ?`, sessionId);
        forgotten += 1;
      }
    }
    let closed = 0;
    for (const orphan of orphans) {
      try {
        await this.provider.close(orphan.sessionId);
        closed += 1;
        log("orphan_closed", { sessionId: orphan.sessionId, ageMs: listedAt - orphan.startTime });
      } catch (error) {
        log("orphan_close_failed", { sessionId: orphan.sessionId, error: String(error) });
      }
    }
    const report: SweepReport = {
      at: new Date(listedAt).toISOString(),
      live: live.length,
      tracked: known.size - forgotten,
      orphansClosed: closed,
      forgotten,
      young,
    };
    this.setMeta("orphans_closed", String(Number(this.meta("orphans_closed") ?? 0) + closed));
    this.setMeta("last_sweep", JSON.stringify(report));
    // Young unknown sessions may turn out to be orphans: look again after the grace.
    if (young > 0) await this.armWithin(this.graceMs + 1_000);
    return report;
  }

  private async armWithin(ms: number): Promise<void> {
    const at = this.clock() + ms;
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > at) await this.ctx.storage.setAlarm(at);
  }

  private meta(key: string): string | undefined {
    return this.ctx.storage.sql.exec<{ value: string }>(`SELECT value FROM meta WHERE key = ?`, key).toArray()[0]?.value;
  }

  private setMeta(key: string, value: string): void {
    this.ctx.storage.sql.exec(`INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value);
  }
}
