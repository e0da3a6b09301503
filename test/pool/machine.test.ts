/**
 * Unit tests of every transition in machine.ts, one at a time, over real
 * SQLite. Each test arranges rows through the transitions themselves, runs the
 * transition under test once, and checks the rows it left, the effects it asked
 * the shell to perform, the journal it wrote, and that the invariants hold.
 */
import { describe, expect, it } from "vitest";
import {
  ALIVE_BYPASS_MS,
  isDraining,
  RECONCILE_INTERVAL_MS,
  CHECK_TIMEOUT_MS,
  checkFailed,
  checkPassed,
  cancelWaiter,
  CLOSE_TIMEOUT_MS,
  closeFailed,
  closeSucceeded,
  launchFailed,
  launchSucceeded,
  MAX_CLOSE_ATTEMPTS,
  pump,
  recover,
  registered,
  registryDone,
  releaseAll,
  releaseLease,
  renewLease,
  RESET_TIMEOUT_MS,
  resetFailed,
  resetSucceeded,
  retryAfterSeconds,
  tick,
} from "../../src/pool/machine";
import { pingFailed, probeAnswered } from "../../src/pool/liveness";
import {
  applyConfig,
  createPool,
  poolState,
  retire,
  undoDeletion,
  drain,
  forceRelease,
  purgeIdle,
  resume,
} from "../../src/pool/operations";
import { reconcile } from "../../src/pool/reconcile";
import { KEEP_ALIVE_MS } from "../../src/browser/provider";
import { effectsOf, type Machine, T0, withMachine } from "../support/machine";

/** Releases a fresh lease with reuse on, then lets its reset succeed: one idle session. */
function idleSession(m: Machine) {
  const { lease, session } = m.leased();
  m.run((s) => releaseLease(s, lease.id));
  m.run((s) => resetSucceeded(s, session.id));
  expect(m.session(session.id).state).toBe("idle");
  return m.session(session.id);
}

/** Two distinct idle sessions (the first idle longer), both just reset. */
function twoIdleSessions(m: Machine) {
  const held = [m.leased(), m.leased()];
  for (const { lease, session } of held) {
    m.run((s) => releaseLease(s, lease.id));
    m.run((s) => resetSucceeded(s, session.id));
  }
  return [m.session(held[0]!.session.id), m.session(held[1]!.session.id)] as const;
}

/** Fills every slot with a leased session; returns the leases. */
function fill(m: Machine) {
  return Array.from({ length: m.config.maxSessions }, () => m.leased());
}

describe("requestLease", () => {
  it("grants an idle session at once, with its expiry and one more use", () =>
    withMachine({ maxSessions: 1 }, (m) => {
      const idle = idleSession(m);
      m.now += 1000;
      const { result, effects, events } = m.request({ ttlMs: 30_000, labels: { job: "a" } });
      expect(result.kind).toBe("granted");
      if (result.kind !== "granted") return;
      expect(result.lease).toMatchObject({
        status: "active",
        session_row: idle.id,
        session_id: idle.session_id,
        granted_at: m.now,
        expires_at: m.now + 30_000,
        wait_deadline: null,
        labels: JSON.stringify({ job: "a" }),
      });
      // Leased, with its keep-alive ping due half a keep-alive from now.
      expect(m.session(idle.id)).toMatchObject({ state: "leased", lease_id: result.lease.id, deadline: m.now + KEEP_ALIVE_MS / 2, uses: 2 });
      // Granted in the request itself: nobody waits to be told, and one journal row says it all.
      expect(effects).toEqual([]);
      expect(events).toEqual(["granted"]);
      expect(m.violations()).toEqual([]);
    }));

  it("reserves a launch for the caller when there is capacity but no idle session", () =>
    withMachine({ maxSessions: 2, launchTimeoutSeconds: 20 }, (m) => {
      const { result, effects, events } = m.request({ waitMs: 5_000 });
      expect(result.kind).toBe("waiting");
      if (result.kind !== "waiting") return;
      const [launch] = effectsOf(effects, "launch");
      expect(effects).toHaveLength(1);
      // The slot is held by a launching row with a deadline, in the same transaction.
      expect(m.session(launch!.row)).toMatchObject({ state: "launching", lease_id: result.lease.id, deadline: T0 + 20_000 });
      // A caller with a launch under way waits for its outcome, not its shorter waitSeconds.
      expect(result.lease.wait_deadline).toBe(T0 + 20_000);
      expect(events).toEqual(["requested", "launch_reserved"]);
      expect(m.db.counts()).toMatchObject({ launching: 1, waiting: 1 });
      expect(m.violations()).toEqual([]);
    }));

  it("reserves a launch even when the caller will not wait (waitSeconds 0)", () =>
    withMachine({}, (m) => {
      const { result, effects } = m.request({ waitMs: 0 });
      expect(result.kind).toBe("waiting");
      expect(effectsOf(effects, "launch")).toHaveLength(1);
    }));

  it("rejects with 429 pool_exhausted and a Retry-After from the next expiry when full and not waiting", () =>
    withMachine({ maxSessions: 1 }, (m) => {
      m.leased({ ttlMs: 42_000 });
      m.now += 2_500;
      const { result, effects, events } = m.request({ waitMs: 0 });
      expect(result).toEqual({
        kind: "rejected",
        failure: { status: 429, code: "pool_exhausted", detail: expect.stringContaining("waitSeconds is 0"), retryAfter: 40 },
      });
      expect(effects).toEqual([]);
      expect(events).toEqual([]);
      expect(m.db.counts().waiting).toBe(0);
    }));

  it("queues the caller when full and willing to wait, without a launch", () =>
    withMachine({ maxSessions: 1 }, (m) => {
      m.leased();
      const { result, effects } = m.request({ waitMs: 10_000 });
      expect(result.kind).toBe("waiting");
      if (result.kind !== "waiting") return;
      expect(result.lease.wait_deadline).toBe(T0 + 10_000);
      expect(effects).toEqual([]);
      expect(m.db.counts()).toMatchObject({ leased: 1, waiting: 1, launching: 0 });
      expect(m.violations()).toEqual([]);
    }));

  it("rejects with 429 when the wait queue already holds maxWaiters", () =>
    withMachine({ maxSessions: 1, maxWaiters: 2 }, (m) => {
      m.leased();
      m.request({ waitMs: 10_000 });
      m.request({ waitMs: 10_000 });
      const { result } = m.request({ waitMs: 10_000 });
      expect(result).toMatchObject({ kind: "rejected", failure: { status: 429, code: "pool_exhausted" } });
      if (result.kind === "rejected") expect(result.failure.detail).toContain("maxWaiters 2");
      expect(m.db.counts().waiting).toBe(2);
    }));

  it("answers 503 without launching while the platform limit pauses launches", () =>
    withMachine({}, (m) => {
      m.db.setMeta("launch_blocked_until", String(T0 + 7_000));
      const { result, effects } = m.request({ waitMs: 0 });
      expect(result).toEqual({
        kind: "rejected",
        failure: { status: 503, code: "browser_unavailable", detail: expect.any(String), retryAfter: 7 },
      });
      expect(effects).toEqual([]);
      // A caller that waits is queued; the launch comes once the pause ends.
      const waited = m.request({ waitMs: 10_000 });
      expect(waited.result.kind).toBe("waiting");
      expect(waited.effects).toEqual([]);
    }));
});

describe("validate on borrow", () => {
  it("checks a stale idle session for the caller and keeps the other idle session for the next one", () =>
    withMachine({ maxSessions: 2 }, (m) => {
      const [a, b] = twoIdleSessions(m);
      m.now += ALIVE_BYPASS_MS + 1;
      const { result, effects, events } = m.request({ waitMs: 0 });
      expect(result.kind).toBe("waiting");
      if (result.kind !== "waiting") return;
      const [check] = effectsOf(effects, "check");
      expect(check).toEqual({ kind: "check", row: a.id, sessionId: a.session_id });
      expect(effects).toHaveLength(1);
      expect(events).toEqual(["requested", "check_started"]);
      expect(m.session(a.id)).toMatchObject({ state: "resetting", lease_id: result.lease.id, deadline: m.now + CHECK_TIMEOUT_MS });
      expect(result.lease.wait_deadline).toBe(m.now + CHECK_TIMEOUT_MS);
      expect(m.session(b.id).state).toBe("idle");
      expect(m.violations()).toEqual([]);
      // The check passes: the caller gets the session it was checked for.
      const ran = m.run((s) => checkPassed(s, a.id));
      expect(effectsOf(ran.effects, "grant")).toEqual([{ kind: "grant", leaseId: result.lease.id }]);
      expect(m.session(a.id)).toMatchObject({ state: "leased", alive_at: m.now });
      expect(m.violations()).toEqual([]);
    }));

  it("a failed check closes the session and the caller is checked against the next idle one", () =>
    withMachine({ maxSessions: 2 }, (m) => {
      const [a, b] = twoIdleSessions(m);
      m.now += ALIVE_BYPASS_MS + 1;
      const asked = m.request({ waitMs: 0 });
      const ran = m.run((s) => checkFailed(s, a.id, "gone"));
      expect(m.session(a.id)).toMatchObject({ state: "closing", end_reason: "dead_on_borrow" });
      expect(effectsOf(ran.effects, "check")).toEqual([{ kind: "check", row: b.id, sessionId: b.session_id }]);
      expect(m.session(b.id)).toMatchObject({ state: "resetting", lease_id: asked.result.kind === "waiting" ? asked.result.lease.id : "" });
      expect(m.violations()).toEqual([]);
    }));
});

describe("launchSucceeded", () => {
  it("grants the session to the waiter it was launched for", () =>
    withMachine({}, (m) => {
      const { result, effects } = m.request({ waitMs: 5_000 });
      const [launch] = effectsOf(effects, "launch");
      m.now += 900;
      const ran = m.run((s) => launchSucceeded(s, launch!.row, "browser-a"));
      const lease = m.lease(result.kind === "waiting" ? result.lease.id : "");
      expect(lease).toMatchObject({ status: "active", session_id: "browser-a", granted_at: T0 + 900, expires_at: T0 + 900 + 60_000 });
      expect(m.session(launch!.row)).toMatchObject({ state: "leased", session_id: "browser-a", launched_at: T0 + 900, uses: 1 });
      // The account's registry learns of the browser (src/registry), then the caller is answered.
      expect(ran.effects).toEqual([
        { kind: "register", row: launch!.row, sessionId: "browser-a" },
        { kind: "grant", leaseId: lease.id },
      ]);
      expect(ran.events).toEqual(["launched", "granted"]);
      expect(m.violations()).toEqual([]);
    }));

  it("offers the browser to the oldest waiter when its own caller has gone", () =>
    withMachine({ maxSessions: 1 }, (m) => {
      const first = m.request({ waitMs: 5_000 });
      const [launch] = effectsOf(first.effects, "launch");
      const second = m.request({ waitMs: 5_000 });
      const third = m.request({ waitMs: 5_000 });
      const firstId = first.result.kind === "waiting" ? first.result.lease.id : "";
      m.run((s) => cancelWaiter(s, firstId));
      // The reservation survives its caller: it becomes unowned, not leaked.
      expect(m.session(launch!.row)).toMatchObject({ state: "launching", lease_id: null });
      const ran = m.run((s) => launchSucceeded(s, launch!.row, "browser-a"));
      const secondId = second.result.kind === "waiting" ? second.result.lease.id : "";
      expect(effectsOf(ran.effects, "grant")).toEqual([{ kind: "grant", leaseId: secondId }]);
      expect(m.lease(secondId).session_id).toBe("browser-a");
      expect(m.lease(third.result.kind === "waiting" ? third.result.lease.id : "").status).toBe("waiting");
      expect(m.violations()).toEqual([]);
    }));

  it("keeps the browser idle, with a keep-alive deadline, when nobody is waiting", () =>
    withMachine({ idleTimeoutSeconds: 120 }, (m) => {
      const asked = m.request({ waitMs: 5_000 });
      const [launch] = effectsOf(asked.effects, "launch");
      m.run((s) => cancelWaiter(s, asked.result.kind === "waiting" ? asked.result.lease.id : ""));
      const ran = m.run((s) => launchSucceeded(s, launch!.row, "browser-a"));
      expect(m.session(launch!.row)).toMatchObject({ state: "idle", lease_id: null, deadline: T0 + 120_000 });
      expect(ran.effects).toEqual([{ kind: "register", row: launch!.row, sessionId: "browser-a" }]);
      expect(m.violations()).toEqual([]);
    }));

  it("closes a browser that arrives after its launch timed out, and keeps reconciling", () =>
    withMachine({ launchTimeoutSeconds: 5 }, (m) => {
      const asked = m.request({ waitMs: 5_000 });
      const [launch] = effectsOf(asked.effects, "launch");
      m.now += 5_000;
      m.run(tick);
      expect(m.session(launch!.row).state).toBe("failed");
      m.now += 1_000;
      const ran = m.run((s) => launchSucceeded(s, launch!.row, "late-browser"));
      // Registered too: if this close fails, the registry must not take the browser for an orphan of nobody's.
      expect(ran.effects).toEqual([
        { kind: "register", row: launch!.row, sessionId: "late-browser" },
        { kind: "close", row: launch!.row, sessionId: "late-browser" },
      ]);
      expect(ran.events).toEqual(["late_launch_closed"]);
      // The slot stays free; the id is recorded so reconciliation can find the browser.
      expect(m.session(launch!.row)).toMatchObject({ state: "failed", session_id: "late-browser" });
      expect(Number(m.db.getMeta("reconcile_until"))).toBe(m.now + KEEP_ALIVE_MS);
      expect(m.violations()).toEqual([]);
    }));

  it("ignores an unknown row", () =>
    withMachine({}, (m) => {
      const ran = m.run((s) => launchSucceeded(s, 999, "browser-x"));
      expect(ran.effects).toEqual([]);
      expect(ran.events).toEqual([]);
    }));
});

describe("launchFailed", () => {
  it("frees the slot, fails its waiter with 502 (first line of the error only) and launches for the next waiter", () =>
    withMachine({ maxSessions: 1 }, (m) => {
      const first = m.request({ waitMs: 5_000, idempotencyKey: "key-1" });
      m.db.rememberIdempotent("key-1", first.result.kind === "waiting" ? first.result.lease.id : "", "fp", T0);
      const [launch] = effectsOf(first.effects, "launch");
      const second = m.request({ waitMs: 5_000 });
      const ran = m.run((s) => launchFailed(s, launch!.row, { message: "chromium crashed\n    at stack frame", platformLimited: false }));
      const firstId = first.result.kind === "waiting" ? first.result.lease.id : "";
      const secondId = second.result.kind === "waiting" ? second.result.lease.id : "";
      expect(m.session(launch!.row)).toMatchObject({ state: "failed", end_reason: "launch_failed", deadline: null });
      expect(m.lease(firstId)).toMatchObject({ status: "failed", end_reason: "launch_failed" });
      const [reject] = effectsOf(ran.effects, "reject");
      expect(reject).toEqual({
        kind: "reject",
        leaseId: firstId,
        failure: { status: 502, code: "browser_unavailable", detail: "launching a browser failed: chromium crashed" },
      });
      const [next] = effectsOf(ran.effects, "launch");
      expect(m.session(next!.row)).toMatchObject({ state: "launching", lease_id: secondId });
      // A failed request may be retried with the same Idempotency-Key.
      expect(m.db.idempotent("key-1")).toBeUndefined();
      expect(ran.events).toEqual(["launch_failed", "wait_failed", "launch_reserved"]);
      expect(m.violations()).toEqual([]);
    }));

  it("answers 503 with Retry-After and pauses launches when the platform limit is hit", () =>
    withMachine({ maxSessions: 2 }, (m) => {
      const first = m.request({ waitMs: 5_000 });
      const [launch] = effectsOf(first.effects, "launch");
      const ran = m.run((s) => launchFailed(s, launch!.row, { message: "429", platformLimited: true, retryAfterSeconds: 9 }));
      expect(effectsOf(ran.effects, "reject")[0]?.failure).toMatchObject({ status: 503, retryAfter: 9 });
      expect(Number(m.db.getMeta("launch_blocked_until"))).toBe(T0 + 9_000);
      // While paused, a waiting caller queues without a launch; the pause ending lets pump launch.
      const later = m.request({ waitMs: 30_000 });
      expect(later.effects).toEqual([]);
      m.now += 9_000;
      const resumed = m.run(pump);
      expect(effectsOf(resumed.effects, "launch")).toHaveLength(1);
      expect(m.violations()).toEqual([]);
    }));

  it("does nothing for a row that is no longer launching", () =>
    withMachine({}, (m) => {
      const { session } = m.leased();
      const ran = m.run((s) => launchFailed(s, session.id, { message: "late", platformLimited: false }));
      expect(ran).toMatchObject({ effects: [], events: [] });
      expect(m.session(session.id).state).toBe("leased");
    }));
});

describe("releaseLease", () => {
  it("resets the session for reuse when the pool reuses sessions", () =>
    withMachine({ reuse: true }, (m) => {
      const { lease, session } = m.leased();
      m.now += 1_000;
      const ran = m.run((s) => releaseLease(s, lease.id));
      expect(ran.result).toMatchObject({ status: "released", ended_at: m.now, end_reason: "released" });
      expect(m.session(session.id)).toMatchObject({ state: "resetting", lease_id: null, deadline: m.now + RESET_TIMEOUT_MS });
      // Its sockets are told to close first; the reset waits for them (object.ts).
      expect(ran.effects).toEqual([
        { kind: "disconnect", leaseId: lease.id, reason: "released" },
        { kind: "reset", row: session.id, sessionId: session.session_id, leaseId: lease.id },
      ]);
      expect(ran.events).toEqual(["released"]);
      expect(m.violations()).toEqual([]);
    }));

  it("closes the session when the pool does not reuse sessions", () =>
    withMachine({ reuse: false }, (m) => {
      const { lease, session } = m.leased();
      const ran = m.run((s) => releaseLease(s, lease.id));
      expect(m.session(session.id)).toMatchObject({ state: "closing", end_reason: "released_no_reuse", deadline: m.now + CLOSE_TIMEOUT_MS });
      expect(ran.effects).toEqual([
        { kind: "disconnect", leaseId: lease.id, reason: "released" },
        { kind: "close", row: session.id, sessionId: session.session_id },
      ]);
    }));

  it("expires (and closes) a lease released after its expiry instead of reusing its browser", () =>
    withMachine({ reuse: true }, (m) => {
      const { lease, session } = m.leased({ ttlMs: 10_000 });
      m.now += 10_000;
      const ran = m.run((s) => releaseLease(s, lease.id));
      expect(ran.result).toMatchObject({ status: "expired", end_reason: "expired" });
      expect(m.session(session.id)).toMatchObject({ state: "closing", end_reason: "lease_expired" });
      expect(effectsOf(ran.effects, "close")).toHaveLength(1);
    }));

  it("fails a waiting lease with 409 and gives up the launch reserved for it", () =>
    withMachine({}, (m) => {
      const asked = m.request({ waitMs: 5_000 });
      const [launch] = effectsOf(asked.effects, "launch");
      const id = asked.result.kind === "waiting" ? asked.result.lease.id : "";
      const ran = m.run((s) => releaseLease(s, id));
      expect(ran.result).toMatchObject({ status: "failed", end_reason: "cancelled" });
      expect(effectsOf(ran.effects, "reject")[0]?.failure).toMatchObject({ status: 409, code: "lease_not_active" });
      expect(m.session(launch!.row)).toMatchObject({ state: "launching", lease_id: null });
      expect(m.violations()).toEqual([]);
    }));

  it("is idempotent: an ended lease is returned unchanged, with no effects or journal", () =>
    withMachine({}, (m) => {
      const { lease } = m.leased();
      const first = m.run((s) => releaseLease(s, lease.id));
      m.now += 5_000;
      const again = m.run((s) => releaseLease(s, lease.id));
      expect(again.result).toEqual(first.result);
      expect(again).toMatchObject({ effects: [], events: [] });
    }));

  it("returns undefined for an unknown lease", () =>
    withMachine({}, (m) => {
      expect(m.run((s) => releaseLease(s, "no-such-lease")).result).toBeUndefined();
    }));
});

describe("releaseAll", () => {
  it("ends every active lease, leaves waiters queued, and counts what it released", () =>
    withMachine({ maxSessions: 2, reuse: true }, (m) => {
      const [a, b] = fill(m);
      const waiter = m.request({ waitMs: 10_000 });
      const ran = m.run(releaseAll);
      expect(ran.result).toBe(2);
      expect(m.lease(a!.lease.id).status).toBe("released");
      expect(m.lease(b!.lease.id).status).toBe("released");
      expect(effectsOf(ran.effects, "reset")).toHaveLength(2);
      expect(m.lease(waiter.result.kind === "waiting" ? waiter.result.lease.id : "").status).toBe("waiting");
      expect(m.run(releaseAll).result).toBe(0);
      expect(m.violations()).toEqual([]);
    }));
});

describe("releaseAll by owner", () => {
  it("ends only the active leases of the given owner (one API key)", () =>
    withMachine({ maxSessions: 3, reuse: true }, (m) => {
      const mine = m.leased({ owner: "key:aaa" });
      const theirs = m.leased({ owner: "key:bbb" });
      const ran = m.run((s) => releaseAll(s, "key:aaa"));
      expect(ran.result).toBe(1);
      expect(m.lease(mine.lease.id).status).toBe("released");
      expect(m.lease(theirs.lease.id).status).toBe("active");
      expect(m.run((s) => releaseAll(s, "key:aaa")).result).toBe(0);
      expect(m.violations()).toEqual([]);
    }));
});

describe("renewLease", () => {
  it("extends an active lease from now", () =>
    withMachine({}, (m) => {
      const { lease } = m.leased({ ttlMs: 10_000 });
      m.now += 4_000;
      const ran = m.run((s) => renewLease(s, lease.id, 30_000));
      expect(ran.result).toMatchObject({ lease: { status: "active", expires_at: m.now + 30_000, ttl_ms: 30_000 } });
      expect(ran.events).toEqual(["renewed"]);
    }));

  it("expires a lease past its expiry instead of renewing it (no resurrection)", () =>
    withMachine({}, (m) => {
      const { lease, session } = m.leased({ ttlMs: 10_000 });
      m.now += 10_001;
      const ran = m.run((s) => renewLease(s, lease.id, 30_000));
      expect(ran.result).toMatchObject({ failure: { status: 409, code: "lease_not_active" } });
      expect(m.lease(lease.id).status).toBe("expired");
      expect(m.session(session.id).state).toBe("closing");
      expect(m.violations()).toEqual([]);
    }));

  it("refuses a released lease with 409 and an unknown one with 404", () =>
    withMachine({}, (m) => {
      const { lease } = m.leased();
      m.run((s) => releaseLease(s, lease.id));
      expect(m.run((s) => renewLease(s, lease.id, 30_000)).result).toMatchObject({ failure: { status: 409 } });
      expect(m.run((s) => renewLease(s, "nope", 30_000)).result).toMatchObject({ failure: { status: 404, code: "not_found" } });
    }));
});

describe("cancelWaiter", () => {
  it("removes a waiter from the queue; the next waiter keeps its place", () =>
    withMachine({ maxSessions: 1 }, (m) => {
      const { lease } = m.leased();
      const a = m.request({ waitMs: 10_000 });
      const b = m.request({ waitMs: 10_000 });
      const aId = a.result.kind === "waiting" ? a.result.lease.id : "";
      const bId = b.result.kind === "waiting" ? b.result.lease.id : "";
      const ran = m.run((s) => cancelWaiter(s, aId));
      expect(ran.result).toBe(true);
      expect(m.lease(aId)).toMatchObject({ status: "failed", end_reason: "cancelled" });
      // The holder releases: the session goes to b, not to the cancelled a.
      const session = m.session(lease.session_row!);
      m.run((s) => releaseLease(s, lease.id));
      const reset = m.run((s) => resetSucceeded(s, session.id));
      expect(reset.effects).toEqual([{ kind: "grant", leaseId: bId }]);
    }));

  it("does nothing to a lease that is not waiting", () =>
    withMachine({}, (m) => {
      const { lease } = m.leased();
      const ran = m.run((s) => cancelWaiter(s, lease.id));
      expect(ran).toMatchObject({ result: false, effects: [], events: [] });
      expect(m.lease(lease.id).status).toBe("active");
      expect(m.run((s) => cancelWaiter(s, "unknown")).result).toBe(false);
    }));
});

describe("resetSucceeded / resetFailed", () => {
  it("a clean session goes idle when nobody waits", () =>
    withMachine({ idleTimeoutSeconds: 60 }, (m) => {
      const { lease, session } = m.leased();
      m.run((s) => releaseLease(s, lease.id));
      const ran = m.run((s) => resetSucceeded(s, session.id));
      expect(m.session(session.id)).toMatchObject({ state: "idle", deadline: m.now + 60_000 });
      expect(ran.events).toEqual(["reset"]);
    }));

  it("a session whose reset failed is closed, never handed out", () =>
    withMachine({}, (m) => {
      const { lease, session } = m.leased();
      m.run((s) => releaseLease(s, lease.id));
      const ran = m.run((s) => resetFailed(s, session.id, "target crashed"));
      expect(m.session(session.id)).toMatchObject({ state: "closing", end_reason: "reset_failed" });
      expect(ran.effects).toEqual([{ kind: "close", row: session.id, sessionId: session.session_id }]);
    }));

  it("both ignore a session that is no longer resetting", () =>
    withMachine({}, (m) => {
      const { session } = m.leased();
      expect(m.run((s) => resetSucceeded(s, session.id))).toMatchObject({ effects: [], events: [] });
      expect(m.run((s) => resetFailed(s, session.id, "x"))).toMatchObject({ effects: [], events: [] });
      expect(m.session(session.id).state).toBe("leased");
    }));
});

describe("closeSucceeded / closeFailed", () => {
  function closing(m: Machine) {
    const { lease, session } = m.leased();
    m.run((s) => releaseLease(s, lease.id));
    return session;
  }

  it("a confirmed close frees the slot and launches for a waiter", () =>
    withMachine({ maxSessions: 1, reuse: false }, (m) => {
      const session = closing(m);
      const waiter = m.request({ waitMs: 10_000 });
      expect(waiter.effects).toEqual([]);
      const ran = m.run((s) => closeSucceeded(s, session.id));
      expect(m.session(session.id)).toMatchObject({ state: "closed", deadline: null, ended_at: m.now });
      expect(effectsOf(ran.effects, "launch")).toHaveLength(1);
      expect(ran.events).toEqual(["closed", "launch_reserved"]);
      expect(m.violations()).toEqual([]);
    }));

  it("a failed close is retried with backoff, then given up after MAX_CLOSE_ATTEMPTS", () =>
    withMachine({ reuse: false }, (m) => {
      const session = closing(m);
      const first = m.run((s) => closeFailed(s, session.id, "network"));
      expect(m.session(session.id)).toMatchObject({ state: "closing", attempts: 1, deadline: m.now + 2_000 });
      expect(first.events).toEqual(["close_failed"]);
      m.run((s) => closeFailed(s, session.id, "network"));
      expect(m.session(session.id)).toMatchObject({ state: "closing", attempts: 2, deadline: m.now + 4_000 });
      const last = m.run((s) => closeFailed(s, session.id, "network"));
      expect(m.session(session.id)).toMatchObject({ state: "closed", attempts: MAX_CLOSE_ATTEMPTS, deadline: null });
      expect(last.events).toEqual(["close_gave_up"]);
      expect(Number(m.db.getMeta("reconcile_until"))).toBe(m.now + KEEP_ALIVE_MS);
      expect(m.violations()).toEqual([]);
    }));

  it("both ignore a session that is not closing", () =>
    withMachine({}, (m) => {
      const { session } = m.leased();
      expect(m.run((s) => closeSucceeded(s, session.id))).toMatchObject({ effects: [], events: [] });
      expect(m.run((s) => closeFailed(s, session.id, "x"))).toMatchObject({ effects: [], events: [] });
      expect(m.session(session.id)).toMatchObject({ state: "leased", attempts: 0 });
    }));
});

describe("pingFailed", () => {
  it("closes an idle session whose keep-alive ping failed", () =>
    withMachine({}, (m) => {
      const idle = idleSession(m);
      const ran = m.run((s) => pingFailed(s, idle.id, "gone"));
      expect(m.session(idle.id)).toMatchObject({ state: "closing", end_reason: "ping_failed" });
      expect(effectsOf(ran.effects, "close")).toHaveLength(1);
    }));

  it("only suspects a leased session (a ping can fail for other reasons): it keeps its lease and is probed", () =>
    withMachine({}, (m) => {
      const { lease, session } = m.leased();
      const ran = m.run((s) => pingFailed(s, session.id, "refused"));
      expect(ran.effects).toEqual([{ kind: "probe", row: session.id, sessionId: session.session_id }]);
      expect(ran.events).toEqual(["suspect"]);
      expect(m.session(session.id)).toMatchObject({ state: "leased", missed_at: m.now });
      expect(m.lease(lease.id).status).toBe("active");
      expect(m.violations()).toEqual([]);
    }));

  it("ignores a session that is neither idle nor leased", () =>
    withMachine({ reuse: false }, (m) => {
      const { lease, session } = m.leased();
      m.run((s) => releaseLease(s, lease.id));
      expect(m.run((s) => pingFailed(s, session.id, "gone"))).toMatchObject({ effects: [], events: [] });
    }));
});

describe("tick", () => {
  it("expires due leases and closes their browsers; leases not yet due stay", () =>
    withMachine({ maxSessions: 2, reuse: true }, (m) => {
      const short = m.leased({ ttlMs: 5_000 });
      const long = m.leased({ ttlMs: 50_000 });
      m.now += 5_000;
      const ran = m.run(tick);
      expect(m.lease(short.lease.id)).toMatchObject({ status: "expired", ended_at: m.now });
      expect(m.session(short.session.id)).toMatchObject({ state: "closing", end_reason: "lease_expired" });
      expect(m.lease(long.lease.id).status).toBe("active");
      expect(ran.effects).toEqual([
        { kind: "disconnect", leaseId: short.lease.id, reason: "expired" },
        { kind: "close", row: short.session.id, sessionId: short.session.session_id },
      ]);
      expect(m.violations()).toEqual([]);
    }));

  it("fails a launch at its deadline and answers its waiter 503", () =>
    withMachine({ launchTimeoutSeconds: 5 }, (m) => {
      const asked = m.request({ waitMs: 1_000 });
      const [launch] = effectsOf(asked.effects, "launch");
      m.now += 4_999;
      expect(m.run(tick).effects).toEqual([]);
      m.now += 1;
      const ran = m.run(tick);
      expect(m.session(launch!.row)).toMatchObject({ state: "failed", end_reason: "launch_timeout" });
      const id = asked.result.kind === "waiting" ? asked.result.lease.id : "";
      expect(m.lease(id)).toMatchObject({ status: "failed", end_reason: "launch_timeout" });
      expect(effectsOf(ran.effects, "reject")[0]?.failure).toMatchObject({ status: 503, code: "browser_unavailable", retryAfter: 1 });
      expect(m.db.liveSessions()).toBe(0);
      expect(m.violations()).toEqual([]);
    }));

  it("fails a waiter at its deadline with 429 pool_exhausted", () =>
    withMachine({ maxSessions: 1 }, (m) => {
      m.leased({ ttlMs: 60_000 });
      const asked = m.request({ waitMs: 3_000 });
      const id = asked.result.kind === "waiting" ? asked.result.lease.id : "";
      m.now += 3_000;
      const ran = m.run(tick);
      expect(m.lease(id)).toMatchObject({ status: "failed", end_reason: "wait_timeout" });
      expect(effectsOf(ran.effects, "reject")[0]?.failure).toMatchObject({ status: 429, code: "pool_exhausted", retryAfter: 57 });
    }));

  it("closes a session whose reset outlived its deadline", () =>
    withMachine({}, (m) => {
      const { lease, session } = m.leased();
      m.run((s) => releaseLease(s, lease.id));
      m.now += RESET_TIMEOUT_MS;
      m.run(tick);
      expect(m.session(session.id)).toMatchObject({ state: "closing", end_reason: "reset_timeout" });
    }));

  it("re-issues a close that is due (retry after a failure or a lost close)", () =>
    withMachine({ reuse: false }, (m) => {
      const { lease, session } = m.leased();
      m.run((s) => releaseLease(s, lease.id));
      m.run((s) => closeFailed(s, session.id, "network"));
      m.now += 2_000;
      const ran = m.run(tick);
      expect(ran.effects).toEqual([{ kind: "close", row: session.id, sessionId: session.session_id }]);
      expect(m.session(session.id)).toMatchObject({ state: "closing", deadline: m.now + CLOSE_TIMEOUT_MS });
    }));

  it("closes idle sessions past their idle timeout beyond minIdle, and pings the ones it keeps", () =>
    withMachine({ maxSessions: 3, minIdle: 1, idleTimeoutSeconds: 30, launchTimeoutSeconds: 120 }, (m) => {
      // minIdle 1 also reserves one warm launch; it stays launching (deadline 120 s).
      const a = m.leased();
      const b = m.leased();
      m.run((s) => releaseLease(s, a.lease.id));
      m.run((s) => resetSucceeded(s, a.session.id));
      m.now += 1_000;
      m.run((s) => releaseLease(s, b.lease.id));
      m.run((s) => resetSucceeded(s, b.session.id));
      m.now += 30_000;
      const ran = m.run(tick);
      expect(m.session(a.session.id)).toMatchObject({ state: "closing", end_reason: "idle_timeout" });
      expect(m.session(b.session.id)).toMatchObject({ state: "idle", deadline: m.now + 30_000 });
      expect(effectsOf(ran.effects, "ping")).toEqual([{ kind: "ping", row: b.session.id, sessionId: b.session.session_id }]);
      expect(effectsOf(ran.effects, "close")).toHaveLength(1);
      expect(m.violations()).toEqual([]);
    }));

  it("is idempotent: a second tick at the same time does nothing", () =>
    withMachine({ maxSessions: 2, launchTimeoutSeconds: 5 }, (m) => {
      m.leased({ ttlMs: 5_000 });
      m.request({ waitMs: 5_000 });
      m.now += 5_000;
      const first = m.run(tick);
      expect(first.events.length).toBeGreaterThan(0);
      // The timed-out launch is reported to the registry until it acknowledges (a retry, not a repeat).
      m.run((s) => registryDone(s, effectsOf(first.effects, "reportLost").flatMap((e) => e.rows)));
      expect(m.run(tick)).toMatchObject({ effects: [], events: [] });
    }));
});

describe("recover (object restarted)", () => {
  it("fails waiters and abandons launches, restarts resets and closes, and frees every slot it can", () =>
    withMachine({ maxSessions: 4, reuse: true }, (m) => {
      const resetting = m.leased();
      m.run((s) => releaseLease(s, resetting.lease.id));
      const closing = m.leased();
      m.run((s) => renewLease(s, closing.lease.id, 1));
      m.now += 1;
      m.run((s) => releaseLease(s, closing.lease.id));
      const kept = m.leased();
      const waiter = m.request({ waitMs: 10_000 });
      const [launch] = effectsOf(waiter.effects, "launch");
      const waiterId = waiter.result.kind === "waiting" ? waiter.result.lease.id : "";

      const ran = m.run(recover);
      expect(m.lease(waiterId)).toMatchObject({ status: "failed", end_reason: "object_restarted" });
      expect(m.session(launch!.row)).toMatchObject({ state: "failed", end_reason: "object_restarted" });
      expect(m.session(resetting.session.id)).toMatchObject({ state: "closing", end_reason: "object_restarted" });
      expect(m.session(closing.session.id)).toMatchObject({ state: "closing", deadline: m.now + CLOSE_TIMEOUT_MS });
      // The active lease is untouched: its client may still hold it.
      expect(m.lease(kept.lease.id).status).toBe("active");
      const closes = effectsOf(ran.effects, "close").map((e) => e.row).sort();
      expect(closes).toEqual([resetting.session.id, closing.session.id].sort());
      expect(effectsOf(ran.effects, "reject")).toHaveLength(1);
      expect(m.violations()).toEqual([]);
    }));
});

describe("reconcile", () => {
  it("suspects a leased session missing from one list: it keeps its slot and lease, and is probed", () =>
    withMachine({}, (m) => {
      const { lease, session } = m.leased();
      m.now += 1_000;
      const ran = m.run((s) => reconcile(s, new Set(["someone-else"]), m.now));
      expect(ran.result).toEqual({ vanished: 0, suspect: 1, reclosed: 0, unknown: 1, untrusted: false });
      expect(ran.effects).toEqual([{ kind: "probe", row: session.id, sessionId: session.session_id }]);
      expect(m.session(session.id)).toMatchObject({ state: "leased", missed_at: m.now });
      expect(m.lease(lease.id).status).toBe("active");
      expect(m.db.liveSessions()).toBe(1);
      expect(m.violations()).toEqual([]);
    }));

  it("frees a session missing from two lists in a row and fails its lease", () =>
    withMachine({}, (m) => {
      const { lease, session } = m.leased();
      m.now += 1_000;
      m.run((s) => reconcile(s, new Set(["someone-else"]), m.now));
      m.now += 60_000;
      const ran = m.run((s) => reconcile(s, new Set(["someone-else"]), m.now));
      expect(ran.result).toMatchObject({ vanished: 1, suspect: 0 });
      expect(m.lease(lease.id)).toMatchObject({ status: "failed", end_reason: "browser_gone" });
      expect(effectsOf(ran.effects, "disconnect")).toEqual([{ kind: "disconnect", leaseId: lease.id, reason: "browser_gone" }]);
      expect(effectsOf(ran.effects, "forget")).toEqual([{ kind: "forget", row: session.id, sessionId: session.session_id }]);
      expect(m.session(session.id)).toMatchObject({ state: "closed", end_reason: "vanished", lease_id: null });
      expect(m.db.liveSessions()).toBe(0);
      expect(m.violations()).toEqual([]);
    }));

  it("clears the suspicion of a session seen again in the next list", () =>
    withMachine({}, (m) => {
      const { session } = m.leased();
      m.now += 1_000;
      m.run((s) => reconcile(s, new Set(["someone-else"]), m.now));
      m.now += 60_000;
      m.run((s) => reconcile(s, new Set([session.session_id!]), m.now));
      expect(m.session(session.id)).toMatchObject({ state: "leased", missed_at: null });
      m.now += 60_000;
      // Missing again later: a first miss again, not a second one.
      expect(m.run((s) => reconcile(s, new Set(["someone-else"]), m.now)).result).toMatchObject({ vanished: 0, suspect: 1 });
    }));

  it("does not trust an empty list while it tracks sessions: nothing is judged, each is probed", () =>
    withMachine({ maxSessions: 2 }, (m) => {
      const a = m.leased();
      const b = m.leased();
      m.now += 1_000;
      const ran = m.run((s) => reconcile(s, new Set(), m.now));
      expect(ran.result).toEqual({ vanished: 0, suspect: 0, reclosed: 0, unknown: 0, untrusted: true });
      expect(ran.effects).toEqual([
        { kind: "probe", row: a.session.id, sessionId: a.session.session_id },
        { kind: "probe", row: b.session.id, sessionId: b.session.session_id },
      ]);
      expect(ran.events).toEqual(["reconcile_untrusted"]);
      for (const { lease, session } of [a, b]) {
        expect(m.session(session.id)).toMatchObject({ state: "leased", missed_at: null });
        expect(m.lease(lease.id).status).toBe("active");
      }
    }));

  it("a probe that says gone frees the session at once; one that says alive clears the suspicion", () =>
    withMachine({ maxSessions: 2 }, (m) => {
      const gone = m.leased();
      const alive = m.leased();
      m.now += 1_000;
      m.run((s) => reconcile(s, new Set(["someone-else"]), m.now));
      m.now += 50;
      m.run((s) => probeAnswered(s, alive.session.id, true));
      const ran = m.run((s) => probeAnswered(s, gone.session.id, false));
      expect(m.lease(gone.lease.id)).toMatchObject({ status: "failed", end_reason: "browser_gone" });
      expect(m.session(gone.session.id)).toMatchObject({ state: "closed", end_reason: "vanished" });
      expect(ran.events).toEqual(["lease_failed", "reconciled_vanished"]);
      expect(m.session(alive.session.id)).toMatchObject({ state: "leased", missed_at: null, alive_at: m.now });
      expect(m.lease(alive.lease.id).status).toBe("active");
      expect(m.violations()).toEqual([]);
    }));

  it("does not judge a session launched after the list was taken", () =>
    withMachine({}, (m) => {
      const listedAt = m.now;
      m.now += 10;
      const { session } = m.leased();
      const ran = m.run((s) => reconcile(s, new Set(["someone-else"]), listedAt));
      expect(ran.result).toMatchObject({ vanished: 0, suspect: 0 });
      expect(m.session(session.id)).toMatchObject({ state: "leased", missed_at: null });
    }));

  it("closes again a browser this pool ended that is still running, and counts unknown ones", () =>
    withMachine({ reuse: false }, (m) => {
      const { lease, session } = m.leased();
      m.run((s) => releaseLease(s, lease.id));
      m.run((s) => closeSucceeded(s, session.id));
      m.now += 1_000;
      const ran = m.run((s) => reconcile(s, new Set([session.session_id!, "someone-else"]), m.now));
      expect(ran.result).toEqual({ vanished: 0, suspect: 0, reclosed: 1, unknown: 1, untrusted: false });
      expect(ran.effects).toEqual([{ kind: "close", row: session.id, sessionId: session.session_id }]);
    }));

  it("leaves live, tracked sessions alone", () =>
    withMachine({}, (m) => {
      const { session } = m.leased();
      m.now += 1_000;
      const ran = m.run((s) => reconcile(s, new Set([session.session_id!]), m.now));
      expect(ran.result).toEqual({ vanished: 0, suspect: 0, reclosed: 0, unknown: 0, untrusted: false });
      expect(ran).toMatchObject({ effects: [], events: [] });
    }));
});

describe("applyConfig", () => {
  it("refuses to shrink below the sessions in use with 409 pool_busy", () =>
    withMachine({ maxSessions: 2 }, (m) => {
      fill(m);
      const ran = m.run((s) => applyConfig(s, { ...m.config, maxSessions: 1 }));
      expect(ran.result).toMatchObject({ status: 409, code: "pool_busy", retryAfter: 1 });
      expect(ran.events).toEqual([]);
    }));

  it("retires idle sessions beyond the new maximum at once", () =>
    withMachine({ maxSessions: 2 }, (m) => {
      const [a, b] = fill(m);
      for (const held of [a!, b!]) {
        m.run((s) => releaseLease(s, held.lease.id));
        m.run((s) => resetSucceeded(s, held.session.id));
        m.now += 1_000;
      }
      expect(m.db.counts().idle).toBe(2);
      // Two idle sessions, new maximum 1: the one idle longest is retired.
      const next = { ...m.config, maxSessions: 1 };
      const ran = m.run((s) => applyConfig(s, next));
      m.config = next;
      expect(ran.result).toBeUndefined();
      // Closed without a close call, as the platform is asked by the registry; its permit goes back to the account.
      expect(ran.effects).toEqual([
        { kind: "returnPermits", rows: [a!.session.id] },
        { kind: "forget", row: a!.session.id, sessionId: a!.session.session_id },
        { kind: "close", row: a!.session.id, sessionId: a!.session.session_id },
      ]);
      expect(m.session(a!.session.id)).toMatchObject({ state: "closed", end_reason: "resized" });
      expect(m.session(b!.session.id).state).toBe("idle");
      expect(ran.events).toEqual(["configured"]);
      expect(m.violations()).toEqual([]);
    }));

  it("a larger minIdle launches warm sessions that nobody owns", () =>
    withMachine({ maxSessions: 3 }, (m) => {
      const next = { ...m.config, minIdle: 2 };
      const ran = m.run((s) => applyConfig(s, next));
      const launches = effectsOf(ran.effects, "launch");
      expect(launches).toHaveLength(2);
      for (const l of launches) expect(m.session(l.row)).toMatchObject({ state: "launching", lease_id: null });
    }));
});

describe("pump", () => {
  it("hands idle sessions to the oldest waiters first (FIFO)", () =>
    withMachine({ maxSessions: 1 }, (m) => {
      const holder = m.leased();
      const ids = [1, 2, 3].map(() => {
        const r = m.request({ waitMs: 10_000 }).result;
        return r.kind === "waiting" ? r.lease.id : "";
      });
      const granted: string[] = [];
      let current = holder;
      for (let i = 0; i < 3; i += 1) {
        m.run((s) => releaseLease(s, current.lease.id));
        const ran = m.run((s) => resetSucceeded(s, current.session.id));
        const grant = effectsOf(ran.effects, "grant")[0]!;
        granted.push(grant.leaseId);
        const lease = m.lease(grant.leaseId);
        current = { lease, session: m.session(lease.session_row!) };
      }
      expect(granted).toEqual(ids);
    }));

  it("never reserves more launches than free capacity, even with many waiters", () =>
    withMachine({ maxSessions: 3, maxWaiters: 50 }, (m) => {
      let launches = 0;
      for (let i = 0; i < 10; i += 1) launches += effectsOf(m.request({ waitMs: 10_000 }).effects, "launch").length;
      expect(launches).toBe(3);
      expect(m.db.liveSessions()).toBe(3);
      expect(m.run(pump).effects).toEqual([]);
      expect(m.violations()).toEqual([]);
    }));
});

describe("retryAfterSeconds", () => {
  it("is 1 with no active lease, the next expiry rounded up otherwise, and at most an hour", () =>
    withMachine({ maxSessions: 2, maxTtlSeconds: 3600 }, (m) => {
      expect(m.run(retryAfterSeconds).result).toBe(1);
      m.leased({ ttlMs: 7_200_000 });
      expect(m.run(retryAfterSeconds).result).toBe(3600);
      m.leased({ ttlMs: 12_345 });
      expect(m.run(retryAfterSeconds).result).toBe(13);
      m.now += 12_345;
      expect(m.run(retryAfterSeconds).result).toBe(1);
    }));
});

describe("registration with the account's session registry", () => {
  it("tick retries registrations that did not get through, and stops once acknowledged", () =>
    withMachine({}, (m) => {
      const asked = m.request({ waitMs: 5_000 });
      const [launch] = effectsOf(asked.effects, "launch");
      m.run((s) => launchSucceeded(s, launch!.row, "browser-r"));
      expect(effectsOf(m.run(tick).effects, "register")).toEqual([{ kind: "register", row: launch!.row, sessionId: "browser-r" }]);
      m.run((s) => registered(s, launch!.row));
      expect(effectsOf(m.run(tick).effects, "register")).toEqual([]);
    }));

  it("reports launches whose outcome was lost (restart, timeout) to the registry, once, with their windows", () =>
    withMachine({ launchTimeoutSeconds: 5 }, (m) => {
      m.leased();
      m.run(recover);
      expect(effectsOf(m.run(tick).effects, "reportLost")).toEqual([]);
      const restarted = effectsOf(m.request({ waitMs: 5_000 }).effects, "launch")[0]!;
      m.now += 1_000;
      m.run(recover);
      m.now += 100;
      const timedOut = effectsOf(m.request({ waitMs: 5_000 }).effects, "launch")[0]!;
      m.now += 5_000;
      const [report] = effectsOf(m.run(tick).effects, "reportLost");
      expect(report).toEqual({
        kind: "reportLost",
        rows: [restarted.row, timedOut.row],
        windows: [
          { startedAt: T0, endedAt: T0 + 1_000 },
          { startedAt: T0 + 1_100, endedAt: T0 + 6_100 },
        ],
      });
      // A failed launch the platform refused started no browser: nothing to report.
      m.run((s) => registryDone(s, report!.rows));
      expect(effectsOf(m.run(tick).effects, "reportLost")).toEqual([]);
    }));

  it("tells the registry to forget a registered browser once it is closed, until acknowledged", () =>
    withMachine({ reuse: false }, (m) => {
      const { lease, session } = m.leased();
      m.run((s) => releaseLease(s, lease.id));
      const closed = m.run((s) => closeSucceeded(s, session.id));
      expect(effectsOf(closed.effects, "forget")).toEqual([{ kind: "forget", row: session.id, sessionId: session.session_id }]);
      expect(effectsOf(m.run(tick).effects, "forget")).toEqual([{ kind: "forget", row: session.id, sessionId: session.session_id }]);
      m.run((s) => registryDone(s, [session.id]));
      expect(effectsOf(m.run(tick).effects, "forget")).toEqual([]);
    }));
});

describe("the pool's own lifecycle", () => {
  it("is created once, with its identity, config and first reconciliation a minute later", () =>
    withMachine({}, (m) => {
      expect(poolState(m.db)).toBe("none");
      const creation = { tenant: "acme", pool: "scrapers", config: m.config, claimed: 2 };
      const ran = m.run((s) => createPool(s, creation));
      expect(poolState(m.db)).toBe("created");
      expect(ran.events).toEqual(["pool_created"]);
      expect(ran.effects).toEqual([]);
      expect(m.db.getMeta("tenant_claimed")).toBe("2");
      expect(Number(m.db.getMeta("next_reconcile_at"))).toBe(m.now + RECONCILE_INTERVAL_MS);
      // A second creation changes nothing.
      expect(m.run((s) => createPool(s, { ...creation, pool: "other" })).events).toEqual([]);
      expect(m.db.getMeta("pool")).toBe("scrapers");
    }));

  it("is retired into deleting (drained, idle sessions closing) only when nothing is in use, and can come back", () =>
    withMachine({ maxSessions: 2 }, (m) => {
      m.run((s) => createPool(s, { tenant: "acme", pool: "p", config: m.config, claimed: undefined }));
      const { lease, session } = m.leased();
      expect(m.run(retire).result).toMatchObject({ status: 409, code: "pool_busy" });
      expect(poolState(m.db)).toBe("created");
      m.run((s) => releaseLease(s, lease.id));
      m.run((s) => resetSucceeded(s, session.id));
      const ran = m.run(retire);
      expect(ran.result).toEqual({ closed: 1 });
      expect(poolState(m.db)).toBe("deleting");
      expect(isDraining(m.db)).toBe(true);
      expect(m.session(session.id).state).toBe("closing");
      // The way back: its unregistering failed, or the object restarted before the storage went.
      m.db.setMeta("pool_registered", "1");
      const back = m.run(undoDeletion);
      expect(back.events).toEqual(["deletion_undone"]);
      expect(poolState(m.db)).toBe("created");
      expect(isDraining(m.db)).toBe(true);
      expect(m.db.getMeta("pool_registered")).toBe("0");
      expect(m.db.getMeta("tenant_claimed")).toBe("none");
      expect(m.run(undoDeletion).events).toEqual([]);
    }));

  it("a pool that is not created cannot be retired", () =>
    withMachine({}, (m) => {
      expect(m.run(retire).result).toMatchObject({ status: 404, code: "not_found" });
    }));
});

describe("operators' transitions", () => {
  it("drain turns away a waiter whose launch is in flight; the launch lands idle and nothing is granted until resume", () =>
    withMachine({ maxSessions: 2, minIdle: 0 }, (m) => {
      const waiting = m.request({ waitMs: 10_000 });
      const [launch] = effectsOf(waiting.effects, "launch");
      const drained = m.run(drain);
      expect(drained.result).toBe(1);
      expect(effectsOf(drained.effects, "reject")).toEqual([
        { kind: "reject", leaseId: waiting.result.kind === "waiting" ? waiting.result.lease.id : "", failure: expect.objectContaining({ status: 503, code: "pool_draining" }) },
      ]);
      expect(m.run((s) => launchSucceeded(s, launch!.row, "browser-1")).effects.filter((e) => e.kind === "grant")).toEqual([]);
      expect(m.db.counts()).toMatchObject({ idle: 1, waiting: 0 });
      const refused = m.request({ waitMs: 10_000 });
      expect(refused.result).toMatchObject({ kind: "rejected", failure: { status: 503, code: "pool_draining", retryAfter: 30 } });
      expect(m.violations()).toEqual([]);
      m.run(resume);
      expect(m.request().result.kind).toBe("granted");
      expect(m.violations()).toEqual([]);
    }));

  it("drain keeps the warm target from launching", () =>
    withMachine({ maxSessions: 2, minIdle: 1 }, (m) => {
      m.run(drain);
      expect(effectsOf(m.run(pump).effects, "launch")).toEqual([]);
      expect(effectsOf(m.run(resume).effects, "launch")).toHaveLength(1);
    }));

  it("force-release ends the lease as forced and closes its session, never reusing it", () =>
    withMachine({ reuse: true }, (m) => {
      const { lease, session } = m.leased();
      const forced = m.run((s) => forceRelease(s, lease.id));
      expect(forced.result).toMatchObject({ status: "released", end_reason: "forced" });
      expect(effectsOf(forced.effects, "close")).toEqual([{ kind: "close", row: session.id, sessionId: session.session_id }]);
      expect(effectsOf(forced.effects, "reset")).toEqual([]);
      expect(m.session(session.id)).toMatchObject({ state: "closing", end_reason: "forced" });
      expect(forced.events).toEqual(["forced", "closing"]);
      // Again: nothing more happens.
      const again = m.run((s) => forceRelease(s, lease.id));
      expect(again.effects).toEqual([]);
      expect(m.violations()).toEqual([]);
    }));

  it("purge-idle closes every idle session and lets the warm target launch replacements", () =>
    withMachine({ maxSessions: 3, minIdle: 2 }, (m) => {
      const launches = effectsOf(m.run(pump).effects, "launch");
      for (const [i, launch] of launches.entries()) m.run((s) => launchSucceeded(s, launch.row, `warm-${i}`));
      expect(m.db.counts().idle).toBe(2);
      const purged = m.run(purgeIdle);
      expect(purged.result).toBe(2);
      expect(effectsOf(purged.effects, "close")).toHaveLength(2);
      // One free slot (3 − 2 closing): one replacement launches now, the other once a close lands.
      expect(effectsOf(purged.effects, "launch")).toHaveLength(1);
      expect(m.violations()).toEqual([]);
    }));
});
