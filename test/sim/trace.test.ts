import { describe, expect, it } from "vitest";
import { parseTrace } from "../../sim/arrivals";
import { simulated } from "./run";

// Three callers on one session: A holds 10 s from 0 s; B (at 2 s) gets the
// session when A releases it; C (at 3 s) when B does.
const TRACE = "arrival_s,hold_s\n0,10\n2,5\n3,1\n";

const oneSession = { maxSessions: 1, minIdle: 1, maxWaiters: 10 };

describe("a trace replayed by the simulator", () => {
  it("reads arrival_s,hold_s lines after an optional header, and refuses anything else", () => {
    expect(parseTrace(TRACE)).toEqual([
      { atSeconds: 0, holdSeconds: 10 },
      { atSeconds: 2, holdSeconds: 5 },
      { atSeconds: 3, holdSeconds: 1 },
    ]);
    expect(parseTrace("1,2\n\n# a comment\n3,4")).toHaveLength(2);
    expect(() => parseTrace("0,1\nx,2")).toThrow(/line 2/);
    expect(() => parseTrace("5,1\n4,1")).toThrow(/time order/);
  });

  it("gives exactly the waits worked by hand on a warm session, with resets instant", async () => {
    const result = await simulated({
      arrivals: { kind: "trace", csv: TRACE },
      config: oneSession,
      waitSeconds: 60,
      launchSeconds: 0,
      resetSeconds: 0,
      warmupSeconds: 1,
      outcomes: true,
    });
    // A at once; B from 2 s to A's release at 10 s; C from 3 s to B's release at 15 s.
    expect(result.outcomes).toEqual([{ waitSeconds: 0 }, { waitSeconds: 8 }, { waitSeconds: 12 }]);
    expect(result.launched).toBe(1);
    expect(result.violations).toEqual([]);
  });

  it("adds each reset before the session serves the next caller", async () => {
    const result = await simulated({
      arrivals: { kind: "trace", csv: TRACE },
      config: oneSession,
      waitSeconds: 60,
      launchSeconds: 0,
      resetSeconds: 0.05,
      warmupSeconds: 1,
      outcomes: true,
    });
    expect(result.outcomes).toEqual([{ waitSeconds: 0 }, { waitSeconds: 8.05 }, { waitSeconds: 12.1 }]);
  });

  it("makes the first caller of a cold pool wait for the launch", async () => {
    const result = await simulated({
      arrivals: { kind: "trace", csv: TRACE },
      config: { ...oneSession, minIdle: 0 },
      waitSeconds: 60,
      launchSeconds: 1.5,
      resetSeconds: 0,
      outcomes: true,
    });
    // A's browser is up at 1.5 s and released at 11.5 s; B's at 16.5 s.
    expect(result.outcomes).toEqual([{ waitSeconds: 1.5 }, { waitSeconds: 9.5 }, { waitSeconds: 13.5 }]);
  });

  it("fails a caller whose waitSeconds runs out in the queue", async () => {
    const result = await simulated({
      arrivals: { kind: "trace", csv: TRACE },
      config: oneSession,
      waitSeconds: 10,
      launchSeconds: 0,
      resetSeconds: 0,
      warmupSeconds: 1,
      outcomes: true,
    });
    // C would be served at 15 s, but gives up at 3 + 10 = 13 s.
    expect(result.outcomes).toEqual([{ waitSeconds: 0 }, { waitSeconds: 8 }, { code: "pool_exhausted", reason: "wait_timeout" }]);
    expect(result.timedOut).toBe(1);
    expect(result.served).toBe(2);
  });
});
