/**
 * What the pool decides about its own capacity, beside the account's governor
 * (src/governor): when launches are held back (the platform refused, the
 * account had no permit, the pool's circuit breaker is open), how long a new
 * caller can expect to wait (admission control), and how many idle sessions
 * to keep warm. These are building blocks of the machine's transitions: they
 * read and write only the pool's meta rows through the step's store, and never
 * await.
 *
 * Circuit breaker: a streak of `breakerThreshold` launches that failed or timed
 * out (never a platform 429, which is the platform's pacing, nor an account
 * without a permit) opens it for a cooldown (30 s, doubling on each reopening,
 * at most 5 minutes). While open, an acquire that needs a launch is answered
 * 503 at once; idle and reusable sessions are still served. After the cooldown
 * it is half-open: one launch (the probe) may start; its success closes the
 * breaker, its failure opens it again.
 */
import type { Failure } from "../result";
import type { Step } from "./machine";

export type BreakerState = "closed" | "open" | "half_open";

export const BREAKER_COOLDOWN_MS = 30_000;
export const BREAKER_MAX_COOLDOWN_MS = 300_000;
/** Admission control judges only with this many lease holds seen (fewer: every caller may queue). */
export const ADMISSION_MIN_SAMPLES = 10;
/** Weight of the newest sample in the running means of hold and launch times. */
const EWMA_ALPHA = 0.1;
/** The window of the arrival rate behind a demand-driven warm target. */
export const ARRIVAL_WINDOW_MS = 60_000;

export interface Breaker {
  state: BreakerState;
  /** open: when it turns half-open. */
  until: number;
  /** half_open: the launch that probes, if one is under way. */
  probe: number | null;
  streak: number;
}

export function breakerOf(step: Step): Breaker {
  const { db, now } = step;
  const until = Number(db.getMeta("breaker_until") ?? 0);
  const streak = Number(db.getMeta("launch_failure_streak") ?? 0);
  if (until === 0) return { state: "closed", until: 0, probe: null, streak };
  const probe = db.getMeta("breaker_probe");
  return { state: until > now ? "open" : "half_open", until, probe: probe ? Number(probe) : null, streak };
}

/** A launch ended well: the failure streak and the breaker are cleared. */
export function launchWorked(step: Step): void {
  const { db } = step;
  if (Number(db.getMeta("launch_failure_streak") ?? 0) > 0) {
    db.setMeta("launch_failure_streak", "0");
    db.setMeta("launch_failure_streak_alerted", "0");
  }
  if (db.getMeta("breaker_until")) {
    db.setMeta("breaker_until", "");
    db.setMeta("breaker_cooldown_ms", "");
    db.setMeta("breaker_probe", "");
    db.journal(step.now, "breaker_closed", null, null);
  }
}

/** A launch failed or timed out (not a platform 429): the streak grows; the breaker opens at the threshold, or when its probe failed. */
export function launchBroke(step: Step, row: number): void {
  const { db, now, config } = step;
  const streak = Number(db.getMeta("launch_failure_streak") ?? 0) + 1;
  db.setMeta("launch_failure_streak", String(streak));
  const breaker = breakerOf(step);
  const probeFailed = breaker.state === "half_open" && breaker.probe === row;
  const tripped = breaker.state === "closed" && config.breakerThreshold > 0 && streak >= config.breakerThreshold;
  if (!probeFailed && !tripped) return;
  const previous = Number(db.getMeta("breaker_cooldown_ms") ?? 0);
  const cooldown = previous > 0 ? Math.min(previous * 2, BREAKER_MAX_COOLDOWN_MS) : BREAKER_COOLDOWN_MS;
  db.setMeta("breaker_until", String(now + cooldown));
  db.setMeta("breaker_cooldown_ms", String(cooldown));
  db.setMeta("breaker_probe", "");
  db.journal(now, "breaker_opened", null, row, { streak, cooldownMs: cooldown });
  db.count("breaker_opened", {});
}

/** A launch reserved while the breaker is half-open is its probe. */
export function markProbe(step: Step, row: number): void {
  step.db.setMeta("breaker_probe", String(row));
}

/**
 * Until when no launch may be reserved (0: launches may go), and whether only
 * one may (the breaker's probe). Launches wait for the platform's pause, the
 * account's (no permit), and an open breaker, or a half-open one whose probe
 * is under way.
 */
export function launchGate(step: Step): { blockedUntil: number; probeOnly: boolean; why: "breaker" | "paused" | null } {
  const { db, now } = step;
  const paused = Number(db.getMeta("launch_blocked_until") ?? 0);
  const breaker = breakerOf(step);
  if (breaker.state === "open") return { blockedUntil: Math.max(breaker.until, paused), probeOnly: false, why: "breaker" };
  if (paused > now) return { blockedUntil: paused, probeOnly: false, why: "paused" };
  if (breaker.state === "half_open") {
    const probe = breaker.probe === null ? undefined : db.session(breaker.probe);
    if (probe?.state === "launching") return { blockedUntil: probe.deadline ?? now + 1000, probeOnly: false, why: "breaker" };
    return { blockedUntil: 0, probeOnly: true, why: null };
  }
  return { blockedUntil: 0, probeOnly: false, why: null };
}

/**
 * Whether an acquire that no idle session can serve at once may go on (to a
 * launch, or to the queue); else the failure to answer at once. The circuit
 * breaker turns away every acquire that needs a launch; a pause (the
 * platform's 429, or no permit from the account) only those that will not
 * wait. Admission control turns away a caller the queue cannot serve within
 * its waitSeconds, with when to come back, instead of letting it time out.
 */
export function admission(step: Step, ask: { hasCapacity: boolean; waitMs: number; rank: number; live: number; waiting: number }): Failure | undefined {
  const { db, now, config } = step;
  const gate = launchGate(step);
  const paused = gate.blockedUntil > now;
  if (ask.hasCapacity && paused) {
    const retryAfter = Math.max(1, Math.ceil((gate.blockedUntil - now) / 1000));
    if (gate.why === "breaker") {
      return {
        status: 503,
        code: "browser_unavailable",
        detail: `launches keep failing, so the pool's circuit breaker is open for ${retryAfter} s; idle sessions are still served`,
        retryAfter,
      };
    }
    if (ask.waitMs === 0) {
      return { status: 503, code: "browser_unavailable", detail: "launches are paused (the platform's or the account's browser limit)", retryAfter };
    }
  }
  if ((ask.hasCapacity && !paused) || ask.waitMs === 0 || !config.admission) return undefined;
  const servers = Math.max(1, Math.min(config.maxSessions, ask.live));
  const hold = meanHoldMs(step);
  // Not judged until enough holds were seen; holds that take no time never make a queue too long.
  if (hold.samples < ADMISSION_MIN_SAMPLES || hold.mean <= 0) return undefined;
  // The expected wait, position × mean / servers, exceeds waitMs exactly when `admissible` or more
  // wait ahead: the queue is counted no further than that (a long queue costs the decision nothing more).
  const admissible = Math.floor((ask.waitMs * servers) / hold.mean);
  const { ahead, exact } = db.waitersAhead(ask.rank, ask.waiting, admissible);
  const position = ahead + 1;
  const expected = waitFor(position, hold.mean, servers);
  if (expected <= ask.waitMs) return undefined;
  return {
    status: 429,
    code: "expected_wait_exceeded",
    detail: `the expected wait (${exact ? "" : "at least "}${Math.ceil(expected / 1000)} s: position ${exact ? "" : "at least "}${position} in the queue) exceeds waitSeconds (${ask.waitMs / 1000})`,
    retryAfter: Math.min(3600, Math.max(1, Math.ceil(expected / 1000))),
  };
}

// ---- running means ------------------------------------------------------------------

function readMean(step: Step, key: string): { mean: number; samples: number } {
  const [mean, samples] = (step.db.getMeta(key) ?? "0,0").split(",").map(Number);
  return { mean: mean ?? 0, samples: samples ?? 0 };
}

function addSample(step: Step, key: string, value: number): void {
  const { mean, samples } = readMean(step, key);
  const next = samples === 0 ? value : mean + EWMA_ALPHA * (value - mean);
  step.db.setMeta(key, `${Math.round(next)},${Math.min(samples + 1, 1_000_000)}`);
}

/** A lease ended after holding its browser `ms`. */
export function recordHold(step: Step, ms: number): void {
  addSample(step, "hold_ms", ms);
}

/** A launch took `ms`. */
export function recordLaunch(step: Step, ms: number): void {
  addSample(step, "launch_ms", ms);
}

export function meanHoldMs(step: Step): { mean: number; samples: number } {
  return readMean(step, "hold_ms");
}

export function meanLaunchMs(step: Step): number {
  const { mean, samples } = readMean(step, "launch_ms");
  return samples > 0 ? mean : step.config.launchTimeoutSeconds * 1000 * 0.1;
}

/**
 * How long a caller `position` places from the head can expect to wait for a
 * session to come free: `position` departures from `servers` busy sessions
 * that each hold for the mean hold time. Null until enough holds were seen.
 */
export function expectedWaitMs(step: Step, position: number, servers: number): number | null {
  const hold = meanHoldMs(step);
  if (hold.samples < ADMISSION_MIN_SAMPLES || servers <= 0) return null;
  return waitFor(position, hold.mean, servers);
}

/** `position` departures from `servers` sessions that each hold for `meanHoldMs`, in ms. */
function waitFor(position: number, meanHoldMs: number, servers: number): number {
  return Math.ceil((position * meanHoldMs) / servers);
}

// ---- demand-driven warm target ---------------------------------------------------------

/** An acquire arrived: the decayed arrival rate behind `warmFromDemand` (kept only while that is on). */
export function recordArrival(step: Step): void {
  if (!step.config.warmFromDemand) return;
  const rate = arrivalRate(step);
  step.db.setMeta("arrivals", `${rate + 1000 / ARRIVAL_WINDOW_MS},${step.now}`);
}

/** Acquires per second, exponentially decayed over ARRIVAL_WINDOW_MS. */
export function arrivalRate(step: Step): number {
  const [rate, at] = (step.db.getMeta("arrivals") ?? "0,0").split(",").map(Number);
  if (!rate || !at) return 0;
  return rate * Math.exp(-Math.max(0, step.now - at) / ARRIVAL_WINDOW_MS);
}

/**
 * How many idle sessions the pool keeps ready: minIdle, or with
 * `warmFromDemand` the sessions that arrive during one launch (arrival rate ×
 * mean launch time, Little's law), never fewer than minIdle nor more than
 * maxSessions. Warm launches also need the account's permit, which the
 * governor gives only within the tenant's fair share.
 */
export function warmTarget(step: Step): number {
  const { config } = step;
  if (!config.warmFromDemand) return config.minIdle;
  const wanted = Math.ceil(arrivalRate(step) * (meanLaunchMs(step) / 1000));
  return Math.max(config.minIdle, Math.min(config.maxSessions, wanted));
}
