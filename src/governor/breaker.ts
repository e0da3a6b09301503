/**
 * The account's launch breaker. Pure transitions over a small record the
 * governor keeps in SQL, with the time passed in.
 *
 * When launches keep failing for everyone (the platform is down, the binding
 * is misconfigured) every pool retrying on its own hammers the platform and
 * burns the account's launch rate. After ACCOUNT_BREAKER_THRESHOLD failed
 * launches in a row the breaker opens: no permit for a cooldown (30 s,
 * doubling with each reopening, at most 5 min). Then it is half open: one
 * permit is granted, the probe, and no other until the probe's launch
 * settles: launched closes the breaker, failed opens it again. A probe whose
 * permit ends without an outcome (released, expired, refused by the
 * platform's limits) lets the next request probe instead. Platform 429s
 * (limits, not failures) never count toward the streak.
 */

export type BreakerState = "closed" | "open" | "half_open";

/** Failed launches in a row, account-wide, that open the breaker. */
export const ACCOUNT_BREAKER_THRESHOLD = 10;
/** The first cooldown; each reopening without a close in between doubles it. */
export const BREAKER_COOLDOWN_MS = 30_000;
export const BREAKER_MAX_COOLDOWN_MS = 5 * 60_000;

export interface Breaker {
  /** Failed launches in a row while closed. */
  streak: number;
  /** While open or half open: when the cooldown ends; null when closed. */
  until: number | null;
  /** Openings since the breaker last closed (the cooldown doubles with each). */
  opens: number;
  /** While half open: the permit granted as the probe, if one was. */
  probe: string | null;
}

export const CLOSED: Breaker = { streak: 0, until: null, opens: 0, probe: null };

export function stateOf(breaker: Breaker, now: number): BreakerState {
  if (breaker.until === null) return "closed";
  return now < breaker.until ? "open" : "half_open";
}

function open(breaker: Breaker, now: number): Breaker {
  const opens = breaker.opens + 1;
  const cooldown = Math.min(BREAKER_MAX_COOLDOWN_MS, BREAKER_COOLDOWN_MS * 2 ** (opens - 1));
  return { streak: 0, until: now + cooldown, opens, probe: null };
}

/** A launch failed. While closed it extends the streak (and may open); the probe's failure reopens; other late failures change nothing. */
export function launchFailed(breaker: Breaker, permitId: string, now: number): Breaker {
  const state = stateOf(breaker, now);
  if (state === "closed") {
    const streak = breaker.streak + 1;
    return streak >= ACCOUNT_BREAKER_THRESHOLD ? open(breaker, now) : { ...breaker, streak };
  }
  if (state === "half_open" && breaker.probe === permitId) return open(breaker, now);
  return breaker;
}

/** A launch succeeded: the streak starts over, and a half-open breaker closes (the platform launches again). */
export function launchSucceeded(breaker: Breaker, now: number): Breaker {
  return stateOf(breaker, now) === "half_open" ? CLOSED : { ...breaker, streak: 0 };
}
