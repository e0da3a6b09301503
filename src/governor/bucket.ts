/**
 * The account's launch rate as a token bucket. Pure: the governor keeps the
 * bucket in SQL (so an eviction does not refill it) and passes the time in.
 *
 * The platform enforces new browsers as a fill rate, so bursts get 429 at
 * launch. The bucket refills at `launchesPerSecond` and holds at most
 * `max(1, launchesPerSecond)` tokens: one second's worth of launches, and
 * never less than one whole launch, so a slow rate (0.05/s on Workers Free,
 * one launch every 20 s) still allows its one launch as soon as it is due,
 * while a fast one (3/s) may burst no more than the platform would refill in
 * a second. Each granted permit takes one token.
 */

export interface Bucket {
  tokens: number;
  /** When `tokens` was last brought up to date (ms). */
  at: number;
}

/** The most tokens the bucket holds at `rate` launches per second. */
export function bucketSize(rate: number): number {
  return Math.max(1, rate);
}

/** The bucket at `now`: refilled at `rate` per second since it was last updated, capped at its size. */
export function refill(bucket: Bucket, rate: number, now: number): Bucket {
  const elapsed = Math.max(0, now - bucket.at);
  return { tokens: Math.min(bucketSize(rate), bucket.tokens + (elapsed * rate) / 1000), at: Math.max(now, bucket.at) };
}

/** A full bucket, as a governor starts with. */
export function fullBucket(rate: number, now: number): Bucket {
  return { tokens: bucketSize(rate), at: now };
}

/** How long until the (refilled) bucket holds a whole token; 0 if it does. */
export function msUntilToken(bucket: Bucket, rate: number): number {
  return bucket.tokens >= 1 ? 0 : Math.ceil(((1 - bucket.tokens) * 1000) / rate);
}
