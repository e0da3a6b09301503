/**
 * checkInvariants() against real SQLite: a pool built by the transitions is
 * consistent, and each invariant of docs/reliability.md, broken on purpose with one
 * direct SQL write (the kind of damage a bug would do), is reported by name.
 */
import { describe, expect, it } from "vitest";
import { DEADLINE_GRACE_MS } from "../../src/pool/invariants";
import { releaseLease, tick } from "../../src/pool/machine";
import { effectsOf, type Machine, withMachine } from "../support/machine";

/** A busy, healthy pool: leased, resetting, closing and launching sessions, and a waiter. */
function busyPool(m: Machine) {
  const held = m.leased();
  const spare = m.leased();
  const expiring = m.leased({ ttlMs: 1_000 });
  m.run((s) => releaseLease(s, spare.lease.id));
  const launching = m.request({ waitMs: 10_000 });
  m.now += 1_000;
  m.run(tick);
  return { held, spare, expiring, launching };
}

describe("checkInvariants", () => {
  it("reports nothing for a pool the transitions built, in every state", () =>
    withMachine({ maxSessions: 4 }, (m) => {
      busyPool(m);
      const counts = m.db.counts();
      expect(counts).toEqual({ launching: 1, idle: 0, leased: 1, resetting: 1, closing: 1, waiting: 1 });
      expect(m.violations()).toEqual([]);
    }));

  it("reports more sessions holding capacity than maxSessions", () =>
    withMachine({ maxSessions: 4 }, (m) => {
      busyPool(m);
      m.config = { ...m.config, maxSessions: 2 };
      expect(m.violations()).toEqual([expect.stringMatching(/^4 sessions hold capacity, above maxSessions 2$/)]);
    }));

  it("reports an active lease that does not hold its leased session (the incident's shape)", () =>
    withMachine({}, (m) => {
      const { lease, session } = m.leased();
      m.sql.exec(`UPDATE sessions SET state = 'closed' WHERE id = ?`, session.id);
      expect(m.violations()).toContain(`active lease ${lease.id} does not hold a leased session (session state closed)`);
    }));

  it("reports a leased session no active lease holds (reserved but never released)", () =>
    withMachine({}, (m) => {
      const { lease, session } = m.leased();
      m.sql.exec(`UPDATE leases SET status = 'released' WHERE id = ?`, lease.id);
      expect(m.violations()).toEqual([`leased session ${session.id} is not held by an active lease (lease ${lease.id})`]);
    }));

  it("reports one session held by two active leases", () =>
    withMachine({ maxSessions: 2 }, (m) => {
      const a = m.leased();
      const b = m.leased();
      m.sql.exec(`UPDATE leases SET session_row = ? WHERE id = ?`, a.session.id, b.lease.id);
      m.sql.exec(`UPDATE sessions SET state = 'closed' WHERE id = ?`, b.session.id);
      expect(m.violations()).toContain(`session ${a.session.id} is held by 2 active leases`);
    }));

  it("reports a launch with no deadline, and a launch reserved for a lease that is not waiting", () =>
    withMachine({}, (m) => {
      const asked = m.request({ waitMs: 5_000 });
      const [launch] = effectsOf(asked.effects, "launch");
      m.sql.exec(`UPDATE sessions SET deadline = NULL WHERE id = ?`, launch!.row);
      expect(m.violations()).toEqual([`launching session ${launch!.row} has no deadline`]);
      const id = asked.result.kind === "waiting" ? asked.result.lease.id : "";
      m.sql.exec(`UPDATE sessions SET deadline = ? WHERE id = ?`, m.now + 5_000, launch!.row);
      m.sql.exec(`UPDATE leases SET status = 'failed' WHERE id = ?`, id);
      expect(m.violations()).toEqual([`launching session ${launch!.row} is reserved for lease ${id}, which is failed, not waiting`]);
    }));

  it("reports a usable session without a platform session id", () =>
    withMachine({}, (m) => {
      const { session } = m.leased();
      m.sql.exec(`UPDATE sessions SET session_id = NULL WHERE id = ?`, session.id);
      expect(m.violations()).toEqual([`leased session ${session.id} has no platform session id`]);
    }));

  it("reports idle, resetting and closing sessions without a deadline", () =>
    withMachine({}, (m) => {
      const { lease, session } = m.leased();
      m.run((s) => releaseLease(s, lease.id));
      m.sql.exec(`UPDATE sessions SET deadline = NULL WHERE id = ?`, session.id);
      expect(m.violations()).toEqual([`resetting session ${session.id} has no deadline`]);
    }));

  it("reports a waiter that outlived its deadline, but only past the alarm's grace", () =>
    withMachine({ maxSessions: 1 }, (m) => {
      m.leased({ ttlMs: 600_000 });
      const asked = m.request({ waitMs: 5_000 });
      const id = asked.result.kind === "waiting" ? asked.result.lease.id : "";
      m.now += 5_000 + DEADLINE_GRACE_MS;
      expect(m.violations()).toEqual([]);
      m.now += 1;
      expect(m.violations()).toEqual([`waiter ${id} outlived its deadline`]);
    }));

  it("reports waiters queued while a session is idle", () =>
    withMachine({ maxSessions: 1 }, (m) => {
      const { lease, session } = m.leased();
      m.request({ waitMs: 10_000 });
      m.run((s) => releaseLease(s, lease.id));
      // Bypass the reset transition (which would grant it): the session just turns idle.
      m.sql.exec(`UPDATE sessions SET state = 'idle', deadline = ? WHERE id = ?`, m.now + 60_000, session.id);
      expect(m.violations()).toEqual([`1 waiters queue while 1 sessions are idle`]);
    }));

  it("reports a session still usable after its lease expired, and one handed on to another lease", () =>
    withMachine({ maxSessions: 1 }, (m) => {
      const first = m.leased({ ttlMs: 1_000 });
      m.now += 1_000;
      m.run(tick);
      expect(m.violations()).toEqual([]);
      // Damage: the expired lease's browser is put back as idle instead of closed.
      m.sql.exec(`UPDATE sessions SET state = 'idle', deadline = ? WHERE id = ?`, m.now + 60_000, first.session.id);
      expect(m.violations()).toEqual([
        `session ${first.session.id} is idle after its lease ${first.lease.id} expired or failed; it must be closed`,
      ]);
      // Worse: it is then granted to the next caller, who would share it with the old client.
      const next = m.request();
      expect(next.result.kind).toBe("granted");
      const nextId = next.result.kind === "granted" ? next.result.lease.id : "";
      expect(m.lease(nextId).session_row).toBe(first.session.id);
      expect(m.violations()).toEqual([
        `session ${first.session.id} was handed to another lease after lease ${first.lease.id} expired or failed`,
      ]);
    }));

  it("reports a tally that no longer matches the rows it counts", () =>
    withMachine({ maxSessions: 2 }, (m) => {
      m.leased();
      m.request({ waitMs: 10_000 });
      expect(m.violations()).toEqual([]);
      m.sql.exec(`UPDATE tallies SET n = n + 1 WHERE kind = 'lease' AND state = 'waiting'`);
      m.sql.exec(`UPDATE tallies SET n = -1 WHERE kind = 'session' AND state = 'closed'`);
      expect(m.violations()).toEqual([
        "the tally of leases waiting says 2, the rows say 1",
        "the tally of sessions closed is negative (-1)",
      ]);
    }));
});
