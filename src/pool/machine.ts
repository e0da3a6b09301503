/**
 * The pool's state machine: every decision the broker makes, as transitions
 * over SQL rows. A transition reads and writes only through `PoolStore`, runs
 * inside one `transactionSync` (shell.ts guarantees that), never awaits, and
 * describes the I/O it needs as `Effect`s that effects.ts performs afterwards.
 * The outcome of an effect comes back as another transition, which re-reads
 * the rows it needs: nothing decided before an await is trusted after it.
 *
 * This file holds the transitions of leases, sessions and waiters, and the
 * building blocks every transition decides with. Groups of transitions live
 * beside it and use those blocks: operations.ts (config, operators' actions,
 * and the pool's own lifecycle: (none) → created → deleting → deleted, and
 * back), reconcile.ts (judging the platform's list), liveness.ts (pings,
 * probes, and a browser's death confirmed) and permits.ts (the account's
 * launch permits); capacity.ts holds the breaker, admission control and the
 * warm target.
 *
 * Session: launching → idle → leased → (resetting → idle | closing) → closed,
 *          idle → resetting (checked alive before a borrow) → leased | closing,
 *          launching → failed.
 * Lease:   waiting → active → released | expired | failed;  waiting → failed.
 *
 * `resetting` means "being made ready for a lease": cleaned after a release,
 * or, for an idle session that has not proved alive for ALIVE_BYPASS_MS,
 * checked before it is handed out (then it is owned by the waiter it is
 * checked for, as a launch is). Either way it holds a slot and has a deadline.
 *
 * Why the incident cannot happen here: a slot is reserved by inserting a
 * `launching` row in the same transaction that decides to launch, that row
 * carries a deadline, and every way the launch can end (success, failure,
 * timeout via `tick`, restart via `recover`) moves it out of `launching`.
 */
import type { Failure } from "../result";
import {
  admission,
  launchBroke,
  launchGate,
  launchWorked,
  markProbe,
  recordArrival,
  recordHold,
  recordLaunch,
  warmTarget,
} from "./capacity";
import type { PoolConfig } from "./config";
import type { LeaseRow, SessionRow } from "./schema";
import type { Counts, PoolStore } from "./store";


/** A lease's browser state to save to the tenant's profile as the lease ends (src/profiles). */
export type ProfileSave = { profile: string; leaseId: string };

export type Effect =
  /** Start a browser for the `launching` row (after the account's governor gave a permit; `warm`: nobody waits for it). */
  | { kind: "launch"; row: number; warm: boolean }
  /** The browsers of these rows no longer run (closed, failed, never launched): give their permits back to the account. */
  | { kind: "returnPermits"; rows: number[] }
  /** `save`: first save the browser's state to the lease's profile (persistProfile), since the close ends it. */
  | { kind: "close"; row: number; sessionId: string; save?: ProfileSave }
  /** Clean a released session for the next lease, once every client of `leaseId` has disconnected (and save its state first, with `save`). */
  | { kind: "reset"; row: number; sessionId: string; leaseId: string; save?: ProfileSave }
  /** Make sure an idle session's browser is alive before it is handed out (validate on borrow). */
  | { kind: "check"; row: number; sessionId: string }
  /** Ask the platform directly whether a session it did not list is still running (never connects). */
  | { kind: "probe"; row: number; sessionId: string }
  /** A lease ended: every CDP socket of it must be closed now. */
  | { kind: "disconnect"; leaseId: string; reason: string }
  /** Tell the account's session registry about a browser this pool launched. */
  | { kind: "register"; row: number; sessionId: string }
  /** Tell the registry a registered browser of this pool is closed, so it forgets it. */
  | { kind: "forget"; row: number; sessionId: string }
  /** Tell the registry about launches whose outcome was lost: their browsers, if any, are orphans. */
  | { kind: "reportLost"; rows: number[]; windows: { startedAt: number; endedAt: number }[] }
  /** Show the platform activity so it keeps the browser (idle, or leased with no client connected). */
  | { kind: "ping"; row: number; sessionId: string }
  | { kind: "grant"; leaseId: string }
  /** A recorded lease was granted: its recorder starts (src/recorder). */
  | { kind: "record"; leaseId: string; sessionId: string }
  /** A recorded lease ended: its recorder finishes the recording, with the lease's journal for its timeline. */
  | { kind: "stopRecording"; leaseId: string }
  | { kind: "reject"; leaseId: string; failure: Failure };

/** What every transition runs with. `effects` collects the I/O to do after commit. */
export interface Step {
  db: PoolStore;
  now: number;
  config: PoolConfig;
  /** keep_alive the browsers were launched with: the platform ends one this long without a devtools command. */
  keepAliveMs: number;
  effects: Effect[];
}

/** How often a pool compares its sessions with the platform's list (while it holds anything). */
export const RECONCILE_INTERVAL_MS = 60_000;
export const RESET_TIMEOUT_MS = 15_000;
export const CLOSE_TIMEOUT_MS = 15_000;
export const MAX_CLOSE_ATTEMPTS = 3;
/**
 * An idle session that proved alive this recently (launched, reset, checked or
 * pinged) is handed out without a check, as HikariCP's aliveBypassWindowMs:
 * back-to-back leases pay nothing, a session idle for longer pays one round trip.
 */
export const ALIVE_BYPASS_MS = 5_000;
/** How long the check before a borrow may take before the session counts as dead. */
export const CHECK_TIMEOUT_MS = 5_000;

export type Priority = "high" | "normal" | "low";
export const PRIORITY_LEVEL: Record<Priority, number> = { high: 0, normal: 1, low: 2 };
/**
 * Priority with ageing: a waiter's rank is its arrival time moved this much
 * earlier for `high`, later for `low`. FIFO holds within a priority, and a
 * `low` caller that has waited this long outranks a `normal` one arriving
 * now (twice this, a `high` one): low never starves.
 */
export const PRIORITY_AGEING_MS = 30_000;

export interface LeaseRequest {
  id: string;
  /** Default "normal". */
  priority?: Priority;
  /** Record the lease's screen while it is active; default the pool's `record`. */
  record?: boolean;
  /** Save the browser's state to this profile of the tenant's when the lease ends. */
  persistProfile?: string;
  /** SHA-256 of the token of the lease's own viewer URL. */
  viewerHash?: string;
  owner: string;
  labels: Record<string, string>;
  ttlMs: number;
  waitMs: number;
  idempotencyKey: string | null;
  /** SHA-256 (hex) of the connect token the Worker minted for this lease. */
  tokenHash: string | null;
}

export type RequestOutcome =
  | { kind: "granted"; lease: LeaseRow }
  | { kind: "waiting"; lease: LeaseRow }
  | { kind: "rejected"; failure: Failure };

export interface LaunchError {
  message: string;
  /** The platform refused for its limits (HTTP 429): retry later, not at once. */
  platformLimited: boolean;
  retryAfterSeconds?: number;
}

// ---- transitions ------------------------------------------------------------

/**
 * A caller asks for a lease. Decided here, synchronously: an idle session that
 * proved alive a moment ago is granted at once; a staler one is checked first
 * (the caller waits for the check); with free capacity a launch is reserved for
 * the caller; a session being made ready that nobody queues for will serve a
 * caller who does not want to queue; otherwise the caller queues (bounded by
 * maxWaiters) or is told to retry.
 */
export function requestLease(step: Step, req: LeaseRequest): RequestOutcome {
  const { db, now, config } = step;
  if (isDraining(step.db)) return rejected(step, draining());
  recordArrival(step);
  const counts = db.counts();
  const waiting = counts.waiting;
  const hasCapacity = liveOf(counts) < config.maxSessions;
  const idle = waiting === 0 && counts.idle > 0 ? db.oldestIdle() : undefined;
  const priority = PRIORITY_LEVEL[req.priority ?? "normal"];
  const rank = now + (priority - 1) * PRIORITY_AGEING_MS;
  const turnedAway = idle ? undefined : admission(step, { hasCapacity, waitMs: req.waitMs, rank, live: liveOf(counts), waiting });
  if (turnedAway) return rejected(step, turnedAway);
  let waitUntil = now + req.waitMs;
  if (!idle && !hasCapacity) {
    if (req.waitMs === 0) {
      // waitSeconds 0 means "do not queue behind other callers", not "fail while
      // the broker is busy": a session being reset, or a warm launch nobody owns,
      // serves this caller if there is one for every caller already waiting.
      const incoming = db.incomingUnowned();
      if (!incoming || incoming.count <= waiting) return rejected(step, exhausted(step, "no session is free and waitSeconds is 0"));
      waitUntil = Math.max(waitUntil, incoming.deadline);
    } else if (waiting >= config.maxWaiters) {
      return rejected(step, exhausted(step, `the wait queue is full (maxWaiters ${config.maxWaiters})`));
    }
  }
  const lease: LeaseRow = {
    id: req.id,
    seq: db.nextSeq(),
    status: "waiting",
    session_row: null,
    session_id: null,
    owner: req.owner,
    labels: JSON.stringify(req.labels),
    ttl_ms: req.ttlMs,
    created_at: now,
    wait_deadline: waitUntil,
    granted_at: null,
    expires_at: null,
    ended_at: null,
    end_reason: null,
    idempotency_key: req.idempotencyKey,
    token_hash: req.tokenHash,
    connected_at: null,
    priority,
    rank,
    wait_ms: req.waitMs,
    record: (req.record ?? config.record) ? 1 : 0,
    persist_profile: req.persistProfile ?? null,
    viewer_hash: req.viewerHash ?? null,
  };
  if (idle && isFresh(step, idle)) {
    // The common case, written once: the lease is inserted already active on
    // the idle session (nobody queues ahead of it, since waiting is 0).
    const active: LeaseRow = {
      ...lease,
      status: "active",
      session_row: idle.id,
      session_id: idle.session_id,
      granted_at: now,
      expires_at: now + req.ttlMs,
      wait_deadline: null,
    };
    db.insertLease(active);
    db.updateSession(idle.id, { state: "leased", lease_id: active.id, deadline: now + keepAlivePingMs(step), uses: idle.uses + 1 });
    db.journal(now, "granted", active.id, idle.id, { sessionId: idle.session_id, waitedMs: 0, uses: idle.uses + 1, ttlMs: req.ttlMs });
    if (active.record) step.effects.push({ kind: "record", leaseId: active.id, sessionId: idle.session_id! });
    db.observe("queue_wait_seconds", {}, 0);
    clearExhausted(step);
    pump(step);
    return { kind: "granted", lease: active };
  }
  db.insertLease(lease);
  db.journal(now, "requested", lease.id, null, { waitMs: req.waitMs, ttlMs: req.ttlMs });
  if (!idle && !hasCapacity) markExhausted(step);
  pump(step);
  const after = db.lease(lease.id)!;
  return after.status === "active" ? { kind: "granted", lease: after } : { kind: "waiting", lease: after };
}

/** A launch returned a platform session id. */
export function launchSucceeded(step: Step, row: number, sessionId: string): void {
  const { db, now } = step;
  const session = db.session(row);
  if (!session) return;
  if (session.state !== "launching") {
    // Timed out or abandoned by a restart before the platform answered: the
    // browser exists but nobody may use it. Record its id (so reconciliation can
    // find it if this close fails) and close it.
    if (!session.session_id) db.updateSession(row, { session_id: sessionId });
    db.journal(now, "late_launch_closed", null, row, { sessionId });
    step.effects.push({ kind: "register", row, sessionId });
    step.effects.push({ kind: "close", row, sessionId });
    keepReconciling(step);
    return;
  }
  const launched: SessionRow = { ...session, session_id: sessionId, launched_at: now, alive_at: now };
  db.updateSession(row, { session_id: sessionId, launched_at: now, alive_at: now });
  launchWorked(step);
  recordLaunch(step, now - session.created_at);
  db.journal(now, "launched", session.lease_id, row, { sessionId, launchMs: now - session.created_at });
  db.observe("launch_duration_seconds", {}, (now - session.created_at) / 1000);
  step.effects.push({ kind: "register", row, sessionId });
  // First come, first served: the head of the queue gets it, whoever it was launched for.
  offer(step, launched, true);
}

/** A launch failed. The slot is freed and the waiter it was for is told why. */
export function launchFailed(step: Step, row: number, error: LaunchError): void {
  const { db, now } = step;
  const session = db.session(row);
  if (session?.state !== "launching") return;
  db.updateSession(row, { state: "failed", ended_at: now, end_reason: "launch_failed", deadline: null });
  db.journal(now, "launch_failed", session.lease_id, row, { error: error.message, platformLimited: error.platformLimited });
  db.count("launch_failures", { reason: error.platformLimited ? "platform_limit" : "error" });
  step.effects.push({ kind: "returnPermits", rows: [row] });
  // The platform's pacing (429) is not the browser failing: it never trips the breaker.
  if (!error.platformLimited) launchBroke(step, row);
  if (error.platformLimited) {
    // Back off for as long as the platform said: launching again at once would only be refused again.
    db.setMeta("launch_blocked_until", String(now + (error.retryAfterSeconds ?? 5) * 1000));
    db.setMeta("launch_blocked_reason", "platform_limited");
  }
  const owner = session.lease_id ? db.lease(session.lease_id) : undefined;
  if (owner?.status === "waiting") {
    failWaiter(
      step,
      owner,
      "launch_failed",
      error.platformLimited
        ? {
            status: 503,
            code: "browser_unavailable",
            detail: "the platform refused to start a browser (limit reached)",
            retryAfter: error.retryAfterSeconds ?? 5,
          }
        : { status: 502, code: "browser_unavailable", detail: `launching a browser failed: ${firstLine(error.message)}` },
    );
  }
  pump(step);
}

/** The registry acknowledged a browser of this pool. */
export function registered(step: Step, row: number): void {
  const session = step.db.session(row);
  // A session closed while its registration was on its way must still be forgotten.
  if (session?.registered === 0) step.db.updateSession(row, { registered: 1 });
  if (session && (session.state === "closed" || session.state === "failed")) {
    step.effects.push({ kind: "forget", row, sessionId: session.session_id! });
  }
}

/** The registry forgot a closed browser of this pool (or was told of a lost launch): nothing more to tell it. */
export function registryDone(step: Step, rows: number[]): void {
  for (const row of rows) step.db.updateSession(row, { registered: REGISTRY_DONE });
}

/** sessions.registered: 0 = the registry must be told (a launch, or a lost launch), 1 = registered, 2 = nothing more to tell. */
export const REGISTRY_DONE = 2;

/** The caller ends a lease. Idempotent: an ended lease is returned as it is. */
export function releaseLease(step: Step, leaseId: string): LeaseRow | undefined {
  const { db, now } = step;
  const lease = db.lease(leaseId);
  if (!lease) return undefined;
  if (lease.status === "active") return endActive(step, lease, lease.expires_at! <= now ? "expired" : "released");
  if (lease.status === "waiting") {
    failWaiter(step, lease, "cancelled", { status: 409, code: "lease_not_active", detail: "the lease was released while waiting" });
    pump(step);
    return db.lease(leaseId);
  }
  return lease;
}

/**
 * The caller a lease was granted to had gone before its answer left the Worker
 * (its request was aborted): the lease is released (endReason `abandoned`),
 * and its browser, which nobody could have connected to, is reused.
 */
export function abandonLease(step: Step, leaseId: string): LeaseRow | undefined {
  const lease = step.db.lease(leaseId);
  if (lease?.status !== "active" || lease.connected_at !== null) return lease;
  return endActive(step, lease, "abandoned");
}

/**
 * Ends every active lease of the pool held by `owner` (the API: "the
 * caller's"; an owner is one API key), or of everyone when no owner is given
 * (tests, operators). Returns how many were released.
 */
export function releaseAll(step: Step, owner?: string): number {
  const { db, now } = step;
  let released = 0;
  for (const lease of db.leasesIn("active")) {
    if (owner !== undefined && lease.owner !== owner) continue;
    endActive(step, lease, lease.expires_at! <= now ? "expired" : "released");
    released += 1;
  }
  return released;
}

/** Extends an active lease; a lease past its expiry is expired instead (no resurrection). */
export function renewLease(step: Step, leaseId: string, ttlMs: number): { lease: LeaseRow } | { failure: Failure } {
  const { db, now } = step;
  const lease = db.lease(leaseId);
  if (!lease) return { failure: notFound("lease") };
  if (lease.status === "active" && lease.expires_at! <= now) endActive(step, lease, "expired");
  const current = db.lease(leaseId)!;
  if (current.status !== "active") {
    return { failure: { status: 409, code: "lease_not_active", detail: `lease is ${current.status}; only an active lease can be renewed` } };
  }
  db.updateLease(leaseId, { expires_at: now + ttlMs, ttl_ms: ttlMs });
  db.journal(now, "renewed", leaseId, current.session_row, { ttlMs });
  return { lease: db.lease(leaseId)! };
}

/** A waiting caller went away (client disconnect). Its place and any launch reserved for it are given up. */
export function cancelWaiter(step: Step, leaseId: string): boolean {
  const lease = step.db.lease(leaseId);
  if (lease?.status !== "waiting") return false;
  failWaiter(step, lease, "cancelled", { status: 409, code: "lease_not_active", detail: "the request was cancelled" });
  pump(step);
  return true;
}

/** A reused session was cleaned (the previous lease's pages and contexts closed). */
export function resetSucceeded(step: Step, row: number): void {
  readied(step, row, "reset");
}

/** Cleaning failed: the session cannot be trusted for another lease, so it is closed. */
export function resetFailed(step: Step, row: number, message: string): void {
  const session = step.db.session(row);
  if (session?.state !== "resetting") return;
  startClosing(step, session, "reset_failed", { error: message });
}

/** The idle session checked before a borrow answered: it goes to the head of the queue (first come, first served), usually the caller it was checked for. */
export function checkPassed(step: Step, row: number): void {
  readied(step, row, "checked");
}

/**
 * The idle session checked before a borrow is dead (or did not answer in
 * time): it is closed, and the caller it was checked for is served by the next
 * idle session or a launch, within the same acquire.
 */
export function checkFailed(step: Step, row: number, message: string): void {
  const { db, now } = step;
  const session = db.session(row);
  if (session?.state !== "resetting") return;
  const owner = session.lease_id ? db.lease(session.lease_id) : undefined;
  startClosing(step, session, "dead_on_borrow", { error: message });
  // The caller waits on: for the next check, or for the slot this close frees.
  if (owner?.status === "waiting" && owner.wait_deadline! < now + CHECK_TIMEOUT_MS) {
    db.updateLease(owner.id, { wait_deadline: now + CHECK_TIMEOUT_MS });
  }
  pump(step);
}

/** A session was made ready (reset or checked): the head of the queue gets it, or it goes idle. */
function readied(step: Step, row: number, event: string): void {
  const { db, now } = step;
  const session = db.session(row);
  if (session?.state !== "resetting") return;
  db.journal(now, event, session.lease_id, row);
  // It just proved alive: whoever gets it (the head of the queue, first come,
  // first served, whoever it was checked for) records that in the same write.
  offer(step, session, true);
}

export function closeSucceeded(step: Step, row: number): void {
  const { db, now } = step;
  const session = db.session(row);
  if (session?.state !== "closing") return;
  closed(step, session, {});
  db.journal(now, "closed", null, row, { reason: session.end_reason });
  pump(step);
}

/** A close failed: retried with backoff by `tick`; after MAX_CLOSE_ATTEMPTS the slot is freed and reconciliation takes over. */
export function closeFailed(step: Step, row: number, message: string): void {
  const { db, now } = step;
  const session = db.session(row);
  if (session?.state !== "closing") return;
  const attempts = session.attempts + 1;
  if (attempts >= MAX_CLOSE_ATTEMPTS) {
    closed(step, session, { attempts });
    db.journal(now, "close_gave_up", null, row, { error: message, attempts });
    keepReconciling(step);
    pump(step);
    return;
  }
  db.updateSession(row, { attempts, deadline: now + 1000 * 2 ** attempts });
  db.journal(now, "close_failed", null, row, { error: message, attempts });
}

/**
 * The alarm: everything whose deadline has passed, in an order that lets each
 * outcome be decided once (a launch timeout fails its waiter before the
 * waiter's own deadline would). Idempotent: running it twice changes nothing.
 */
export function tick(step: Step): void {
  const { db, now, config } = step;
  for (const lease of db.leasesDue("active", now)) endActive(step, lease, "expired");
  if (config.connectWithinSeconds > 0) {
    // A lease nobody connected to: its caller gave up, or crashed after being served.
    for (const lease of db.unconnectedSince(now - config.connectWithinSeconds * 1000)) endActive(step, lease, "not_connected");
  }
  for (const session of db.sessionsDue("launching", now)) {
    db.updateSession(session.id, { state: "failed", ended_at: now, end_reason: "launch_timeout", deadline: null });
    db.journal(now, "launch_timeout", session.lease_id, session.id);
    db.count("launch_failures", { reason: "timeout" });
    step.effects.push({ kind: "returnPermits", rows: [session.id] });
    launchBroke(step, session.id);
    const owner = session.lease_id ? db.lease(session.lease_id) : undefined;
    if (owner?.status === "waiting") {
      failWaiter(step, owner, "launch_timeout", {
        status: 503,
        code: "browser_unavailable",
        detail: `no browser started within launchTimeoutSeconds (${config.launchTimeoutSeconds})`,
        retryAfter: 1,
      });
    }
  }
  for (const session of db.sessionsDue("resetting", now)) {
    // A check that outlived its deadline is a dead browser (its caller, due at
    // the same moment, waits on for the next session: hence before the waiters);
    // so is a reset's.
    if (session.lease_id) checkFailed(step, session.id, "the check before the borrow timed out");
    else startClosing(step, session, "reset_timeout");
  }
  for (const lease of db.leasesDue("waiting", now)) {
    failWaiter(step, lease, "wait_timeout", exhausted(step, "no session became free within waitSeconds"));
  }
  for (const session of db.sessionsDue("closing", now)) {
    db.updateSession(session.id, { deadline: now + CLOSE_TIMEOUT_MS });
    if (session.session_id) step.effects.push({ kind: "close", row: session.id, sessionId: session.session_id });
    else closeSucceeded(step, session.id);
  }
  for (const session of db.sessionsDue("leased", now)) {
    // Keep-alive: the platform ends a browser that hears no devtools command for
    // keep_alive; while the lease's client is connected, its traffic is what counts.
    db.updateSession(session.id, { deadline: now + keepAlivePingMs(step) });
    if (session.lease_id && db.connectionsOf(session.lease_id) === 0) {
      step.effects.push({ kind: "ping", row: session.id, sessionId: session.session_id! });
    }
  }
  // What the account's registry has not acknowledged yet is told again.
  for (const session of db.unregistered()) step.effects.push({ kind: "register", row: session.id, sessionId: session.session_id! });
  for (const session of db.unforgotten()) step.effects.push({ kind: "forget", row: session.id, sessionId: session.session_id! });
  const lost = db.lostLaunches();
  if (lost.length > 0) {
    step.effects.push({
      kind: "reportLost",
      rows: lost.map((session) => session.id),
      windows: lost.map((session) => ({ startedAt: session.created_at, endedAt: session.ended_at ?? now })),
    });
  }
  let idle = db.counts().idle;
  const target = warmTarget(step);
  for (const session of db.sessionsDue("idle", now)) {
    if (pastLifetime(step, session)) {
      startClosing(step, session, "recycled", { uses: session.uses });
      idle -= 1;
    } else if (idle > target) {
      startClosing(step, session, "idle_timeout");
      idle -= 1;
    } else {
      db.updateSession(session.id, { deadline: idleDeadline(step, session) });
      step.effects.push({ kind: "ping", row: session.id, sessionId: session.session_id! });
    }
  }
  pump(step);
}

/**
 * The object restarted: in-memory waiters and in-flight I/O are gone. Waiting
 * callers can no longer be answered, launches can no longer be recorded, so
 * both end here; resets and closes are started again. The lost launches are
 * reported to the account's registry by the next tick (their browsers, if the
 * platform started any, are orphans it closes).
 */
export function recover(step: Step): void {
  const { db, now } = step;
  for (const lease of db.leasesIn("waiting")) {
    failWaiter(step, lease, "object_restarted", { status: 503, code: "browser_unavailable", detail: "the pool restarted", retryAfter: 1 });
  }
  for (const session of db.sessionsIn("launching")) {
    db.updateSession(session.id, { state: "failed", ended_at: now, end_reason: "object_restarted", deadline: null });
    db.journal(now, "launch_abandoned", session.lease_id, session.id);
    db.count("launch_failures", { reason: "restart" });
    step.effects.push({ kind: "returnPermits", rows: [session.id] });
  }
  // Read before the resets below start closing, so each browser gets exactly one close.
  const closing = db.sessionsIn("closing");
  for (const session of db.sessionsIn("resetting")) startClosing(step, session, "object_restarted");
  for (const session of closing) {
    db.updateSession(session.id, { deadline: now + CLOSE_TIMEOUT_MS });
    if (session.session_id) step.effects.push({ kind: "close", row: session.id, sessionId: session.session_id });
    else closeSucceeded(step, session.id);
  }
  pump(step);
}

/** Whether an operator has drained the pool (it grants nothing until resumed). */
export function isDraining(db: PoolStore): boolean {
  return db.getMeta("draining") === "1";
}

export function draining(): Failure {
  return { status: 503, code: "pool_draining", detail: "the pool is drained by an operator and grants no leases", retryAfter: 30 };
}

// ---- building blocks ----------------------------------------------------------

/**
 * Hands out what can be handed out: idle sessions to the oldest waiters, then
 * launches for waiters that have none, then launches toward the warm target
 * (minIdle), all within maxSessions.
 */
export function pump(step: Step): void {
  const { db, now, config } = step;
  // One read of the tallies, kept up to date below as grants and launches change them.
  const counts = db.counts();
  while (counts.waiting > 0 && counts.idle > 0) {
    const idle = db.oldestIdle()!;
    if (isFresh(step, idle)) {
      // First come, first served: the head of the queue, even if a check or a
      // launch is under way for it (that passes to the next waiter).
      serveHead(step, idle);
      counts.idle -= 1;
      counts.waiting -= 1;
      counts.leased += 1;
      continue;
    }
    // A staler one is checked first, for the oldest waiter no check is under way for.
    const waiter = db.oldestWaiterUnchecked();
    if (!waiter) break;
    counts.idle -= 1;
    startCheck(step, idle, waiter);
    counts.resetting += 1;
  }
  const gate = launchGate(step);
  if (gate.blockedUntil > now) return;
  let free = config.maxSessions - liveOf(counts);
  if (gate.probeOnly) free = Math.min(free, 1);
  if (free <= 0) return;
  const reserved = (waiter: LeaseRow | null) => {
    const row = reserveLaunch(step, waiter);
    if (gate.probeOnly) markProbe(step, row);
    free -= 1;
  };
  if (counts.waiting > 0) {
    for (const waiter of db.waitersWithoutReservation(free)) reserved(waiter);
  }
  if (isDraining(step.db) || Number(db.getMeta("warm_blocked_until") ?? 0) > now) return;
  let warm = warmTarget(step) - counts.idle - (counts.launching > 0 ? db.unownedLaunches() : 0);
  for (; warm > 0 && free > 0; warm -= 1) reserved(null);
}

/** Sessions holding a slot of capacity. */
export function liveOf(counts: Counts): number {
  return counts.launching + counts.idle + counts.leased + counts.resetting + counts.closing;
}

/**
 * A browser may outlive our records (a close that gave up, a best-effort close):
 * keep reconciling, even with nothing else to do, until the platform's
 * keep-alive would have killed it anyway.
 */
export function keepReconciling(step: Step): void {
  step.db.setMeta("reconcile_until", String(step.now + step.keepAliveMs));
}

function reserveLaunch(step: Step, waiter: LeaseRow | null): number {
  const { db, now, config } = step;
  const deadline = now + config.launchTimeoutSeconds * 1000;
  const row = db.insertLaunching(waiter?.id ?? null, now, deadline);
  // A caller with a launch under way waits for its outcome, which the launch
  // deadline bounds; otherwise a short waitSeconds would abandon a launch that
  // is about to succeed.
  if (waiter && waiter.wait_deadline! < deadline) db.updateLease(waiter.id, { wait_deadline: deadline });
  db.journal(now, "launch_reserved", waiter?.id ?? null, row, { deadline });
  step.effects.push({ kind: "launch", row, warm: waiter === null });
  return row;
}

/**
 * `session` gets `lease`; `proven` when it proved alive just now (its alive_at
 * is written in the same update). Returns the launches and checks that were
 * under way for the lease, now owned by nobody.
 */
function grant(step: Step, lease: LeaseRow, session: SessionRow, proven = false): SessionRow[] {
  const { db, now } = step;
  const row = session.id;
  db.updateLease(lease.id, {
    status: "active",
    session_row: row,
    session_id: session.session_id,
    granted_at: now,
    expires_at: now + lease.ttl_ms,
    wait_deadline: null,
  });
  db.updateSession(row, {
    state: "leased",
    lease_id: lease.id,
    deadline: now + keepAlivePingMs(step),
    uses: session.uses + 1,
    ...(proven ? { alive_at: now, missed_at: null } : {}),
  });
  // A launch or check under way for this caller is no longer needed by it: it
  // becomes unowned and will be offered to the next waiter (or kept warm) when it lands.
  const freed = db.reservationsOf(lease.id);
  for (const other of freed) db.updateSession(other.id, { lease_id: null });
  db.journal(now, "granted", lease.id, row, { sessionId: session.session_id, waitedMs: now - lease.created_at, uses: session.uses + 1 });
  db.observe("queue_wait_seconds", {}, (now - lease.created_at) / 1000);
  step.effects.push({ kind: "grant", leaseId: lease.id });
  if (lease.record) step.effects.push({ kind: "record", leaseId: lease.id, sessionId: session.session_id! });
  return freed;
}

/**
 * The head of the queue gets `session`. A launch or check that was under way
 * for the head is not wasted: it passes to the oldest waiter that has none,
 * who waits for it as its owner did (at least until its deadline).
 */
function serveHead(step: Step, session: SessionRow, proven = false): void {
  const { db } = step;
  const head = db.oldestWaiter()!;
  for (const reservation of grant(step, head, session, proven)) {
    const heir = db.waitersWithoutReservation(1)[0];
    if (!heir) break;
    db.updateSession(reservation.id, { lease_id: heir.id });
    if (reservation.deadline !== null && heir.wait_deadline! < reservation.deadline) db.updateLease(heir.id, { wait_deadline: reservation.deadline });
  }
}

/** A session is free (and just proved alive): the head of the queue gets it, or it waits idle; one past its lifetime is closed instead. */
function offer(step: Step, session: SessionRow, proven = false): void {
  const { db, now } = step;
  if (pastLifetime(step, session)) {
    startClosing(step, session, "recycled", { uses: session.uses });
    pump(step);
    return;
  }
  if (db.oldestWaiter()) {
    serveHead(step, session, proven);
    return;
  }
  db.updateSession(session.id, {
    state: "idle",
    lease_id: null,
    deadline: idleDeadline(step, session),
    ...(proven ? { alive_at: now, missed_at: null } : {}),
  });
  clearExhausted(step);
}

/**
 * Starts the check of an idle session before it is handed to `waiter`: the
 * session is made `resetting`, owned by the waiter (as a launch is), with the
 * check's deadline; the waiter waits at least that long.
 */
function startCheck(step: Step, session: SessionRow, waiter: LeaseRow): void {
  const { db, now } = step;
  const deadline = now + CHECK_TIMEOUT_MS;
  db.updateSession(session.id, { state: "resetting", lease_id: waiter.id, deadline });
  if (waiter.wait_deadline! < deadline) db.updateLease(waiter.id, { wait_deadline: deadline });
  db.journal(now, "check_started", waiter.id, session.id, { sessionId: session.session_id, aliveAgoMs: now - (session.alive_at ?? session.created_at) });
  step.effects.push({ kind: "check", row: session.id, sessionId: session.session_id! });
}

/** Whether an idle session proved alive recently enough to be handed out without a check. */
function isFresh(step: Step, session: SessionRow): boolean {
  return session.alive_at !== null && step.now - session.alive_at <= ALIVE_BYPASS_MS;
}

/** A session that served maxSessionUses leases, or lived maxSessionAgeSeconds, is closed instead of reused (0 = no limit). */
function pastLifetime(step: Step, session: SessionRow): boolean {
  const { config, now } = step;
  if (config.maxSessionUses > 0 && session.uses >= config.maxSessionUses) return true;
  return config.maxSessionAgeSeconds > 0 && now >= (session.launched_at ?? session.created_at) + config.maxSessionAgeSeconds * 1000;
}

/**
 * When an idle session is next looked at: its idle timeout, its keep-alive
 * ping (the platform ends it after keep_alive without a command), or the end
 * of its lifetime, whichever comes first.
 */
function idleDeadline(step: Step, session: SessionRow): number {
  const { config, now } = step;
  let at = now + Math.min(config.idleTimeoutSeconds * 1000, keepAlivePingMs(step));
  if (config.maxSessionAgeSeconds > 0) at = Math.min(at, (session.launched_at ?? session.created_at) + config.maxSessionAgeSeconds * 1000);
  return Math.max(at, now);
}

/** How often a browser with nobody else talking to it is pinged: half its keep-alive. */
function keepAlivePingMs(step: Step): number {
  return Math.floor(step.keepAliveMs / 2);
}

/** A session's slot is free: it is closed, its permit goes back to the account, and a registered browser is forgotten by the registry. */
export function closed(step: Step, session: SessionRow, fields: Partial<SessionRow>): void {
  step.db.updateSession(session.id, { state: "closed", ended_at: step.now, deadline: null, lease_id: null, missed_at: null, ...fields });
  step.effects.push({ kind: "returnPermits", rows: [session.id] });
  if (session.registered === 1 && session.session_id) step.effects.push({ kind: "forget", row: session.id, sessionId: session.session_id });
}

/**
 * The pool turned a caller away or queued one with no capacity left: it is
 * exhausted from now on, until a session is free again (an idle session, or an
 * immediate grant). The shell alerts when that lasts too long.
 */
function markExhausted(step: Step): void {
  if (!step.db.getMeta("exhausted_since")) step.db.setMeta("exhausted_since", String(step.now));
}

function clearExhausted(step: Step): void {
  if (step.db.getMeta("exhausted_since")) step.db.setMeta("exhausted_since", "");
}

/**
 * Ends an active lease. Only a lease released by its holder may pass its
 * session on (after a reset); an expired one is closed, because its client may
 * still be connected and must never share a browser with the next lease.
 */
export function endActive(step: Step, lease: LeaseRow, reason: EndReason): LeaseRow {
  const { db, now, config } = step;
  // Only an expiry is "expired": the others end the lease as released, with the
  // endReason saying by whom (forced: an operator; not_connected: nobody
  // connected in time; abandoned: the caller was gone before it was answered).
  const status = reason === "expired" ? "expired" : "released";
  const ended: LeaseRow = { ...lease, status, ended_at: now, end_reason: reason };
  db.updateLease(lease.id, { status, ended_at: now, end_reason: reason });
  db.journal(now, reason, lease.id, lease.session_row, { heldMs: now - (lease.granted_at ?? now) });
  db.observe("lease_duration_seconds", { reason }, (now - (lease.granted_at ?? now)) / 1000);
  // Only holds that ended as their holder meant teach admission control how long a lease lasts.
  if (reason === "released" || reason === "expired") recordHold(step, now - (lease.granted_at ?? now));
  step.effects.push({ kind: "disconnect", leaseId: lease.id, reason });
  if (lease.record) step.effects.push({ kind: "stopRecording", leaseId: lease.id });
  const session = lease.session_row === null ? undefined : db.session(lease.session_row);
  if (session?.state !== "leased" || session.lease_id !== lease.id) return ended;
  // However the lease ends, a browser that still runs has its state saved before it is reset or closed.
  const save = lease.persist_profile === null ? undefined : { profile: lease.persist_profile, leaseId: lease.id };
  const reusable = reason === "released" || reason === "not_connected" || reason === "abandoned";
  const owed = Number(db.getMeta("shed_owed") ?? 0);
  if (reusable && owed > 0) {
    // The account asked this pool to give a browser back (shed): this one goes.
    db.setMeta("shed_owed", String(owed - 1));
    startClosing(step, session, "shed", undefined, save);
    pump(step);
  } else if (reusable && config.reuse && !pastLifetime(step, session)) {
    db.updateSession(session.id, { state: "resetting", lease_id: null, deadline: now + RESET_TIMEOUT_MS });
    step.effects.push({ kind: "reset", row: session.id, sessionId: session.session_id!, leaseId: lease.id, ...(save ? { save } : {}) });
  } else if (reusable && config.reuse) {
    startClosing(step, session, "recycled", { uses: session.uses }, save);
    pump(step);
  } else {
    startClosing(step, session, reason === "expired" ? "lease_expired" : reason === "forced" ? "forced" : "released_no_reuse", undefined, save);
  }
  return ended;
}

export type EndReason = "released" | "expired" | "forced" | "not_connected" | "abandoned";

export function startClosing(step: Step, session: SessionRow, reason: string, detail?: Record<string, unknown>, save?: ProfileSave): void {
  const { db, now } = step;
  db.updateSession(session.id, { state: "closing", lease_id: null, end_reason: reason, deadline: now + CLOSE_TIMEOUT_MS });
  db.journal(now, "closing", null, session.id, { reason, ...detail });
  if (session.session_id) step.effects.push({ kind: "close", row: session.id, sessionId: session.session_id, ...(save ? { save } : {}) });
  else closeSucceeded(step, session.id);
}

export function failWaiter(step: Step, lease: LeaseRow, reason: string, failure: Failure): void {
  const { db, now } = step;
  db.updateLease(lease.id, { status: "failed", ended_at: now, end_reason: reason, wait_deadline: null });
  for (const reserved of db.reservationsOf(lease.id)) db.updateSession(reserved.id, { lease_id: null });
  // A failed request may be retried with the same Idempotency-Key.
  if (lease.idempotency_key) db.forgetIdempotent(lease.idempotency_key);
  db.journal(now, "wait_failed", lease.id, null, { reason });
  db.count("acquire_failures", { outcome: reason });
  step.effects.push({ kind: "reject", leaseId: lease.id, failure });
}

/** An acquire answered with an error at once (nothing queued). */
function rejected(step: Step, failure: Failure): RequestOutcome {
  step.db.count("acquire_failures", { outcome: failure.code });
  if (failure.code === "pool_exhausted") markExhausted(step);
  return { kind: "rejected", failure };
}

function exhausted(step: Step, detail: string): Failure {
  return { status: 429, code: "pool_exhausted", detail, retryAfter: retryAfterSeconds(step) };
}

/** When capacity is likely to return: the next lease expiry, in whole seconds, at least 1. */
export function retryAfterSeconds(step: Step): number {
  const next = step.db.earliestActiveExpiry();
  if (next === null) return 1;
  return Math.min(3600, Math.max(1, Math.ceil((next - step.now) / 1000)));
}

export function notFound(what: string): Failure {
  return { status: 404, code: "not_found", detail: `${what} not found` };
}

/** Platform errors can carry multi-line stacks; a client gets the first line only. */
function firstLine(text: string): string {
  const line = text.split("\n", 1)[0] ?? "";
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}
