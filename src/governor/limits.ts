/**
 * The account's limits on browsers: what the Worker vars configure, and what
 * is in force, the operator's override (PUT /v1/admin/capacity) or the vars'
 * value, capped by the concurrency the platform reported with its last 429
 * while that report is fresh. Pure functions of the vars and the `account`
 * row (schema.ts); the governor (object.ts) decides with them.
 */
import { type Limits, PLATFORM_LIMIT_TTL_MS } from "./contract";
import type { AccountRow } from "./schema";

/** The limits when the Worker vars say nothing usable: Browser Run's on Workers Paid. */
export const DEFAULT_MAX_CONCURRENT_SESSIONS = 120;
export const DEFAULT_LAUNCHES_PER_SECOND = 1;

/** The limits the Worker vars configure (ACCOUNT_MAX_CONCURRENT_SESSIONS, ACCOUNT_LAUNCHES_PER_SECOND). */
export function configuredLimits(env: Env): Limits {
  const max = Number(env.ACCOUNT_MAX_CONCURRENT_SESSIONS);
  const rate = Number(env.ACCOUNT_LAUNCHES_PER_SECOND);
  return {
    maxConcurrentSessions: Number.isInteger(max) && max > 0 ? max : DEFAULT_MAX_CONCURRENT_SESSIONS,
    launchesPerSecond: Number.isFinite(rate) && rate > 0 ? rate : DEFAULT_LAUNCHES_PER_SECOND,
  };
}

/** The limits in force: the operator's or the vars', capped by the platform's report while it is fresh. */
export function limitsOf(env: Env, account: AccountRow, now: number): { limits: Limits; platform: { max: number; at: number } | null } {
  const configured = configuredLimits(env);
  const platform =
    account.platform_max !== null && account.platform_at !== null && account.platform_at + PLATFORM_LIMIT_TTL_MS > now
      ? { max: account.platform_max, at: account.platform_at }
      : null;
  const max = account.max_concurrent ?? configured.maxConcurrentSessions;
  return {
    limits: {
      maxConcurrentSessions: platform === null ? max : Math.min(max, platform.max),
      launchesPerSecond: account.launches_per_second ?? configured.launchesPerSecond,
    },
    platform,
  };
}
