/**
 * The capacity governor's permits (src/governor/object.ts): never more than
 * the account's concurrency limit, never faster than its launch rate, given
 * back by release or by expiry, and kept honest by each pool's sync. Each test
 * has a governor of its own with its own limits and a virtual clock.
 */
import { describe, expect, it } from "vitest";
import { DEMAND_TTL_MS, PERMIT_TTL_MS, SYNC_GRACE_MS } from "../../src/governor/object";
import { expectWithinLimit, testGovernor } from "./governor";

describe("permits", () => {
  it("grants up to maxConcurrentSessions and answers account_full beyond, never holding more than the limit", async () => {
    const g = await testGovernor({ maxConcurrentSessions: 5, launchesPerSecond: 1000 });
    const granted: string[] = [];
    for (let i = 0; i < 8; i += 1) {
      const answer = await g.acquire(`t${i % 3}`, "p");
      expectWithinLimit(answer.glance);
      if (answer.granted) granted.push(answer.permitId);
      else expect(answer).toMatchObject({ reason: "account_full", retryAfterMs: expect.any(Number) });
    }
    expect(granted).toHaveLength(5);
    // A release makes room for exactly one more.
    await g.stub.release("t0", "p", [granted[0]!]);
    expect((await g.acquire("t1", "p")).granted).toBe(true);
    const full = await g.acquire("t2", "p");
    expect(full).toMatchObject({ granted: false, reason: "account_full" });
    expectWithinLimit(full.glance);
  });

  it("renews a permit asked for again with the same id instead of granting a second one", async () => {
    const g = await testGovernor({ maxConcurrentSessions: 1, launchesPerSecond: 1 });
    const first = await g.acquire("t", "p", "demand", "same");
    const again = await g.acquire("t", "p", "demand", "same");
    expect([first.granted, again.granted]).toEqual([true, true]);
    expect(again.glance).toMatchObject({ used: 1, limit: 1 });
    // It was renewed: it outlives the first grant's expiry.
    g.advance(PERMIT_TTL_MS - 1_000);
    await g.acquire("t", "p", "demand", "same");
    g.advance(2_000);
    expect((await g.stub.describe()).usage.used).toBe(1);
  });

  it("never grants faster than launchesPerSecond allows over a window of virtual time (bucket of one second's launches)", async () => {
    const g = await testGovernor({ maxConcurrentSessions: 10_000, launchesPerSecond: 2 });
    let granted = 0;
    const end = g.clock.now + 10_000;
    while (g.clock.now <= end) {
      const answer = await g.acquire("t", "p", "warm");
      if (answer.granted) granted += 1;
      else {
        expect(answer.reason).toBe("launch_rate");
        expect(answer.retryAfterMs).toBeGreaterThan(0);
        expect(answer.retryAfterMs).toBeLessThanOrEqual(500);
      }
      g.advance(100);
    }
    expect(granted).toBeLessThanOrEqual(2 * 10 + 2);
    expect(granted).toBeGreaterThanOrEqual(2 * 10);
  });

  it("holds a slow rate (Workers Free: one launch every 20 s) to one launch, then the next when it is due", async () => {
    const g = await testGovernor({ maxConcurrentSessions: 3, launchesPerSecond: 0.05 });
    expect((await g.acquire("t", "p")).granted).toBe(true);
    const refused = await g.acquire("t", "p");
    expect(refused).toMatchObject({ granted: false, reason: "launch_rate" });
    if (!refused.granted) expect(refused.retryAfterMs).toBe(20_000);
    g.advance(19_000);
    expect((await g.acquire("t", "p")).granted).toBe(false);
    g.advance(1_000);
    expect((await g.acquire("t", "p")).granted).toBe(true);
  });

  it("ends the permits of a pool that stops syncing after PERMIT_TTL_MS", async () => {
    const g = await testGovernor({ maxConcurrentSessions: 2, launchesPerSecond: 1000 });
    await g.acquire("t", "gone", "warm");
    await g.acquire("t", "gone", "warm");
    expect((await g.acquire("t", "other")).granted).toBe(false);
    g.advance(PERMIT_TTL_MS - 1);
    expect((await g.stub.describe()).usage.used).toBe(2);
    g.advance(1);
    expect((await g.stub.describe()).usage.used).toBe(0);
    expect((await g.acquire("t", "other")).granted).toBe(true);
  });

  it("sync renews what the pool lists and adopts ids it never granted (launched while it was unreachable)", async () => {
    const g = await testGovernor({ maxConcurrentSessions: 10, launchesPerSecond: 1000 });
    const granted = await g.acquire("t", "p");
    g.advance(PERMIT_TTL_MS - 1_000);
    const synced = await g.stub.sync("t", "p", [granted.permitId, "t/p/launched-offline"]);
    expect(synced.glance.used).toBe(2);
    expect(synced.shed).toBe(0);
    g.advance(PERMIT_TTL_MS - 1_000);
    const view = await g.stub.describe();
    expect(view.usage.used).toBe(2);
    expect(view.tenants).toEqual([expect.objectContaining({ tenant: "t", held: 2 })]);
  });

  it("sync drops the pool's unlisted permits, but keeps one granted within SYNC_GRACE_MS (a grant that crossed the list) and other pools' permits", async () => {
    const g = await testGovernor({ maxConcurrentSessions: 10, launchesPerSecond: 1000 });
    const kept = await g.acquire("t", "p");
    const stale = await g.acquire("t", "p");
    const elsewhere = await g.acquire("t", "q");
    g.advance(SYNC_GRACE_MS + 1);
    const fresh = await g.acquire("t", "p");
    const synced = await g.stub.sync("t", "p", [kept.permitId]);
    expect(synced.glance.used).toBe(3);
    // The stale one is gone: releasing it again changes nothing; the fresh one and q's are still held.
    await g.stub.release("t", "p", [stale.permitId]);
    expect((await g.stub.describe()).usage.used).toBe(3);
    await g.stub.release("t", "p", [fresh.permitId]);
    await g.stub.release("t", "q", [elsewhere.permitId]);
    expect((await g.stub.describe()).usage.used).toBe(1);
  });

  it("release is idempotent and only ends the named pool's permits", async () => {
    const g = await testGovernor({ maxConcurrentSessions: 10, launchesPerSecond: 1000 });
    const mine = await g.acquire("t", "p");
    await g.stub.release("t", "someone-else", [mine.permitId]);
    expect((await g.stub.describe()).usage.used).toBe(1);
    await g.stub.release("t", "p", [mine.permitId]);
    await g.stub.release("t", "p", [mine.permitId, "never-granted"]);
    expect((await g.stub.describe()).usage.used).toBe(0);
  });

  it("tells the pools whose launches wait when permits are given back, at most one pool per permit", async () => {
    const g = await testGovernor({ maxConcurrentSessions: 2, launchesPerSecond: 1000 });
    const a = await g.acquire("a", "p");
    await g.acquire("a", "p");
    expect((await g.acquire("b", "q")).granted).toBe(false);
    expect((await g.acquire("c", "r")).granted).toBe(false);
    await g.stub.release("a", "p", [a.permitId]);
    expect(g.told.freed).toHaveLength(1);
    expect(["b", "c"]).toContain(g.told.freed[0]!.tenant);
    // Demand goes stale: nobody is told once the refused launches are old.
    g.advance(DEMAND_TTL_MS + 1);
    const remaining = (await g.stub.describe()).usage.used;
    expect(remaining).toBe(1);
    g.told.freed.length = 0;
    await g.stub.sync("a", "p", []);
    expect(g.told.freed).toEqual([]);
  });
});
