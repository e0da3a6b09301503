/**
 * The simulator against a queue with a known answer. A pool pre-warmed to c
 * sessions that are reused at once (launch and reset instant), Poisson
 * arrivals, exponential holds, nobody turned away (waitSeconds and maxWaiters
 * far beyond reach, so admission control never judges a caller too late): that
 * is M/M/c, whose waits Erlang C gives (sim/erlang.ts).
 *
 * The formula is applied to the traffic actually drawn (its arrival rate and
 * mean hold), so the test judges the queue, not the random numbers. Tolerances,
 * from 8 seeds of 15,000 arrivals (largest error seen: mean wait 15 %, P(wait
 * > 0) 4 %, p95 7 %; here 12,000 arrivals, 6 to 10 s on 2 cores): mean wait
 * within 25 %, P(wait > 0) within 10 %, p95 within 15 %, all relative. The
 * same figures judged against c − 1 sessions must fail by far.
 */
import { describe, expect, it } from "vitest";
import { type ArrivalSource, arrivalsOf } from "../../sim/arrivals";
import { erlangC } from "../../sim/erlang";
import { simulated } from "./run";

const SESSIONS = 3;
const RATE = 1.5;
const HOLD_SECONDS = 1;
const ARRIVALS = 12_000;

function drawn(source: ArrivalSource): { rate: number; meanHold: number } {
  const arrivals = [...arrivalsOf(source)];
  const span = arrivals.at(-1)!.atSeconds - arrivals[0]!.atSeconds;
  return { rate: (arrivals.length - 1) / span, meanHold: arrivals.reduce((sum, a) => sum + a.holdSeconds, 0) / arrivals.length };
}

const within = (actual: number, expected: number, relative: number) => Math.abs(actual / expected - 1) <= relative;

describe("the sizing simulator", () => {
  it("reproduces Erlang C's waits for an M/M/c pool, and not those of one session fewer", async () => {
    const source: ArrivalSource = { kind: "poisson", rate: RATE, holdSeconds: HOLD_SECONDS, holdDist: "exp", count: ARRIVALS, seed: 1 };
    const result = await simulated({
      arrivals: source,
      config: { maxSessions: SESSIONS, minIdle: SESSIONS, maxWaiters: 10_000 },
      waitSeconds: 3600,
      launchSeconds: 0,
      resetSeconds: 0,
      closeSeconds: 0,
      warmupSeconds: 1,
    });
    expect(result.violations).toEqual([]);
    expect(result.served).toBe(ARRIVALS);
    expect(result.rejected).toEqual({});
    expect(result.timedOut).toBe(0);
    // Pre-warmed: the c sessions launched before the first arrival are all it ever needs.
    expect(result.launched).toBe(SESSIONS);

    const traffic = drawn(source);
    // The draw itself is close to what was asked (ρ = 0.5).
    expect(within(traffic.rate * traffic.meanHold, RATE * HOLD_SECONDS, 0.05)).toBe(true);
    // Little's law: the busy sessions are the arrival rate times the mean hold.
    expect(within(result.meanBusy, traffic.rate * traffic.meanHold, 0.05)).toBe(true);

    const right = erlangC(SESSIONS, traffic.rate, traffic.meanHold);
    const measured = { mean: result.wait.mean, waited: result.waitedShare, p95: result.wait.p95 };
    expect(right.waitQuantile(0.95)).toBeGreaterThan(0);
    expect({
      mean: within(measured.mean, right.meanWaitSeconds, 0.25),
      waited: within(measured.waited, right.waitProbability, 0.1),
      p95: within(measured.p95, right.waitQuantile(0.95), 0.15),
    }).toEqual({ mean: true, waited: true, p95: true });

    const wrong = erlangC(SESSIONS - 1, traffic.rate, traffic.meanHold);
    expect({
      mean: within(measured.mean, wrong.meanWaitSeconds, 0.25),
      waited: within(measured.waited, wrong.waitProbability, 0.1),
      p95: within(measured.p95, wrong.waitQuantile(0.95), 0.15),
    }).toEqual({ mean: false, waited: false, p95: false });
  });
});
