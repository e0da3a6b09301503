/**
 * The governor's contract with the objects and routes that call it: the
 * shapes pools send and receive (PermitRequest, PermitAnswer, LaunchOutcome,
 * AccountGlance), what the admin API shows and sets (CapacityView, Limits,
 * LimitsPatch), and the timings permits, demand and the platform's reports
 * live by. Types and constants only: the governor (object.ts) decides, and
 * re-exports all of this, so callers import it from "governor/object".
 */
import type { BreakerState } from "./breaker";
import type { PermitKind } from "./schema";

/** A permit nobody renews (acquire again, sync) ends this long after its grant or last renewal. */
export const PERMIT_TTL_MS = 5 * 60_000;
/** A sync drops its pool's unlisted permits granted longer ago than this (a younger one may be a grant that crossed the list). */
export const SYNC_GRACE_MS = 10_000;
/** A refused launch counts as its tenant's unmet demand this long (pools ask again sooner while they still want it). */
export const DEMAND_TTL_MS = 15_000;
/** Retry-After of a refusal that no clock decides (account full, over share, a probe under way); pools are told sooner when room frees. */
export const DENY_RETRY_MS = 1_000;
/** The concurrency a platform 429 reported caps the limit this long (the account's plan may change). */
export const PLATFORM_LIMIT_TTL_MS = 60 * 60_000;
/** The longest a 429 may block grants, whatever it said. */
export const MAX_BLOCK_MS = 10 * 60_000;

export interface AccountGlance {
  limit: number;
  used: number;
  headroom: number;
  launchesPerSecond: number;
  breaker: BreakerState;
}

export interface PermitRequest {
  tenant: string;
  /** The bare pool name. */
  pool: string;
  /** Minted by the pool, one per launch; asking again with the same id renews it. */
  permitId: string;
  /** demand: a caller waits for this launch; warm: minIdle, the warm target. */
  kind: PermitKind;
}

export type DenyReason = "account_full" | "launch_rate" | "platform_limited" | "breaker_open" | "over_share";

export type PermitAnswer =
  | { granted: true; glance: AccountGlance }
  | { granted: false; reason: DenyReason; retryAfterMs: number; glance: AccountGlance };

export type LaunchOutcome =
  | { kind: "launched" }
  | { kind: "failed" }
  | {
      kind: "limited";
      retryAfterMs: number;
      platform?: { maxConcurrentSessions?: number; allowedBrowserAcquisitions?: number; timeUntilNextAllowedBrowserAcquisition?: number };
    };

export interface Limits {
  maxConcurrentSessions: number;
  launchesPerSecond: number;
}

export type LimitsPatch = { maxConcurrentSessions?: number | null; launchesPerSecond?: number | null };

/** What GET /v1/admin/capacity shows (the Capacity schema in src/api/schemas.ts). */
export interface CapacityView {
  limits: Limits;
  configured: Limits;
  overrides: { maxConcurrentSessions: number | null; launchesPerSecond: number | null };
  platform: { maxConcurrentSessions: number; at: string } | null;
  usage: { used: number; headroom: number; launchTokens: number; blockedUntil: string | null };
  breaker: { state: BreakerState; streak: number; retryAfterSeconds: number };
  tenants: Array<{ tenant: string; weight: number; held: number; pending: number; share: number }>;
}
