/**
 * A pool's configuration: the fields, their defaults and their bounds. The zod
 * schema here is the single source of truth: the HTTP layer validates `PUT
 * /v1/pools/{pool}` bodies with it and the pool object stores what it returns.
 *
 * Why these bounds:
 * - maxSessions is capped by MAX_SESSIONS_PER_POOL (a Worker var) because the
 *   platform's concurrent-browser limit is per account and shared by all pools.
 * - maxTtlSeconds ≤ 3600: a lease is a loan, not an allocation; long jobs renew.
 * - idleTimeoutSeconds < 600: Browser Run kills a browser after keep_alive
 *   (at most 10 minutes) without a devtools command, so an idle session must be
 *   pinged or closed before that. (The pool also pings idle and unconnected
 *   leased sessions every half keep-alive, so a shorter keep-alive is safe.)
 * - connectWithinSeconds: a lease nobody connects to holds a browser for
 *   nothing (its caller gave up, or crashed after being served); 60 s by
 *   default, as long as a slow client may need, and 0 turns it off.
 * - maxSessionUses / maxSessionAgeSeconds: Chromium accumulates state and
 *   memory over many leases, so a session past either is closed instead of
 *   reused (HikariCP's maxLifetime, pgbouncer's server_lifetime); 0 = no limit.
 * - admission: a caller who would queue longer than its waitSeconds (queue
 *   position × mean hold / sessions) is told at once (429 with Retry-After)
 *   instead of queueing to time out.
 * - warmFromDemand: keep as many idle sessions as arrive during one launch
 *   (capacity.ts), within minIdle..maxSessions and the tenant's fair share.
 * - breakerThreshold: launches failing in a row that open the pool's circuit
 *   breaker (capacity.ts); 0 turns it off.
 * - record: whether leases are recorded unless the acquire says (src/recorder);
 *   off by default, since a recording stores screenshots of the customer's pages.
 * - locationHint: where the pool's object was asked to be created
 *   (src/placement.ts). Fixed at creation, since the object never moves: the
 *   Worker refuses (409 placement_fixed) a PUT naming another hint than an
 *   existing pool's, and `mergeConfig` refuses changing a hint the pool has
 *   whatever the route (it cannot tell a new pool from one created without).
 */
import { z } from "zod";
import { LOCATION_HINTS, type LocationHint } from "../placement";

export const HARD_MAX_SESSIONS = 120;
export const MAX_WAITERS_LIMIT = 10_000;
export const MAX_TTL_LIMIT_SECONDS = 3600;

export const DEFAULT_CONFIG = {
  maxSessions: 2,
  minIdle: 0,
  maxWaiters: 100,
  defaultTtlSeconds: 60,
  maxTtlSeconds: 600,
  reuse: true,
  launchTimeoutSeconds: 30,
  idleTimeoutSeconds: 300,
  connectWithinSeconds: 60,
  maxSessionUses: 100,
  maxSessionAgeSeconds: 1800,
  admission: true,
  warmFromDemand: false,
  breakerThreshold: 5,
  record: false,
  locationHint: null as LocationHint | null,
} as const;

const int = (min: number, max: number) => z.number().int().min(min).max(max);

/** Fields of a partial update; each checked on its own. Cross-field rules are in `mergeConfig`. */
export const PoolConfigPatch = z
  .object({
    maxSessions: int(1, HARD_MAX_SESSIONS),
    minIdle: int(0, HARD_MAX_SESSIONS),
    maxWaiters: int(0, MAX_WAITERS_LIMIT),
    defaultTtlSeconds: int(1, MAX_TTL_LIMIT_SECONDS),
    maxTtlSeconds: int(1, MAX_TTL_LIMIT_SECONDS),
    reuse: z.boolean(),
    launchTimeoutSeconds: int(1, 120),
    idleTimeoutSeconds: int(10, 540),
    connectWithinSeconds: int(0, MAX_TTL_LIMIT_SECONDS),
    maxSessionUses: int(0, 1_000_000),
    maxSessionAgeSeconds: z.union([z.literal(0), int(60, 7 * 24 * 3600)]),
    admission: z.boolean(),
    warmFromDemand: z.boolean(),
    breakerThreshold: int(0, 1000),
    record: z.boolean(),
    locationHint: z.enum(LOCATION_HINTS).nullable(),
  })
  .partial()
  .strict();

export type PoolConfigPatch = z.infer<typeof PoolConfigPatch>;
type Default<K extends keyof typeof DEFAULT_CONFIG> = (typeof DEFAULT_CONFIG)[K];
export type PoolConfig = { -readonly [K in keyof typeof DEFAULT_CONFIG]: Default<K> extends boolean ? boolean : Default<K> extends number ? number : Default<K> };

/** A rule broken by a merged config: which field, and why. */
export interface ConfigProblem {
  field: keyof PoolConfig;
  detail: string;
}

/** Applies a patch to a config and checks the rules that span fields. */
export function mergeConfig(
  current: PoolConfig,
  patch: PoolConfigPatch,
  maxSessionsLimit: number,
): { config: PoolConfig } | { problem: ConfigProblem } {
  const config: PoolConfig = { ...current, ...patch };
  if (current.locationHint !== null && config.locationHint !== current.locationHint) {
    return { problem: { field: "locationHint", detail: `the pool was created with locationHint ${current.locationHint} and never moves: its placement cannot change` } };
  }
  if (config.maxSessions > maxSessionsLimit) {
    return { problem: { field: "maxSessions", detail: `maxSessions must be at most ${maxSessionsLimit} (MAX_SESSIONS_PER_POOL)` } };
  }
  if (config.minIdle > config.maxSessions) {
    return { problem: { field: "minIdle", detail: `minIdle (${config.minIdle}) must not exceed maxSessions (${config.maxSessions})` } };
  }
  if (config.defaultTtlSeconds > config.maxTtlSeconds) {
    return {
      problem: {
        field: "defaultTtlSeconds",
        detail: `defaultTtlSeconds (${config.defaultTtlSeconds}) must not exceed maxTtlSeconds (${config.maxTtlSeconds})`,
      },
    };
  }
  return { config };
}
