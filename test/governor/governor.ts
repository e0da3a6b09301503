/**
 * A capacity governor of the test's own (not the "account" one the rest of
 * the suite shares), with its clock and its calls to pools under the test's
 * control: the clock starts an hour ahead and moves only when the test moves
 * it; `told` records what the governor asked of pools (shed, capacityFreed)
 * instead of reaching pool objects.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { expect } from "vitest";
import type { AccountGlance, CapacityGovernor, LimitsPatch, PermitAnswer, PermitKind } from "../../src/governor/object";

export interface Told {
  shed: Array<{ tenant: string; pool: string; count: number }>;
  freed: Array<{ tenant: string; pool: string }>;
}

export async function testGovernor(limits: LimitsPatch) {
  const stub = env.GOVERNOR.get(env.GOVERNOR.idFromName(`test-${crypto.randomUUID()}`));
  const clock = { now: Date.now() + 60 * 60_000 };
  const told: Told = { shed: [], freed: [] };
  await runInDurableObject(stub, (governor: CapacityGovernor) => {
    governor.clock = () => clock.now;
    governor.pools = {
      shed: async (tenant, pool, count) => void told.shed.push({ tenant, pool, count }),
      capacityFreed: async (tenant, pool) => void told.freed.push({ tenant, pool }),
    };
  });
  await stub.setLimits(limits);
  let counter = 0;
  return {
    stub,
    clock,
    told,
    /** Asks for a permit with a fresh id (or `permitId`); the answer, and the id asked for. */
    async acquire(tenant: string, pool: string, kind: PermitKind = "demand", permitId = `${tenant}/${pool}/${++counter}`) {
      const answer = (await stub.acquire({ tenant, pool, permitId, kind })) as PermitAnswer;
      return { ...answer, permitId };
    },
    advance(ms: number) {
      clock.now += ms;
    },
  };
}

/** The governor never holds more permits than its limit. */
export function expectWithinLimit(glance: AccountGlance): void {
  expect(glance.used).toBeLessThanOrEqual(glance.limit);
  expect(glance.headroom).toBe(Math.max(0, glance.limit - glance.used));
}
