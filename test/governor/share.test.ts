/**
 * The fair-share arithmetic on its own (src/governor/share.ts): weighted
 * max-min water-filling, who counts as starved, and which pools are asked to
 * shed when the account is full.
 */
import { describe, expect, it } from "vitest";
import { fairShares, shedPlan, type Standing, starved } from "../../src/governor/share";

const shares = (capacity: number, ...claims: Array<[tenant: string, weight: number, demand: number]>) =>
  Object.fromEntries(fairShares(capacity, claims.map(([tenant, weight, demand]) => ({ tenant, weight, demand }))));

describe("fairShares (weighted water-filling)", () => {
  it("splits capacity by weight among tenants that all want more than it", () => {
    expect(shares(8, ["a", 1, 100], ["b", 3, 100])).toEqual({ a: 2, b: 6 });
    expect(shares(9, ["a", 1, 50], ["b", 1, 50], ["c", 1, 50])).toEqual({ a: 3, b: 3, c: 3 });
  });

  it("gives a tenant no more than it asks for, and pours what it leaves among the rest by weight", () => {
    expect(shares(10, ["a", 1, 1], ["b", 1, 100], ["c", 3, 100])).toEqual({ a: 1, b: 9 / 4, c: 27 / 4 });
    expect(shares(10, ["small", 5, 2], ["big", 1, 100])).toEqual({ small: 2, big: 8 });
  });

  it("gives everyone its demand when the capacity covers it all", () => {
    expect(shares(120, ["a", 1, 3], ["b", 2, 40], ["c", 1, 0])).toEqual({ a: 3, b: 40, c: 0 });
  });

  it("never gives out more than the capacity, and fills it whenever demand does", () => {
    for (let run = 0; run < 200; run += 1) {
      const capacity = Math.floor(Math.random() * 50);
      const claims = Array.from({ length: 1 + Math.floor(Math.random() * 6) }, (_, i) => ({
        tenant: `t${i}`,
        weight: 0.5 + Math.random() * 5,
        demand: Math.floor(Math.random() * 30),
      }));
      const result = fairShares(capacity, claims);
      const total = [...result.values()].reduce((a, b) => a + b, 0);
      const demand = claims.reduce((a, c) => a + c.demand, 0);
      expect(total).toBeCloseTo(Math.min(capacity, demand), 6);
      for (const claim of claims) expect(result.get(claim.tenant)!).toBeLessThanOrEqual(claim.demand + 1e-9);
    }
  });
});

const standing = (tenant: string, held: number, pending: number, share: number, pools: Array<[string, number]> = [["p", held]]): Standing => ({
  tenant,
  held,
  pending,
  share,
  pools: pools.map(([pool, n]) => ({ pool, held: n })),
});

describe("starved and shedPlan", () => {
  it("a tenant is starved only if it waits and a whole browser more fits in its share", () => {
    expect(starved(standing("a", 2, 1, 6))).toBe(true);
    expect(starved(standing("a", 2, 0, 6))).toBe(false);
    expect(starved(standing("a", 2, 1, 2.67))).toBe(false);
  });

  it("asks the tenants most above their shares, from their fullest pools, for what starved tenants are short of", () => {
    const plan = shedPlan(8, 8, [standing("a", 7, 1, 2, [["x", 2], ["y", 5]]), standing("b", 1, 5, 6)]);
    expect(plan).toEqual([{ tenant: "a", pool: "y", count: 5 }]);
    // Two tenants over, one starved short of 3: the one furthest over gives first, across its pools.
    const spread = shedPlan(9, 9, [standing("a", 5, 0, 3, [["x", 1], ["y", 1], ["z", 3]]), standing("b", 4, 0, 3), standing("c", 0, 4, 3)]);
    expect(spread).toEqual([
      { tenant: "a", pool: "z", count: 2 },
      { tenant: "b", pool: "p", count: 1 },
    ]);
  });

  it("asks nothing when the free room covers the starved, or nobody is starved", () => {
    expect(shedPlan(10, 8, [standing("a", 7, 0, 7), standing("b", 1, 2, 3)])).toEqual([]);
    expect(shedPlan(8, 8, [standing("a", 3, 0, 2.67), standing("b", 3, 0, 2.67), standing("c", 2, 1, 2.67)])).toEqual([]);
  });
});
