/**
 * First come, first served, for every way capacity comes free (docs/design.md,
 * "Waiting and fairness"): whatever frees a session or a slot, the grant goes
 * to the head of the queue (lowest (rank, seq) among waiting leases), whoever a
 * launch or check was under way for, and a launch or check the head no longer
 * needs passes to the oldest waiter that has none. A launch reserved for
 * waiters is reserved for the oldest that has none, and that waiter waits for
 * it (at least until its deadline).
 *
 * Driven transition by transition over real SQLite (test/support/machine.ts),
 * so the order in which launches, checks and resets land is the test's.
 */
import { describe, expect, it } from "vitest";
import {
  ALIVE_BYPASS_MS,
  checkPassed,
  closeSucceeded,
  launchFailed,
  launchSucceeded,
  releaseLease,
  resetSucceeded,
  tick,
} from "../../src/pool/machine";
import { effectsOf, type Machine, withMachine } from "../support/machine";

/** A caller who queues (or waits for a launch or check) for up to `waitMs`; one millisecond after the previous, so arrival order is plain. */
function arrive(m: Machine, waitMs = 60_000): string {
  m.now += 1;
  const { result } = m.request({ waitMs });
  if (result.kind === "rejected") throw new Error(`request rejected: ${result.failure.detail}`);
  expect(result.kind).toBe("waiting");
  return result.lease.id;
}

/** The launch rows reserved by the last transitions, in the order they were asked for. */
function launchesIn(effects: ReturnType<Machine["run"]>["effects"]): number[] {
  return effectsOf(effects, "launch").map((launch) => launch.row);
}

/** The launching or resetting row currently owned by `leaseId`, if any. */
function reservationOf(m: Machine, leaseId: string) {
  return m.db.reservationsOf(leaseId)[0];
}

describe("first come, first served, whatever frees capacity", () => {
  it("gives a released session, once reset, to the head of the queue, and passes the head's launch to the next waiter", () =>
    withMachine({ maxSessions: 2 }, (m) => {
      const held = m.leased();
      const first = arrive(m);
      const launch = reservationOf(m, first)!;
      expect(launch.state).toBe("launching");
      const second = arrive(m);
      expect(reservationOf(m, second), "no slot is left for the second caller").toBeUndefined();

      m.run((s) => releaseLease(s, held.lease.id));
      const ran = m.run((s) => resetSucceeded(s, held.session.id));

      expect(effectsOf(ran.effects, "grant")).toEqual([{ kind: "grant", leaseId: first }]);
      expect(m.lease(first)).toMatchObject({ status: "active", session_row: held.session.id });
      // The launch the first caller no longer needs is the second's now, and the second waits for it.
      expect(m.session(launch.id).lease_id).toBe(second);
      expect(m.lease(second).wait_deadline).toBeGreaterThanOrEqual(launch.deadline!);
      expect(m.violations()).toEqual([]);

      m.run((s) => launchSucceeded(s, launch.id, "browser-late"));
      expect(m.lease(second)).toMatchObject({ status: "active", session_row: launch.id });
      expect(m.violations()).toEqual([]);
    }));

  it("gives an idle session whose check passes to the head of the queue, whoever it was checked for", () =>
    withMachine({ maxSessions: 2 }, (m) => {
      for (const { lease, session } of [m.leased(), m.leased()]) {
        m.run((s) => releaseLease(s, lease.id));
        m.run((s) => resetSucceeded(s, session.id));
      }
      // Both idle sessions are stale: each is checked before it is handed out.
      m.now += ALIVE_BYPASS_MS + 1;
      const first = arrive(m);
      const second = arrive(m);
      const checkedForFirst = reservationOf(m, first)!;
      const checkedForSecond = reservationOf(m, second)!;
      expect([checkedForFirst.state, checkedForSecond.state]).toEqual(["resetting", "resetting"]);

      // The second caller's check answers first: the first caller, ahead in the queue, gets that session.
      m.run((s) => checkPassed(s, checkedForSecond.id));
      expect(m.lease(first)).toMatchObject({ status: "active", session_row: checkedForSecond.id });
      expect(m.lease(second).status).toBe("waiting");
      expect(m.session(checkedForFirst.id).lease_id).toBe(second);

      m.run((s) => checkPassed(s, checkedForFirst.id));
      expect(m.lease(second)).toMatchObject({ status: "active", session_row: checkedForFirst.id });
      expect(m.violations()).toEqual([]);
    }));

  it("gives a fresh launch to the head of the queue, whoever it was launched for", () =>
    withMachine({ maxSessions: 2 }, (m) => {
      const first = arrive(m);
      const second = arrive(m);
      const forFirst = reservationOf(m, first)!;
      const forSecond = reservationOf(m, second)!;

      // The second caller's launch lands first.
      const ran = m.run((s) => launchSucceeded(s, forSecond.id, "browser-quick"));
      expect(effectsOf(ran.effects, "grant")).toEqual([{ kind: "grant", leaseId: first }]);
      expect(m.lease(first)).toMatchObject({ status: "active", session_id: "browser-quick" });
      expect(m.lease(second).status).toBe("waiting");
      // The first caller's launch, still under way, is the second caller's now.
      expect(m.session(forFirst.id).lease_id).toBe(second);
      expect(m.violations()).toEqual([]);

      m.run((s) => launchSucceeded(s, forFirst.id, "browser-slow"));
      expect(m.lease(second)).toMatchObject({ status: "active", session_id: "browser-slow" });
      expect(m.violations()).toEqual([]);
    }));

  it("reserves the launch into a slot a closed session freed (reuse: false) for the oldest waiter", () =>
    withMachine({ maxSessions: 1, reuse: false }, (m) => {
      const held = m.leased();
      const [first, second, third] = [arrive(m), arrive(m), arrive(m)];
      m.run((s) => releaseLease(s, held.lease.id));
      expect(m.session(held.session.id).state).toBe("closing");

      const ran = m.run((s) => closeSucceeded(s, held.session.id));
      const [row] = launchesIn(ran.effects);
      expect(m.session(row!).lease_id).toBe(first);
      expect([reservationOf(m, second), reservationOf(m, third)]).toEqual([undefined, undefined]);

      m.run((s) => launchSucceeded(s, row!, "browser-next"));
      expect(m.lease(first)).toMatchObject({ status: "active", session_row: row });
      expect([m.lease(second).status, m.lease(third).status]).toEqual(["waiting", "waiting"]);
      expect(m.violations()).toEqual([]);
    }));

  it("reserves the launch into a slot freed by a session past maxSessionUses for the oldest waiter", () =>
    withMachine({ maxSessions: 1, maxSessionUses: 1 }, (m) => {
      const held = m.leased();
      const [first, second, third] = [arrive(m), arrive(m), arrive(m)];
      m.run((s) => releaseLease(s, held.lease.id));
      // Its one use is spent: it is closed, not reset.
      expect(m.session(held.session.id)).toMatchObject({ state: "closing", end_reason: "recycled" });

      const ran = m.run((s) => closeSucceeded(s, held.session.id));
      const [row] = launchesIn(ran.effects);
      expect(m.session(row!).lease_id).toBe(first);
      expect([reservationOf(m, second), reservationOf(m, third)]).toEqual([undefined, undefined]);

      m.run((s) => launchSucceeded(s, row!, "browser-next"));
      expect(m.lease(first).status).toBe("active");
      expect(m.violations()).toEqual([]);
    }));

  it("reserves the next launch after a failed one for the oldest waiter without a reservation", () =>
    withMachine({ maxSessions: 2 }, (m) => {
      m.leased();
      const owner = arrive(m);
      const failing = reservationOf(m, owner)!;
      const [second, third] = [arrive(m), arrive(m)];

      const ran = m.run((s) => launchFailed(s, failing.id, { message: "injected", platformLimited: false }));
      // The caller the failed launch was for is told; the slot's next launch is the oldest other waiter's.
      expect(m.lease(owner)).toMatchObject({ status: "failed", end_reason: "launch_failed" });
      const [row] = launchesIn(ran.effects);
      expect(m.session(row!)).toMatchObject({ state: "launching", lease_id: second });
      expect(reservationOf(m, third)).toBeUndefined();
      expect(m.violations()).toEqual([]);
    }));

  it("keeps the oldest waiter waiting for the launch reserved for it past its waitSeconds, while newer ones wait their turn", () =>
    withMachine({ maxSessions: 1, reuse: false, launchTimeoutSeconds: 30 }, (m) => {
      const held = m.leased();
      // The oldest caller asks for a short wait; the newer ones for long ones.
      const [oldest, newer, newest] = [arrive(m, 2_000), arrive(m, 60_000), arrive(m, 60_000)];
      m.run((s) => releaseLease(s, held.lease.id));
      const ran = m.run((s) => closeSucceeded(s, held.session.id));
      const [row] = launchesIn(ran.effects);

      // Past the oldest caller's own waitSeconds, its launch is still under way: it waits on.
      m.now += 5_000;
      m.run((s) => tick(s));
      expect(m.lease(oldest).status).toBe("waiting");

      m.run((s) => launchSucceeded(s, row!, "browser-next"));
      expect(m.lease(oldest).status).toBe("active");
      expect([m.lease(newer).status, m.lease(newest).status]).toEqual(["waiting", "waiting"]);
      expect(m.violations()).toEqual([]);
    }));
});
