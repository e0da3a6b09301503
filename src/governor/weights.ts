/**
 * Tenants' weights, as the governor knows them: read from each tenant's
 * object (its quota's `weight`) and cached in memory for WEIGHT_TTL_MS. A
 * weight is a hint for sharing, not a guarantee, so a cached value a minute
 * old is good enough, and the cache costs nothing to lose on eviction. An
 * operator who changes a weight has the Worker call the governor's
 * `forgetWeight`, so the next decision reads it again (best effort: if that
 * call fails, the change is seen when the entry expires).
 *
 * A tenant never read is read before the governor decides (with a deadline;
 * if its object does not answer, it weighs the default for a short while); a
 * stale one is used as it is and read again in the background.
 */
import { DEFAULT_WEIGHT } from "../tenant/object";
import { message, withDeadline } from "../deadline";
import { log } from "../log";
import { tenantOf } from "../stubs";

/** How long a weight read from the tenant object is used before it is read again. */
export const WEIGHT_TTL_MS = 60_000;
/** A tenant object that did not answer is asked again after this long (meanwhile its tenant weighs DEFAULT_WEIGHT or what it weighed). */
export const WEIGHT_RETRY_MS = 10_000;
/** Deadline of one read from a tenant object. */
export const WEIGHT_READ_TIMEOUT_MS = 5_000;

/** How the governor reads a tenant's weight: its object, in production; tests may replace it. */
export type WeightSource = (tenant: string) => Promise<number>;

export function tenantWeights(env: Env): WeightSource {
  return (tenant) => tenantOf(env, tenant).weightOf();
}

export class WeightCache {
  private readonly entries = new Map<string, { weight: number; until: number }>();
  private readonly reading = new Map<string, Promise<void>>();

  constructor(
    private source: WeightSource,
    private readonly background: (work: Promise<unknown>) => void,
  ) {}

  /** The weight to decide with: the cached one, or the default for a tenant not read yet. */
  weightOf(tenant: string): number {
    return this.entries.get(tenant)?.weight ?? DEFAULT_WEIGHT;
  }

  /** Reads the weights of `tenants` never read (awaited) and refreshes stale ones (in the background). Never throws. */
  async ensure(tenants: Iterable<string>, now: number): Promise<void> {
    const missing: Promise<void>[] = [];
    for (const tenant of new Set(tenants)) {
      const entry = this.entries.get(tenant);
      if (entry === undefined) missing.push(this.read(tenant, now));
      else if (entry.until <= now) this.background(this.read(tenant, now));
    }
    await Promise.all(missing);
  }

  /** The tenant's weight changed: it is read again before the next decision that involves it. */
  forget(tenant: string): void {
    this.entries.delete(tenant);
    // A read already under way may carry the old weight: its answer is dropped.
    this.reading.delete(tenant);
  }

  useSource(source: WeightSource): void {
    this.source = source;
    this.entries.clear();
  }

  private read(tenant: string, now: number): Promise<void> {
    const current = this.reading.get(tenant);
    if (current) return current;
    const pending: Promise<void> = withDeadline(this.source(tenant), WEIGHT_READ_TIMEOUT_MS, `tenant ${tenant} weightOf`)
      .then(
        (weight) => {
          if (this.reading.get(tenant) !== pending) return;
          this.entries.set(tenant, { weight: Number.isFinite(weight) && weight > 0 ? weight : DEFAULT_WEIGHT, until: now + WEIGHT_TTL_MS });
        },
        (error) => {
          log("governor_weight_read_failed", { tenant, error: message(error) });
          if (this.reading.get(tenant) !== pending) return;
          this.entries.set(tenant, { weight: this.weightOf(tenant), until: now + WEIGHT_RETRY_MS });
        },
      )
      .finally(() => {
        if (this.reading.get(tenant) === pending) this.reading.delete(tenant);
      });
    this.reading.set(tenant, pending);
    return pending;
  }
}
