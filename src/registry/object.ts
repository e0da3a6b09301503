/**
 * SessionRegistry: one Durable Object per account (name "registry") that
 * knows every browser session the broker's pools launched, and closes the
 * browsers the broker launched and lost: a pool's launch whose outcome it
 * never learned (the object restarted mid-launch, or the launch passed its
 * deadline) may have started a browser no pool records, holding one of the
 * account's concurrent browsers until the platform's keep-alive kills it.
 * It also lists the account's pools and tenants, and its alarm deletes
 * expired profiles (src/profiles/sweep.ts). docs/registry.md has the rules.
 *
 * This file is the object's RPC surface (registrations, lost launches, the
 * pool and tenant lists, stats) and its alarm; the sweep that judges the
 * platform's list and closes what the rules allow is sweep.ts, the tables
 * schema.ts. The alarm re-arms itself whatever the sweeps did.
 */
import { DurableObject } from "cloudflare:workers";
import { type BrowserProvider, KEEP_ALIVE_MS } from "../browser/provider";
import { message } from "../deadline";
import { log } from "../log";
import { providerFactory } from "../browser/factory";
import { expireProfilesSafely } from "../profiles/sweep";
import { migrate, readMeta, writeMeta } from "./schema";
import { CLOSE_TIMEOUT_MS, LIST_TIMEOUT_MS, ORPHAN_GRACE_MS, type OrphanPolicy, orphanPolicy, SWEEP_INTERVAL_MS, type SweepReport, sweepOnce, watching } from "./sweep";

/** A deleted pool's leftover browsers are looked for this soon after `untrackPool`. */
export const ABANDONED_SWEEP_DELAY_MS = 1_000;

/** A launch a pool started and never learned the outcome of: when it may have started a browser (the pool's clock). */
export interface LostLaunchWindow {
  startedAt: number;
  endedAt: number;
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
      migrate(ctx.storage.sql);
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
    this.sweeping ??= sweepOnce({
      sql: this.ctx.storage.sql,
      now: () => this.clock(),
      provider: () => this.provider,
      policy: () => this.policy,
      graceMs: () => this.graceMs,
      listTimeoutMs: () => this.listTimeoutMs,
      closeTimeoutMs: () => this.closeTimeoutMs,
      armWithin: (ms) => this.armWithin(ms),
    }).finally(() => {
      this.sweeping = undefined;
    });
    return this.sweeping;
  }

  override async alarm(): Promise<void> {
    try {
      await this.sweep();
    } catch (error) {
      log("registry_sweep_failed", { error: message(error) });
    }
    // Expired profiles too: a bounded pass when one is due (src/profiles/sweep.ts). Never throws.
    const profilesIn = await expireProfilesSafely({
      bucket: this.env.PROFILES,
      now: this.clock(),
      read: (key) => this.meta(key),
      write: (key, value) => this.setMeta(key, value),
    });
    // Whatever the sweeps did, the next one is armed while there is anything to watch.
    if (watching(this.ctx.storage.sql, this.clock())) await this.armWithin(SWEEP_INTERVAL_MS);
    else if (profilesIn !== null) await this.armWithin(Math.max(profilesIn, SWEEP_INTERVAL_MS));
  }

  useProvider(provider: BrowserProvider): void {
    this.provider = provider;
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
    return readMeta(this.ctx.storage.sql, key);
  }

  private setMeta(key: string, value: string): void {
    writeMeta(this.ctx.storage.sql, key, value);
  }
}
