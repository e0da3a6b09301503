/**
 * Typed reads and writes over the governor's `permits` and `demand` tables
 * (schema.ts): holding, renewing and dropping a pool's permits, recording and
 * expiring unmet demand, and the counts the shares and the waiters' order are
 * computed from. No decisions live here: the governor (object.ts) decides,
 * inside its transactions, and this module only knows how rows are stored.
 * The `account` row's reads and writes are schema.ts's.
 */
import { DEMAND_TTL_MS, PERMIT_TTL_MS } from "./contract";
import type { PermitRow } from "./schema";

export class PermitStore {
  constructor(private readonly sql: SqlStorage) {}

  /** Deletes expired permits and stale demand; how many permits ended. */
  purge(now: number): number {
    const expired = this.sql.exec(`DELETE FROM permits WHERE expires_at <= ? RETURNING permit_id`, now).toArray().length;
    this.sql.exec(`DELETE FROM demand WHERE at <= ?`, now - DEMAND_TTL_MS);
    return expired;
  }

  /** Records the permit as held (new, or renewed if it is this pool's already); a launch it was waited for is no longer pending. */
  hold(tenant: string, pool: string, permitId: string, kind: PermitRow["kind"], now: number): void {
    this.sql.exec(
      `INSERT INTO permits (permit_id, tenant, pool, kind, granted_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (permit_id) DO UPDATE SET expires_at = excluded.expires_at WHERE permits.tenant = excluded.tenant AND permits.pool = excluded.pool`,
      permitId,
      tenant,
      pool,
      kind,
      now,
      now + PERMIT_TTL_MS,
    );
    this.sql.exec(`DELETE FROM demand WHERE permit_id = ?`, permitId);
  }

  /** Renews the pool's permit if it holds it; whether it did. */
  renew(tenant: string, pool: string, permitId: string, now: number): boolean {
    return (
      this.sql
        .exec(`UPDATE permits SET expires_at = ? WHERE permit_id = ? AND tenant = ? AND pool = ? RETURNING permit_id`, now + PERMIT_TTL_MS, permitId, tenant, pool)
        .toArray().length > 0
    );
  }

  /** Ends the pool's permit; 1 if it held it, else 0. */
  drop(tenant: string, pool: string, permitId: string): number {
    this.sql.exec(`DELETE FROM demand WHERE permit_id = ?`, permitId);
    return this.sql.exec(`DELETE FROM permits WHERE permit_id = ? AND tenant = ? AND pool = ? RETURNING permit_id`, permitId, tenant, pool).toArray().length;
  }

  exists(permitId: string): boolean {
    return this.sql.exec(`SELECT 1 FROM permits WHERE permit_id = ?`, permitId).toArray().length > 0;
  }

  /** Permits held across the account. */
  used(): number {
    return this.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM permits`).one().n;
  }

  /** The permits the pool holds, with when each was granted. */
  heldBy(tenant: string, pool: string): Array<Pick<PermitRow, "permit_id" | "granted_at">> {
    return this.sql.exec<{ permit_id: string; granted_at: number }>(`SELECT permit_id, granted_at FROM permits WHERE tenant = ? AND pool = ?`, tenant, pool).toArray();
  }

  /** Permits held per tenant and pool. */
  heldPerPool(): Array<{ tenant: string; pool: string; n: number }> {
    return this.sql.exec<{ tenant: string; pool: string; n: number }>(`SELECT tenant, pool, COUNT(*) AS n FROM permits GROUP BY tenant, pool`).toArray();
  }

  /** Tenants holding permits or with unmet demand. */
  activeTenants(): string[] {
    return this.sql
      .exec<{ tenant: string }>(`SELECT DISTINCT tenant FROM permits UNION SELECT DISTINCT tenant FROM demand`)
      .toArray()
      .map((r) => r.tenant);
  }

  /** Records a refused launch as its tenant's unmet demand (refused again: from now). */
  want(tenant: string, pool: string, permitId: string, now: number): void {
    this.sql.exec(
      `INSERT INTO demand (permit_id, tenant, pool, at) VALUES (?, ?, ?, ?) ON CONFLICT (permit_id) DO UPDATE SET at = excluded.at`,
      permitId,
      tenant,
      pool,
      now,
    );
  }

  /** Whether the launch is recorded as unmet demand. */
  wanted(permitId: string): boolean {
    return this.sql.exec(`SELECT 1 FROM demand WHERE permit_id = ?`, permitId).toArray().length > 0;
  }

  /** Unmet demand per tenant. */
  pendingPerTenant(): Array<{ tenant: string; n: number }> {
    return this.sql.exec<{ tenant: string; n: number }>(`SELECT tenant, COUNT(*) AS n FROM demand GROUP BY tenant`).toArray();
  }

  /** The pools whose launches wait, with their oldest refusal. */
  waitingPools(): Array<{ tenant: string; pool: string; since: number }> {
    return this.sql.exec<{ tenant: string; pool: string; since: number }>(`SELECT tenant, pool, MIN(at) AS since FROM demand GROUP BY tenant, pool`).toArray();
  }
}
