/**
 * Demand-driven warm pools (`warmFromDemand`, src/pool/capacity.ts): the pool
 * keeps as many idle sessions as arrive during one launch (arrival rate ×
 * mean launch time, Little's law), within minIdle..maxSessions, and lets the
 * extra ones go after idleTimeoutSeconds once demand fades.
 */
import { describe, expect, it } from "vitest";
import { closeSucceeded, launchSucceeded, releaseLease, resetSucceeded, tick } from "../../src/pool/machine";
import { effectsOf, withMachine, type Machine } from "../support/machine";

/** Callers arriving every `everyMs` for `count` arrivals, each served by an idle session and releasing it at once. */
function arrivals(m: Machine, count: number, everyMs: number): void {
  for (let i = 0; i < count; i += 1) {
    m.now += everyMs;
    const asked = m.request({ waitMs: 30_000 });
    const result = asked.result;
    if (result.kind !== "granted") throw new Error(`caller ${i} was not served at once (${result.kind})`);
    m.run((s) => releaseLease(s, result.lease.id));
    m.run((s) => resetSucceeded(s, result.lease.session_row!));
  }
}

/** The first caller pays a launch of `ms`, from which the pool learns its launch time; its session is then idle. */
function learnLaunchTime(m: Machine, ms: number): void {
  const first = m.request({ waitMs: 30_000 });
  if (first.result.kind !== "waiting") throw new Error("the first caller should wait for a launch");
  const launch = effectsOf(first.effects, "launch")[0]!;
  m.now += ms;
  m.run((s) => launchSucceeded(s, launch.row, "browser-1"));
  m.run((s) => releaseLease(s, first.result.kind === "waiting" ? first.result.lease.id : ""));
  m.run((s) => resetSucceeded(s, launch.row));
}

/** Lands every launch the pool has reserved, each after `ms`. */
function landLaunches(m: Machine, ms: number): number {
  let landed = 0;
  for (const session of m.db.sessionsIn("launching")) {
    m.run((s) => launchSucceeded(s, session.id, `warm-${session.id}`));
    landed += 1;
  }
  m.now += ms;
  return landed;
}

describe("warm target from demand", () => {
  it("keeps as many idle sessions as arrive during one launch", () =>
    withMachine({ maxSessions: 10, maxSessionUses: 0, maxSessionAgeSeconds: 0, warmFromDemand: true, idleTimeoutSeconds: 60 }, (m) => {
      learnLaunchTime(m, 2_000);

      // 4 callers a second for 2 minutes: a rate of 4 × (1 − e^−2) ≈ 3.47/s over the 60 s window,
      // so 3.47 × 2 s ≈ 6.9 callers arrive during one launch: 7 sessions kept warm.
      arrivals(m, 480, 250);
      // Launched while the one session served each caller: the warm target, beside the session in use.
      expect(landLaunches(m, 0)).toBe(7);
      expect(m.db.counts().idle).toBe(8);
      expect(m.violations()).toEqual([]);
    }));

  it("never keeps more than maxSessions", () =>
    withMachine({ maxSessions: 5, maxSessionUses: 0, maxSessionAgeSeconds: 0, warmFromDemand: true, idleTimeoutSeconds: 60 }, (m) => {
      learnLaunchTime(m, 2_000);
      // The same demand asks for 7 warm sessions; the pool has room for 4 beside the one in use.
      arrivals(m, 480, 250);
      expect(landLaunches(m, 0)).toBe(4);
      expect(m.db.counts().idle).toBe(5);
      expect(m.violations()).toEqual([]);
    }));

  it("lets the extra idle sessions go after idleTimeoutSeconds once demand fades, down to minIdle", () =>
    withMachine({ maxSessions: 10, maxSessionUses: 0, maxSessionAgeSeconds: 0, minIdle: 1, warmFromDemand: true, idleTimeoutSeconds: 60 }, (m) => {
      learnLaunchTime(m, 2_000);
      arrivals(m, 480, 250);
      landLaunches(m, 0);
      expect(m.db.counts().idle).toBeGreaterThan(1);

      // Nobody comes for ten minutes: each idle session past its idle timeout is closed, but minIdle stays.
      for (let minute = 0; minute < 10; minute += 1) {
        m.now += 60_000;
        const ran = m.run(tick);
        for (const close of effectsOf(ran.effects, "close")) m.run((s) => closeSucceeded(s, close.row));
      }
      const counts = m.db.counts();
      expect(counts.idle).toBe(1);
      expect(counts.launching).toBe(0);
      expect(m.violations()).toEqual([]);
    }));

  it("is minIdle when warmFromDemand is off, whatever the demand", () =>
    withMachine({ maxSessions: 10, maxSessionUses: 0, maxSessionAgeSeconds: 0, minIdle: 2, idleTimeoutSeconds: 60 }, (m) => {
      m.run(tick);
      landLaunches(m, 2_000);
      arrivals(m, 480, 250);
      // One launch replaced the session in use, as minIdle asks, however fast callers came.
      expect(landLaunches(m, 0)).toBe(1);
      expect(m.db.counts().idle).toBe(3);
    }));
});
