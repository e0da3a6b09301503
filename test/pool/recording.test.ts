/**
 * Which leases are recorded, and when the pool tells their recorder
 * (src/recorder): a recorded lease starts its recorder when it is granted,
 * however it is granted, and stops it however it ends.
 */
import { describe, expect, it } from "vitest";
import { vanish } from "../../src/pool/liveness";
import { endActive, launchSucceeded, releaseLease } from "../../src/pool/machine";
import { effectsOf, withMachine } from "../support/machine";

describe("recorded leases", () => {
  it("a lease acquired with record starts its recorder when granted and stops it when released", () =>
    withMachine({ maxSessions: 2 }, (m) => {
      const { lease, session } = m.leased({ record: true });
      expect(lease.record).toBe(1);
      const ran = m.run((s) => releaseLease(s, lease.id));
      expect(effectsOf(ran.effects, "stopRecording")).toEqual([{ kind: "stopRecording", leaseId: lease.id }]);
      // Granted again from the idle session (the warm path): a recorded lease starts its recorder there too.
      m.run((s) => s.db.updateSession(session.id, { state: "idle", lease_id: null, alive_at: m.now }));
      const again = m.request({ record: true });
      expect(again.result.kind).toBe("granted");
      const granted = again.result.kind === "granted" ? again.result.lease : undefined;
      expect(effectsOf(again.effects, "record")).toEqual([{ kind: "record", leaseId: granted!.id, sessionId: session.session_id }]);
    }));

  it("records after a launch, and stops when the lease expires or its browser is gone", () =>
    withMachine({ maxSessions: 2 }, (m) => {
      const asked = m.request({ record: true, waitMs: 30_000 });
      expect(effectsOf(asked.effects, "record")).toEqual([]);
      const launch = effectsOf(asked.effects, "launch")[0]!;
      const landed = m.run((s) => launchSucceeded(s, launch.row, "browser-recorded"));
      const lease = asked.result.kind === "waiting" ? asked.result.lease : undefined;
      expect(effectsOf(landed.effects, "record")).toEqual([{ kind: "record", leaseId: lease!.id, sessionId: "browser-recorded" }]);
      const expired = m.run((s) => endActive(s, m.lease(lease!.id), "expired"));
      expect(effectsOf(expired.effects, "stopRecording")).toHaveLength(1);
      const other = m.leased({ record: true });
      const gone = m.run((s) => vanish(s, m.session(other.session.id)));
      expect(effectsOf(gone.effects, "stopRecording")).toEqual([{ kind: "stopRecording", leaseId: other.lease.id }]);
    }));

  it("follows the pool's record default unless the acquire says, and records nothing otherwise", () =>
    withMachine({ maxSessions: 3, record: true }, (m) => {
      expect(m.leased().lease.record).toBe(1);
      const off = m.leased({ record: false });
      expect(off.lease.record).toBe(0);
      const ran = m.run((s) => releaseLease(s, off.lease.id));
      expect(effectsOf(ran.effects, "stopRecording")).toEqual([]);
    }));
});
