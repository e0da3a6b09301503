/**
 * Fair shares of the account's browsers among its tenants: weighted max-min
 * fairness by water-filling. Pure functions, no storage, no clock: the
 * governor (object.ts) feeds them what its tables hold and decides with the
 * answer.
 *
 * Each active tenant claims its demand (browsers it holds plus launches it
 * asked for and was refused). Capacity is poured evenly per unit of weight;
 * a tenant whose demand is below its level is filled to its demand and drops
 * out, and what it leaves is poured again among the rest. So no tenant is
 * given more than it asks for, and a tenant that asks for more than its
 * weighted level gets exactly that level. Shares are fractional; the
 * governor grants a browser when `held + 1 <= share`, and calls a tenant
 * starved only when it could use a whole browser within its share, so a
 * fraction no tenant can use whole never sits idle (see `starved`).
 */

/** A tenant's claim on the account. */
export interface Claim {
  tenant: string;
  /** > 0; tenants without one of their own weigh 1. */
  weight: number;
  /** Browsers held plus launches pending (refused and still wanted). */
  demand: number;
}

/** Float slack for comparisons of sums of fractions. */
export const EPSILON = 1e-9;

/** Each claim's weighted max-min fair share of `capacity` (shares sum to min(capacity, total demand)). */
export function fairShares(capacity: number, claims: readonly Claim[]): Map<string, number> {
  const shares = new Map<string, number>();
  let remaining = Math.max(0, capacity);
  let open = claims.filter((c) => {
    if (c.demand > 0) return true;
    shares.set(c.tenant, 0);
    return false;
  });
  while (open.length > 0) {
    const weights = open.reduce((sum, c) => sum + c.weight, 0);
    const level = remaining / weights;
    const filled = open.filter((c) => c.demand <= level * c.weight + EPSILON);
    if (filled.length === 0) {
      for (const c of open) shares.set(c.tenant, level * c.weight);
      break;
    }
    for (const c of filled) {
      shares.set(c.tenant, c.demand);
      remaining -= c.demand;
    }
    open = open.filter((c) => !filled.includes(c));
  }
  return shares;
}

/** A tenant as the shed plan sees it. */
export interface Standing {
  tenant: string;
  held: number;
  pending: number;
  share: number;
  /** Browsers held per pool of the tenant. */
  pools: ReadonlyArray<{ pool: string; held: number }>;
}

/** Waits for a launch that fits in its share: it could use a whole browser more without passing its share. */
export function starved(t: Standing): boolean {
  return t.pending > 0 && t.held + 1 <= t.share + EPSILON;
}

/** A request to a pool to close idle browsers. */
export interface ShedAsk {
  tenant: string;
  pool: string;
  count: number;
}

/**
 * Which pools should close idle browsers so starved tenants can have their
 * share, when the account has no room for them: the browsers starved tenants
 * are short of (whole browsers within their shares) less the free room, taken
 * from the tenants most above their shares first, each at most what it holds
 * beyond its share (rounded up), from its fullest pools first. Empty when
 * nobody is starved or the free room covers them.
 */
export function shedPlan(capacity: number, used: number, standings: readonly Standing[]): ShedAsk[] {
  const short = standings.filter(starved).reduce((sum, t) => sum + Math.floor(t.share - t.held + EPSILON), 0);
  let need = short - Math.max(0, capacity - used);
  if (need <= 0) return [];
  const asks: ShedAsk[] = [];
  const over = standings.filter((t) => t.held > t.share + EPSILON).sort((a, b) => b.held - b.share - (a.held - a.share) || (a.tenant < b.tenant ? -1 : 1));
  for (const t of over) {
    let take = Math.min(Math.ceil(t.held - t.share - EPSILON), need);
    need -= take;
    for (const p of [...t.pools].sort((a, b) => b.held - a.held || (a.pool < b.pool ? -1 : 1))) {
      if (take <= 0) break;
      const count = Math.min(p.held, take);
      if (count > 0) asks.push({ tenant: t.tenant, pool: p.pool, count });
      take -= count;
    }
    if (need <= 0) break;
  }
  return asks;
}
