/**
 * CapacityGovernor: one Durable Object per account (name "account") that
 * grants pools permission to run browsers within the account's limits. The
 * platform's limits (concurrent browsers, new browsers per second) are the
 * account's, shared by every pool of every tenant, while each pool object
 * only sees itself: without one place that counts, pools launch into 429s,
 * and one busy tenant can take every browser the account has.
 *
 * A permit is one browser the account runs, from the launch until its close
 * (launching, idle, leased, resetting, closing all count). A pool asks for a
 * permit before each launch (`acquire`), reports the launch's outcome
 * (`settle`), gives permits back when browsers close (`release`), and every
 * minute or so lists the permits it holds (`sync`). Permits expire unless
 * renewed, so a pool that dies or forgets gives its permits back by expiry,
 * and a pool that launched while the governor was unreachable is adopted by
 * its next sync. The governor holds no browsers and awaits nothing on the
 * grant path but tenants' weights it has never read: every decision is made
 * in one synchronous transaction over its SQL, after any await.
 *
 * What a grant needs, in order: the platform's block (a 429's Retry-After)
 * has passed; the breaker (breaker.ts) is not open; the account has room
 * (used < limit); the tenant is within its fair share (share.ts) or, for a
 * launch a caller waits for, no other tenant is starved; the launch rate
 * (bucket.ts) has a token. The limit is the operator's (Worker vars, or
 * PUT /v1/admin/capacity), capped by what the platform reported with its
 * last 429. When a starved tenant finds the account full, pools of tenants
 * above their shares are asked to close idle browsers (`shed`); when
 * permits are given back and launches wait, the waiting pools are told
 * (`capacityFreed`), most starved first. Both are hints, fire-and-forget
 * with a deadline (pools.ts): the pools' retries are what guarantee progress.
 *
 * Each call costs a few indexed statements and a GROUP BY over the permits
 * (one row per browser: at most the account's limit, ~100s), well within one
 * object's budget at the platform's launch rates.
 *
 * This file is the decisions and the RPC surface. The permits and demand
 * rows are permits.ts's, the account row schema.ts's, the limits in force
 * limits.ts's; the types and timings callers share are contract.ts's, and
 * are re-exported here with the limits.
 */
import { DurableObject } from "cloudflare:workers";
import { log } from "../log";
import { launchFailed, launchSucceeded, stateOf } from "./breaker";
import { fullBucket, msUntilToken, refill } from "./bucket";
import {
  forgetPlatformMax,
  migrate,
  readAccount,
  readBreaker,
  readBucket,
  writeBreaker,
  writeBucket,
  writeLimited,
  writeOverrides,
} from "./schema";
import { EPSILON, fairShares, type ShedAsk, shedPlan, type Standing, starved } from "./share";
import { type PoolCalls, PoolMessages, poolCalls } from "./pools";
import { PermitStore } from "./permits";
import { configuredLimits, limitsOf } from "./limits";
import { tenantWeights, WeightCache } from "./weights";
import {
  type AccountGlance,
  type CapacityView,
  DENY_RETRY_MS,
  type DenyReason,
  type LaunchOutcome,
  type LimitsPatch,
  MAX_BLOCK_MS,
  type PermitAnswer,
  type PermitRequest,
  PLATFORM_LIMIT_TTL_MS,
  SYNC_GRACE_MS,
} from "./contract";

export type { BreakerState } from "./breaker";
export type { PoolCalls } from "./pools";
export type { PermitKind } from "./schema";
export * from "./contract";
export * from "./limits";

const iso = (ms: number) => new Date(ms).toISOString();

export class CapacityGovernor extends DurableObject<Env> {
  /** The time source; tests replace it to move through cooldowns, expiries and the launch rate without sleeping. */
  clock: () => number = () => Date.now();
  /** How pools are reached; tests replace it. */
  pools: PoolCalls;
  private readonly weights: WeightCache;
  private readonly messages: PoolMessages;
  private readonly permits: PermitStore;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.pools = poolCalls(env);
    this.weights = new WeightCache(tenantWeights(env), (work) => ctx.waitUntil(work));
    this.messages = new PoolMessages(() => this.pools, (work) => ctx.waitUntil(work));
    this.permits = new PermitStore(ctx.storage.sql);
    ctx.blockConcurrencyWhile(async () => {
      migrate(ctx.storage.sql);
    });
  }

  /** A permit for one launch, or why not and when to ask again. Asking again with a granted permit's id renews it. */
  async acquire(req: PermitRequest): Promise<PermitAnswer> {
    checkNames(req.tenant, req.pool, [req.permitId]);
    if (req.kind !== "demand" && req.kind !== "warm") throw new TypeError(`permit kind must be "demand" or "warm"`);
    // The weights of tenants never seen are read first; the decision re-reads everything after.
    await this.weights.ensure([req.tenant, ...this.permits.activeTenants()], this.clock());
    const now = this.clock();
    const { answer, freed, shed } = this.ctx.storage.transactionSync(() => this.decide(req, now));
    this.messages.shed(shed, now);
    this.pokeWaiters(freed, now);
    return answer;
  }

  /** A granted launch's outcome. launched: the browser runs (a permit the governor forgot is adopted); failed and limited give the permit back. */
  async settle(tenant: string, pool: string, permitId: string, outcome: LaunchOutcome): Promise<AccountGlance> {
    checkNames(tenant, pool, [permitId]);
    const now = this.clock();
    const freed = this.ctx.storage.transactionSync(() => {
      const sql = this.ctx.storage.sql;
      let freed = this.purge(now);
      const breaker = readBreaker(readAccount(sql));
      switch (outcome.kind) {
        case "launched": {
          this.permits.hold(tenant, pool, permitId, "adopted", now);
          const next = launchSucceeded(breaker, now);
          if (breaker.until !== null && next.until === null) log("governor_breaker_closed", { tenant, pool, permitId });
          writeBreaker(sql, next);
          break;
        }
        case "failed": {
          freed += this.permits.drop(tenant, pool, permitId);
          const next = launchFailed(breaker, permitId, now);
          if (next.until !== null && next.until !== breaker.until) log("governor_breaker_opened", { tenant, pool, permitId, cooldownMs: next.until - now, opens: next.opens });
          writeBreaker(sql, next);
          break;
        }
        case "limited": {
          freed += this.permits.drop(tenant, pool, permitId);
          const platform = outcome.platform ?? {};
          const waitMs = Math.min(MAX_BLOCK_MS, Math.max(0, finite(outcome.retryAfterMs), finite(platform.timeUntilNextAllowedBrowserAcquisition)));
          const max = platform.maxConcurrentSessions;
          const platformMax = max !== undefined && Number.isInteger(max) && max > 0 ? max : undefined;
          writeLimited(sql, now + waitMs, platformMax, now);
          // A probe the platform refused for its limits proved nothing: the next request probes.
          if (breaker.probe === permitId) writeBreaker(sql, { ...breaker, probe: null });
          log("governor_platform_limited", { tenant, pool, permitId, blockMs: waitMs, ...(platformMax === undefined ? {} : { platformMax }) });
          break;
        }
      }
      return freed;
    });
    this.pokeWaiters(freed, now);
    return this.glance(now);
  }

  /** The pool closed these browsers (or gave up their launches). Idempotent. */
  async release(tenant: string, pool: string, permitIds: string[]): Promise<void> {
    checkNames(tenant, pool, permitIds);
    const now = this.clock();
    const freed = this.ctx.storage.transactionSync(() => {
      let freed = this.purge(now);
      for (const id of permitIds) freed += this.permits.drop(tenant, pool, id);
      return freed;
    });
    this.pokeWaiters(freed, now);
  }

  /**
   * The pool's authoritative list of the permits it holds: each is renewed,
   * or adopted if unknown (launched while the governor was unreachable, or
   * expired meanwhile); the pool's other permits are dropped, except those
   * granted within SYNC_GRACE_MS (a grant that crossed this list). `shed`:
   * idle browsers the pool should close, when its tenant is above its share
   * and another is starved.
   */
  async sync(tenant: string, pool: string, permitIds: string[]): Promise<{ shed: number; glance: AccountGlance }> {
    checkNames(tenant, pool, permitIds);
    await this.weights.ensure([tenant, ...this.permits.activeTenants()], this.clock());
    const now = this.clock();
    const { freed, plan } = this.ctx.storage.transactionSync(() => {
      const sql = this.ctx.storage.sql;
      let freed = this.purge(now);
      const listed = new Set(permitIds);
      for (const id of listed) this.permits.hold(tenant, pool, id, "adopted", now);
      for (const row of this.permits.heldBy(tenant, pool)) {
        if (!listed.has(row.permit_id) && row.granted_at < now - SYNC_GRACE_MS) freed += this.permits.drop(tenant, pool, row.permit_id);
      }
      const { limits } = limitsOf(this.env, readAccount(sql), now);
      const standings = this.standings(limits.maxConcurrentSessions);
      return { freed, plan: shedPlan(limits.maxConcurrentSessions, this.permits.used(), standings) };
    });
    const mine = plan.filter((ask) => ask.tenant === tenant && ask.pool === pool);
    const shed = this.messages.claimShed(mine, now).reduce((sum, ask) => sum + ask.count, 0);
    this.pokeWaiters(freed, now);
    return { shed, glance: this.glance(now) };
  }

  /** The account's limits, usage, breaker and tenants' shares (GET /v1/admin/capacity). */
  async describe(): Promise<CapacityView> {
    await this.weights.ensure(this.permits.activeTenants(), this.clock());
    const now = this.clock();
    const freed = this.ctx.storage.transactionSync(() => this.purge(now));
    this.pokeWaiters(freed, now);
    const sql = this.ctx.storage.sql;
    const account = readAccount(sql);
    const { limits, platform } = limitsOf(this.env, account, now);
    const rate = limits.launchesPerSecond;
    const bucket = refill(readBucket(account) ?? fullBucket(rate, now), rate, now);
    const breaker = readBreaker(account);
    const state = stateOf(breaker, now);
    const used = this.permits.used();
    return {
      limits,
      configured: configuredLimits(this.env),
      overrides: { maxConcurrentSessions: account.max_concurrent, launchesPerSecond: account.launches_per_second },
      platform: platform === null ? null : { maxConcurrentSessions: platform.max, at: iso(platform.at) },
      usage: {
        used,
        headroom: Math.max(0, limits.maxConcurrentSessions - used),
        launchTokens: Math.floor(bucket.tokens * 1000) / 1000,
        blockedUntil: account.blocked_until > now ? iso(account.blocked_until) : null,
      },
      breaker: { state, streak: breaker.streak, retryAfterSeconds: state === "open" ? Math.ceil((breaker.until! - now) / 1000) : 0 },
      tenants: this.standings(limits.maxConcurrentSessions).map((t) => ({
        tenant: t.tenant,
        weight: this.weights.weightOf(t.tenant),
        held: t.held,
        pending: t.pending,
        share: Math.round(t.share * 1000) / 1000,
      })),
    };
  }

  /** Overrides the Worker vars' limits (a number) or returns to them (null). */
  async setLimits(patch: LimitsPatch): Promise<CapacityView> {
    const { maxConcurrentSessions: max, launchesPerSecond: rate } = patch;
    if (max !== undefined && max !== null && !(Number.isInteger(max) && max > 0)) throw new RangeError("maxConcurrentSessions must be a positive integer");
    if (rate !== undefined && rate !== null && !(Number.isFinite(rate) && rate > 0)) throw new RangeError("launchesPerSecond must be a positive number");
    const now = this.clock();
    const headroom = this.ctx.storage.transactionSync(() => {
      const sql = this.ctx.storage.sql;
      // The bucket filled at the old rate until now; the new rate applies from now.
      const before = limitsOf(this.env, readAccount(sql), now).limits.launchesPerSecond;
      writeBucket(sql, refill(readBucket(readAccount(sql)) ?? fullBucket(before, now), before, now));
      writeOverrides(sql, patch);
      return this.glance(now).headroom;
    });
    log("capacity_limits_set", { ...patch });
    this.pokeWaiters(headroom, now);
    return this.describe();
  }

  /** The tenant's weight changed (PUT /v1/admin/tenants/{tenant}): it is read again before the next decision that involves it. */
  async forgetWeight(tenant: string): Promise<void> {
    this.weights.forget(tenant);
  }

  // ---- deciding -----------------------------------------------------------------

  /** The grant decision, inside one transaction: re-reads everything it decides with. */
  private decide(req: PermitRequest, now: number): { answer: PermitAnswer; freed: number; shed: ShedAsk[] } {
    const sql = this.ctx.storage.sql;
    const freed = this.purge(now);
    if (this.permits.renew(req.tenant, req.pool, req.permitId, now)) return { answer: { granted: true, glance: this.glance(now) }, freed, shed: [] };
    const account = readAccount(sql);
    const { limits } = limitsOf(this.env, account, now);
    const deny = (reason: DenyReason, retryAfterMs: number, shed: ShedAsk[] = []) => {
      // A refused launch a caller waits for is the tenant's unmet demand: it weighs in the shares until it goes stale.
      if (req.kind === "demand") this.permits.want(req.tenant, req.pool, req.permitId, now);
      return { answer: { granted: false as const, reason, retryAfterMs: Math.max(1, Math.ceil(retryAfterMs)), glance: this.glance(now) }, freed, shed };
    };
    if (account.blocked_until > now) return deny("platform_limited", account.blocked_until - now);
    const breaker = readBreaker(account);
    const state = stateOf(breaker, now);
    if (state === "open") return deny("breaker_open", breaker.until! - now);
    if (state === "half_open" && breaker.probe !== null && this.permits.exists(breaker.probe)) return deny("breaker_open", DENY_RETRY_MS);

    const capacity = limits.maxConcurrentSessions;
    const standings = this.standings(capacity, req);
    const mine = standings.find((t) => t.tenant === req.tenant)!;
    const used = this.permits.used();
    if (used >= capacity) {
      return deny("account_full", DENY_RETRY_MS, req.kind === "demand" && starved(mine) ? shedPlan(capacity, used, standings) : []);
    }
    if (mine.held + 1 > mine.share + EPSILON) {
      // Warm browsers never go beyond the share; a waiting caller may, while no other tenant waits within its own.
      if (req.kind === "warm" || standings.some((t) => t.tenant !== req.tenant && starved(t))) return deny("over_share", DENY_RETRY_MS);
    }
    const rate = limits.launchesPerSecond;
    const bucket = refill(readBucket(account) ?? fullBucket(rate, now), rate, now);
    if (bucket.tokens < 1) return deny("launch_rate", msUntilToken(bucket, rate));

    writeBucket(sql, { tokens: bucket.tokens - 1, at: bucket.at });
    this.permits.hold(req.tenant, req.pool, req.permitId, req.kind, now);
    if (state === "half_open") {
      writeBreaker(sql, { ...breaker, probe: req.permitId });
      log("governor_breaker_probe", { tenant: req.tenant, pool: req.pool, permitId: req.permitId });
    }
    return { answer: { granted: true, glance: this.glance(now) }, freed, shed: [] };
  }

  /**
   * Every active tenant (holding permits, or with unmet demand) with what it
   * holds (per pool), what it waits for, and its fair share of `capacity`.
   * `asking`: a request being decided, counted as its tenant's demand if it
   * is not already.
   */
  private standings(capacity: number, asking?: PermitRequest): Standing[] {
    const tenants = new Map<string, { held: number; pending: number; pools: Array<{ pool: string; held: number }> }>();
    const entry = (tenant: string) => {
      let t = tenants.get(tenant);
      if (!t) tenants.set(tenant, (t = { held: 0, pending: 0, pools: [] }));
      return t;
    };
    for (const row of this.permits.heldPerPool()) {
      const t = entry(row.tenant);
      t.held += row.n;
      t.pools.push({ pool: row.pool, held: row.n });
    }
    for (const row of this.permits.pendingPerTenant()) entry(row.tenant).pending += row.n;
    if (asking && !this.permits.wanted(asking.permitId)) entry(asking.tenant).pending += 1;
    const claims = [...tenants].map(([tenant, t]) => ({ tenant, weight: this.weights.weightOf(tenant), demand: t.held + t.pending }));
    const shares = fairShares(capacity, claims);
    return [...tenants]
      .map(([tenant, t]) => ({ tenant, ...t, share: shares.get(tenant) ?? 0 }))
      .sort((a, b) => (a.tenant < b.tenant ? -1 : a.tenant > b.tenant ? 1 : 0));
  }

  private glance(now: number): AccountGlance {
    const account = readAccount(this.ctx.storage.sql);
    const { limits } = limitsOf(this.env, account, now);
    const used = this.permits.used();
    return {
      limit: limits.maxConcurrentSessions,
      used,
      headroom: Math.max(0, limits.maxConcurrentSessions - used),
      launchesPerSecond: limits.launchesPerSecond,
      breaker: stateOf(readBreaker(account), now),
    };
  }

  // ---- storage ----------------------------------------------------------------

  /** Ends expired permits, stale demand (permits.ts) and a stale platform limit; how many permits ended. */
  private purge(now: number): number {
    const sql = this.ctx.storage.sql;
    const expired = this.permits.purge(now);
    const account = readAccount(sql);
    if (account.platform_at !== null && account.platform_at + PLATFORM_LIMIT_TTL_MS <= now) forgetPlatformMax(sql);
    if (expired > 0) log("governor_permits_expired", { count: expired });
    return expired;
  }

  // ---- telling pools ------------------------------------------------------------

  /**
   * `freed` permits were given back: tells up to that many pools whose
   * launches wait to ask again now, those of the most starved tenants (the
   * furthest below their shares) first, then the longest waiting. Nothing
   * while grants are blocked.
   */
  private pokeWaiters(freed: number, now: number): void {
    if (freed <= 0) return;
    const sql = this.ctx.storage.sql;
    const account = readAccount(sql);
    if (account.blocked_until > now || stateOf(readBreaker(account), now) === "open") return;
    const waiting = this.permits.waitingPools();
    if (waiting.length === 0) return;
    const deficit = new Map(this.standings(limitsOf(this.env, account, now).limits.maxConcurrentSessions).map((t) => [t.tenant, t.share - t.held]));
    waiting.sort((a, b) => (deficit.get(b.tenant) ?? 0) - (deficit.get(a.tenant) ?? 0) || a.since - b.since);
    this.messages.capacityFreed(waiting.slice(0, freed));
  }
}

function finite(value: number | undefined): number {
  return value !== undefined && Number.isFinite(value) ? value : 0;
}

/** Pools are ours, so a malformed call is a bug: it throws rather than being decided on. */
function checkNames(tenant: string, pool: string, permitIds: string[]): void {
  if (typeof tenant !== "string" || tenant === "" || typeof pool !== "string" || pool === "") throw new TypeError("tenant and pool must be non-empty strings");
  if (!Array.isArray(permitIds) || permitIds.some((id) => typeof id !== "string" || id === "")) throw new TypeError("permit ids must be non-empty strings");
}
