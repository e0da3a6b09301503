/**
 * Fair shares among tenants (src/governor/share.ts, as the governor applies
 * it): weights from the tenants' quotas, warm browsers never beyond a share,
 * a waiting caller beyond its share only while nobody else waits within
 * theirs, and tenants above their shares asked to shed when a starved one
 * finds the account full. Weights are set through the admin API, as an
 * operator would; each test has a governor of its own.
 */
import { describe, expect, it } from "vitest";
import { SHED_ASK_MS } from "../../src/governor/pools";
import { call } from "../support/http";
import { ADMIN, tenantName } from "../support/tenants";
import { expectWithinLimit, testGovernor } from "./governor";

async function tenantWeighing(weight: number, prefix = "gw"): Promise<string> {
  const tenant = tenantName(prefix);
  const reply = await call(`/v1/admin/tenants/${tenant}`, { method: "PUT", body: { weight }, key: ADMIN });
  expect(reply.status, JSON.stringify(reply.body)).toBe(200);
  return tenant;
}

describe("fair shares", () => {
  it("converge to the weights (1 and 3 of 8) while both tenants keep asking and browsers keep ending", async () => {
    const g = await testGovernor({ maxConcurrentSessions: 8, launchesPerSecond: 1000 });
    const light = await tenantWeighing(1);
    const heavy = await tenantWeighing(3);
    const held = new Map<string, string[]>([
      [light, []],
      [heavy, []],
    ]);
    // The light tenant gets there first and takes the whole account.
    for (let i = 0; i < 8; i += 1) {
      const answer = await g.acquire(light, "p");
      if (answer.granted) held.get(light)!.push(answer.permitId);
    }
    expect(held.get(light)).toHaveLength(8);
    for (let round = 0; round < 40; round += 1) {
      // A browser ends, the oldest of one tenant's, each tenant's in turn (leases end on both sides).
      const turn = round % 2 === 0 ? light : heavy;
      const ending = held.get(turn)!.length > 0 ? turn : turn === light ? heavy : light;
      const permit = held.get(ending)!.shift()!;
      await g.stub.release(ending, "p", [permit]);
      // Pools asked to shed close one idle browser each (the light tenant's browsers are idle between leases).
      for (const ask of g.told.shed.splice(0)) {
        for (let n = 0; n < ask.count && held.get(ask.tenant)!.length > 0; n += 1) await g.stub.release(ask.tenant, ask.pool, [held.get(ask.tenant)!.shift()!]);
      }
      // Both keep asking for browsers their callers wait for.
      for (const tenant of [light, heavy, light, heavy]) {
        const answer = await g.acquire(tenant, "p");
        expectWithinLimit(answer.glance);
        if (answer.granted) held.get(tenant)!.push(answer.permitId);
        else expect(["account_full", "over_share"]).toContain(answer.reason);
      }
      g.advance(1_000);
    }
    const view = await g.stub.describe();
    const tenants = Object.fromEntries(view.tenants.map((t) => [t.tenant, t]));
    expect(tenants[light]).toMatchObject({ weight: 1, share: 2 });
    expect(tenants[heavy]).toMatchObject({ weight: 3, share: 6 });
    expect(Math.abs(held.get(light)!.length - 2)).toBeLessThanOrEqual(0.8);
    expect(Math.abs(held.get(heavy)!.length - 6)).toBeLessThanOrEqual(0.8);
    expect(view.usage.used).toBe(held.get(light)!.length + held.get(heavy)!.length);
  });

  it("grant warm browsers only within the tenant's share", async () => {
    const g = await testGovernor({ maxConcurrentSessions: 4, launchesPerSecond: 1000 });
    // Another tenant waits for two launches it was refused (the account was full of b's browsers, then b's ended).
    const b = await Promise.all([g.acquire("b", "p"), g.acquire("b", "p"), g.acquire("b", "p"), g.acquire("b", "p")]);
    expect((await g.acquire("a", "p", "demand", "a-1")).granted).toBe(false);
    expect((await g.acquire("a", "p", "demand", "a-2")).granted).toBe(false);
    await g.stub.release("b", "p", b.map((answer) => answer.permitId));
    // Shares now: a (held 0, waits 2) 2, b (held 0, warm) 2 of 4. b's warm target gets its share and no more.
    expect((await g.acquire("b", "p", "warm")).granted).toBe(true);
    expect((await g.acquire("b", "p", "warm")).granted).toBe(true);
    expect(await g.acquire("b", "p", "warm")).toMatchObject({ granted: false, reason: "over_share" });
    expect((await g.acquire("a", "p", "demand", "a-1")).granted).toBe(true);
    expect((await g.acquire("a", "p", "demand", "a-2")).granted).toBe(true);
  });

  it("refuse a waiting caller beyond its share with over_share while another tenant waits within its own, and grant it once nobody does", async () => {
    const g = await testGovernor({ maxConcurrentSessions: 4, launchesPerSecond: 1000 });
    const first = await g.acquire("big", "p");
    await g.acquire("big", "p");
    await g.acquire("big", "p");
    await g.acquire("big", "p");
    expect(await g.acquire("small", "p", "demand", "small-1")).toMatchObject({ granted: false, reason: "account_full" });
    await g.stub.release("big", "p", [first.permitId]);
    // big holds 3, its share now that small waits for one: its next caller must wait.
    expect(await g.acquire("big", "p")).toMatchObject({ granted: false, reason: "over_share" });
    expect((await g.acquire("small", "p", "demand", "small-1")).granted).toBe(true);
    // Nobody else waits: big may go beyond its share... once there is room.
    expect(await g.acquire("big", "p")).toMatchObject({ granted: false, reason: "account_full" });
  });

  it("a waiting caller beyond its share is granted when nobody else waits", async () => {
    const g = await testGovernor({ maxConcurrentSessions: 4, launchesPerSecond: 1000 });
    await g.acquire("quiet", "p", "warm");
    for (let i = 0; i < 3; i += 1) expect((await g.acquire("busy", "p")).granted).toBe(true);
    const view = await g.stub.describe();
    expect(view.tenants.map((t) => [t.tenant, t.held])).toEqual([
      ["busy", 3],
      ["quiet", 1],
    ]);
  });

  it("ask the pools of tenants above their shares to shed when a starved tenant finds the account full, once per burst", async () => {
    const g = await testGovernor({ maxConcurrentSessions: 6, launchesPerSecond: 1000 });
    const x: string[] = [];
    for (let i = 0; i < 4; i += 1) x.push((await g.acquire("hog", "x")).permitId);
    for (let i = 0; i < 2; i += 1) await g.acquire("hog", "y");
    expect(await g.acquire("starved", "p")).toMatchObject({ granted: false, reason: "account_full" });
    await g.acquire("starved", "p");
    await g.acquire("starved", "p");
    // The starved tenant waits for 3: shares 3 and 3, so the hog (holding 6) is asked for 3, from its fullest pool first.
    const asked = g.told.shed.reduce((sum, ask) => sum + ask.count, 0);
    expect(asked).toBe(3);
    expect(g.told.shed[0]).toMatchObject({ tenant: "hog", pool: "x" });
    // The hog's pools hear the same through their sync, less what they were already asked.
    expect((await g.stub.sync("hog", "x", x)).shed).toBe(0);
    // Once the ask is old and the starved tenant still waits, the next sync asks again.
    g.advance(SHED_ASK_MS);
    expect((await g.stub.sync("hog", "x", x)).shed).toBe(3);
  });
});
