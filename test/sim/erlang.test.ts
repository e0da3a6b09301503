import { describe, expect, it } from "vitest";
import { erlangC } from "../../sim/erlang";

describe("the Erlang C formula the simulator is checked against", () => {
  it("gives M/M/1's answers for one session: P(wait) = ρ, mean wait = ρ / (μ − λ)", () => {
    const q = erlangC(1, 0.5, 1);
    expect(q.waitProbability).toBeCloseTo(0.5, 12);
    expect(q.meanWaitSeconds).toBeCloseTo(1, 12);
  });

  it("matches values worked by hand", () => {
    // c = 2, a = 1: Σ_{k<2} a^k/k! = 2, a^2/2! / (1 − ρ) = 1, so C = 1/3; wait = C / (2 − 1).
    expect(erlangC(2, 1, 1).waitProbability).toBeCloseTo(1 / 3, 12);
    expect(erlangC(2, 1, 1).meanWaitSeconds).toBeCloseTo(1 / 3, 12);
    // c = 4, a = 3: 13 and 81/24 × 4 = 13.5, so C = 13.5 / 26.5; holds of 2 s: a = 1.5/s × 2 s.
    expect(erlangC(4, 1.5, 2).waitProbability).toBeCloseTo(13.5 / 26.5, 12);
    expect(erlangC(4, 1.5, 2).meanWaitSeconds).toBeCloseTo(13.5 / 26.5 / (4 / 2 - 1.5), 12);
  });

  it("puts the p-quantile of the wait where P(wait > t) = C·e^(−(cμ−λ)t) equals 1 − p, and at 0 when enough never wait", () => {
    const q = erlangC(3, 1.5, 1);
    const t = q.waitQuantile(0.95);
    expect(q.waitProbability * Math.exp(-(3 - 1.5) * t)).toBeCloseTo(0.05, 12);
    expect(q.waitQuantile(0.5)).toBe(0);
  });

  it("says an overloaded pool's wait is unbounded", () => {
    expect(erlangC(3, 3, 1).meanWaitSeconds).toBe(Infinity);
    expect(erlangC(3, 3, 1).waitProbability).toBe(1);
  });
});
