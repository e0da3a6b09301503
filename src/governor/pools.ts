/**
 * What the governor asks of pools, and how: close idle browsers (`shed`),
 * when a starved tenant finds the account full; ask again now
 * (`capacityFreed`), when permits come back while their launches wait. Both
 * are hints, sent fire-and-forget with a deadline, their failures logged: a
 * pool that misses one still retries on its own Retry-After and hears its
 * shed count from its next sync. A shed asked of a pool counts as under way
 * for SHED_ASK_MS, so a burst of refusals asks once.
 */
import { message, withDeadline } from "../deadline";
import { log } from "../log";
import { poolOf } from "../stubs";
import type { ShedAsk } from "./share";

/** Deadline of each call to a pool. */
export const POOL_CALL_TIMEOUT_MS = 5_000;
/** A shed asked of a pool counts as under way this long: it is not asked again meanwhile. */
export const SHED_ASK_MS = 10_000;

/** How the governor reaches pools. Production: the pool objects; tests replace it to see what the governor asks. */
export interface PoolCalls {
  /** Close up to `count` idle browsers (the pool releases their permits). */
  shed(tenant: string, pool: string, count: number): Promise<unknown>;
  /** Permits were given back while this pool's launches waited: ask again now. */
  capacityFreed(tenant: string, pool: string): Promise<unknown>;
}

export function poolCalls(env: Env): PoolCalls {
  return {
    shed: (tenant, name, count) => poolOf(env, tenant, name).shed(count),
    capacityFreed: (tenant, name) => poolOf(env, tenant, name).capacityFreed(),
  };
}

export class PoolMessages {
  /** Sheds asked and still under way ("tenant/pool" → how many, until when). */
  private readonly shedAsked = new Map<string, { count: number; until: number }>();

  constructor(
    private readonly calls: () => PoolCalls,
    private readonly background: (work: Promise<unknown>) => void,
  ) {}

  /** The part of `plan` not already under way, now recorded as under way (a sync answers it to its pool itself). */
  claimShed(plan: readonly ShedAsk[], now: number): ShedAsk[] {
    const asks: ShedAsk[] = [];
    for (const [key, entry] of this.shedAsked) if (entry.until <= now) this.shedAsked.delete(key);
    for (const ask of plan) {
      const key = `${ask.tenant}/${ask.pool}`;
      const underway = this.shedAsked.get(key)?.count ?? 0;
      if (ask.count <= underway) continue;
      this.shedAsked.set(key, { count: ask.count, until: now + SHED_ASK_MS });
      asks.push({ ...ask, count: ask.count - underway });
    }
    return asks;
  }

  /** Asks the pools of `plan` to close idle browsers, less what they were asked already. */
  shed(plan: readonly ShedAsk[], now: number): void {
    for (const ask of this.claimShed(plan, now)) {
      log("governor_shed_asked", { ...ask });
      this.tell("shed", ask.tenant, ask.pool, () => this.calls().shed(ask.tenant, ask.pool, ask.count));
    }
  }

  /** Tells these pools to ask for their waiting launches again now. */
  capacityFreed(pools: ReadonlyArray<{ tenant: string; pool: string }>): void {
    for (const { tenant, pool } of pools) this.tell("capacityFreed", tenant, pool, () => this.calls().capacityFreed(tenant, pool));
  }

  private tell(call: string, tenant: string, pool: string, work: () => Promise<unknown>): void {
    this.background(
      withDeadline(Promise.resolve().then(work), POOL_CALL_TIMEOUT_MS, `pool ${tenant}/${pool} ${call}`).catch((error) => {
        log("governor_pool_call_failed", { call, tenant, pool, error: message(error) });
      }),
    );
  }
}
