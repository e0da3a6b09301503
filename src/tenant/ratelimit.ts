/**
 * The fallback per-key rate limiter, used where the Rate Limiting binding is
 * absent: a fixed window per key, counted in the tenant object's memory.
 * Exact, since that object is the only place that counts for its tenant, and
 * harmless to lose on eviction (the windows start again from zero).
 *
 * Time is passed in: the object's clock, which tests move.
 */

/** Keys the fallback limiter tracks before it forgets those of past windows. */
const RATE_WINDOWS_KEPT = 10_000;

/** Per-key limit of the fallback limiter. */
export interface RateRule {
  limit: number;
  periodMs: number;
}

export class FallbackLimiter {
  private readonly windows = new Map<string, { window: number; count: number }>();

  /** Counts one request in `keyId`'s current window; the seconds until the window ends if it is over the limit. */
  count(keyId: string, rate: RateRule, now: number): number | null {
    const window = Math.floor(now / rate.periodMs);
    let entry = this.windows.get(keyId);
    if (!entry || entry.window !== window) {
      if (this.windows.size >= RATE_WINDOWS_KEPT) {
        for (const [key, value] of this.windows) if (value.window !== window) this.windows.delete(key);
      }
      entry = { window, count: 0 };
      this.windows.set(keyId, entry);
    }
    entry.count += 1;
    if (entry.count <= rate.limit) return null;
    return Math.max(1, Math.ceil(((window + 1) * rate.periodMs - now) / 1000));
  }

  /** Forgets `keyId`'s window (its key was revoked). */
  forget(keyId: string): void {
    this.windows.delete(keyId);
  }
}
