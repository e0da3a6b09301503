/**
 * A tenant's quota: its fields, their defaults and bounds, how the tenant
 * object keeps them, and whether a pool's claim of capacity fits in it. Each field an operator set for the tenant is one row of
 * the object's `meta` table; a field with no row is the deployment's default,
 * so changing a default (a Worker var) moves every tenant that never set its
 * own, and `null` in a patch returns a field to the default by deleting its row.
 *
 * The fields:
 * - `maxPools`, `maxSessions`: how many pools the tenant may have, and how many
 *   browser sessions all its pools together may hold (vars TENANT_MAX_POOLS,
 *   TENANT_MAX_SESSIONS unless set);
 * - `weight`: its share of the account's browsers when tenants compete,
 *   relative to other tenants' (the capacity governor reads it);
 * - `recordingRetentionDays`: how long its leases' recordings are kept after
 *   the lease ends (each recorder reads it when its recording ends);
 * - `profileRetentionDays`: how long a saved profile (src/profiles) is kept
 *   after it was last written, and the most a profile's own retention may be.
 */

/** A tenant's weight unless set: every tenant counts the same. */
export const DEFAULT_WEIGHT = 1;
/** The largest weight a tenant may be given (weights are relative; this keeps shares meaningful). */
export const MAX_WEIGHT = 1000;
/** Days a tenant's recordings are kept unless it sets its own. */
export const DEFAULT_RECORDING_RETENTION_DAYS = 7;
/** The longest retention a tenant may set (a year: recordings are evidence, not an archive). */
export const MAX_RECORDING_RETENTION_DAYS = 365;
/** Days a profile is kept after its last write unless the tenant sets its own. */
export const DEFAULT_PROFILE_RETENTION_DAYS = 30;
/** The longest profile retention a tenant may set (a year: a profile holds live logins; one unused that long should not linger). */
export const MAX_PROFILE_RETENTION_DAYS = 365;

export interface Quota {
  maxPools: number;
  maxSessions: number;
  /** Its share of the account's browsers when tenants compete, relative to other tenants' weights. */
  weight: number;
  /** Days a recorded lease's recording is kept after the lease ends. */
  recordingRetentionDays: number;
  /** Days a profile is kept after its last write (at most; a profile may set fewer). */
  profileRetentionDays: number;
}

export type QuotaField = keyof Quota;

/** Which fields are the deployment's defaults (no value set for this tenant). */
export type QuotaDefaults = Record<QuotaField, boolean>;

/** A number sets the field for the tenant; null returns it to the default; absent leaves it. */
export type QuotaPatch = { [F in QuotaField]?: number | null };

/** The `meta` key each field is kept under (the names predate this module: stored rows use them). */
const META_KEYS: Record<QuotaField, string> = {
  maxPools: "max_pools",
  maxSessions: "max_sessions",
  weight: "weight",
  recordingRetentionDays: "recording_retention_days",
  profileRetentionDays: "profile_retention_days",
};

const FIELDS = Object.keys(META_KEYS) as QuotaField[];

function positive(value: string | undefined, fallback: number): number {
  const parsed = Number(value);
  return Number.isInteger(parsed) && parsed > 0 ? parsed : fallback;
}

/** The deployment's default quota for tenants that have none of their own (vars TENANT_MAX_POOLS, TENANT_MAX_SESSIONS). */
export function defaultQuota(env: Env): Quota {
  return {
    maxPools: positive(env.TENANT_MAX_POOLS, 100),
    maxSessions: positive(env.TENANT_MAX_SESSIONS, 120),
    weight: DEFAULT_WEIGHT,
    recordingRetentionDays: DEFAULT_RECORDING_RETENTION_DAYS,
    profileRetentionDays: DEFAULT_PROFILE_RETENTION_DAYS,
  };
}

/** The tenant's quota from its `meta` rows (`meta` answers undefined for a key with no row, or when there is no storage at all). */
export function readQuota(env: Env, meta: (key: string) => string | undefined): { quota: Quota; defaults: QuotaDefaults } {
  const quota = defaultQuota(env);
  const defaults = {} as QuotaDefaults;
  for (const field of FIELDS) {
    const value = meta(META_KEYS[field]);
    defaults[field] = value === undefined;
    if (value !== undefined) quota[field] = Number(value);
  }
  return { quota, defaults };
}

/** The `meta` writes a patch makes: a value to set, or null to delete the row (back to the default). */
export function quotaWrites(patch: QuotaPatch): Array<{ key: string; value: string | null }> {
  return FIELDS.filter((field) => patch[field] !== undefined).map((field) => {
    const value = patch[field];
    return { key: META_KEYS[field], value: value === null || value === undefined ? null : String(value) };
  });
}

/** What a pool's claim is judged on: the size it asks for, the size it has claimed (undefined: a new pool), the tenant's pools, and the sessions its other pools claim. */
export interface Claim {
  maxSessions: number;
  current: number | undefined;
  pools: number;
  others: number;
}

/**
 * Why `claim` would take the tenant over its quota, or null if it may be
 * granted. A new pool needs room under `maxPools`; a new or growing pool needs
 * its size plus the other pools' under `maxSessions`. A shrink is never refused.
 */
export function refuseClaim(tenant: string, quota: Quota, claim: Claim): string | null {
  if (claim.current === undefined && claim.pools >= quota.maxPools) {
    return `tenant '${tenant}' may have at most ${quota.maxPools} pools (it has ${claim.pools})`;
  }
  if ((claim.current === undefined || claim.maxSessions > claim.current) && claim.others + claim.maxSessions > quota.maxSessions) {
    return (
      `maxSessions: tenant '${tenant}' may hold at most ${quota.maxSessions} sessions across its pools; ` +
      `its other pools have ${claim.others}, so this pool may have at most ${Math.max(0, quota.maxSessions - claim.others)}`
    );
  }
  return null;
}
