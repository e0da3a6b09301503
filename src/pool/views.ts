/**
 * What the pool object shows of itself: the shapes its RPC methods answer with
 * (the Worker turns them into the HTTP API's JSON) and the functions that build
 * them from rows. No decisions and no storage writes live here.
 */
import type { AccountView } from "./account";
import { type BreakerState, breakerOf, expectedWaitMs, launchGate, meanLaunchMs, warmTarget } from "./capacity";
import type { PoolConfig } from "./config";
import { isDraining, liveOf, type Priority } from "./machine";
import { type ReconcileReport } from "./reconcile";
import type { PoolShell } from "./shell";
import type { CounterSnapshot, HistogramSnapshot } from "./metrics";
import type { JournalRow, LeaseRow, LeaseStatus } from "./schema";
import type { Counts } from "./store";


export interface LeaseView {
  id: string;
  pool: string;
  status: LeaseStatus;
  sessionId: string | null;
  createdAt: string;
  /** When the lease got its session (absent while waiting). */
  grantedAt?: string;
  expiresAt: string | null;
  endedAt?: string;
  endReason?: string;
  labels: Record<string, string>;
  /** The profile the browser's state is saved to when the lease ends. */
  persistProfile?: string;
}

export interface PoolView {
  pool: string;
  config: PoolConfig;
  counts: Counts;
  breaker: BreakerView;
  account: AccountView;
  capacity: { max: number; inUse: number; available: number };
  /** True while an operator has drained the pool: it grants nothing until resumed. */
  draining: boolean;
  /** The last full invariant check (the alarm's, or one asked for): its verdict and when it ran. */
  consistent: boolean;
  violations: string[];
  checkedAt: string | null;
  createdAt: string;
  lastReconciledAt: string | null;
  lastReconcile: ReconcileReport | null;
  /** Since the pool was created: tracked sessions found gone (capacity freed) and ended browsers closed again. */
  reconciledTotal: { vanished: number; reclosed: number };
}

export interface LeaseEvent {
  at: string;
  /** requested, launch_reserved, granted, renewed, released, expired, wait_failed, lease_failed, connected, disconnected, … */
  event: string;
  sessionRow?: number;
  detail?: Record<string, unknown>;
}

/** The pool's circuit breaker (capacity.ts). */
export interface BreakerView {
  state: BreakerState;
  /** While open: seconds until it lets a probe launch through. */
  retryAfterSeconds: number | null;
  /** Launches that failed in a row. */
  streak: number;
}

/** GET /v1/pools/{pool}/pressure: cheap (tallies and meta only), for clients deciding whether to ask now. */
export interface PoolPressure {
  pool: string;
  /** Browsers the pool holds (launching, idle, leased, being reset or closed). */
  running: number;
  leased: number;
  idle: number;
  queued: number;
  max: number;
  /** Sessions a caller could get without queueing: idle ones, and free capacity to launch into (0 while launches are held back). */
  available: number;
  /** What a new caller (normal priority) can expect to wait; null while the pool has seen too few leases to say. */
  expectedWaitSeconds: number | null;
  /** Idle sessions the pool keeps ready (minIdle, or from demand with warmFromDemand). */
  warmTarget: number;
  breaker: BreakerView;
  /** While launches are paused (the platform refused, or the account had no permit), until when. */
  launchesPausedUntil: string | null;
  draining: boolean;
  account: AccountView;
}

export interface PoolMetrics {
  tenant: string;
  pool: string;
  counts: Counts;
  maxSessions: number;
  maxWaiters: number;
  consistent: boolean;
  breaker: BreakerView;
  /** Whether the pool could reach the account's governor at its last call. */
  governorUnreachable: boolean;
  counters: CounterSnapshot[];
  histograms: HistogramSnapshot[];
  /** Reconciliation's fixes since the pool was created. */
  reconciled: { vanished: number; reclosed: number };
}

export interface PoolDashboard extends PoolMetrics {
  draining: boolean;
  /** The oldest waiters, first in line first. */
  queue: { lease: string; since: string; deadline: string | null }[];
  /** The newest journal rows, newest first. */
  events: { at: string; event: string; lease?: string; detail?: Record<string, unknown> }[];
  /** The oldest DASHBOARD_LEASES active leases, oldest first (the dashboard watches them live). */
  leases: { id: string; grantedAt: string | null; expiresAt: string | null; connected: boolean }[];
  /** More leases are active than `leases` lists. */
  moreLeases: boolean;
}

/** Active leases the dashboard view lists per pool: enough to pick from, few enough to poll every 2 s. */
export const DASHBOARD_LEASES = 12;

export interface AcquireInput {
  /** Chosen by the Worker, one per HTTP request, so it can cancel the wait if its client disconnects and retry the call safely. */
  leaseId: string;
  tenant: string;
  pool: string;
  owner: string;
  ttlSeconds?: number;
  waitSeconds?: number;
  /** Queue order among waiters (machine.ts: FIFO within a priority, with ageing). */
  priority?: Priority;
  /** Record the lease's screen (default: the pool's `record`). */
  record?: boolean;
  /** The tenant's profile the browser's state is saved to when the lease ends (its reset saves it first). */
  persistProfile?: string;
  /** SHA-256 (hex) of the read-only viewer token the Worker minted for the lease's `viewerUrl` (viewers.ts). */
  viewerTokenHash?: string;
  labels?: Record<string, string>;
  idempotencyKey?: string;
  /** Hash of the request body, to refuse a reused Idempotency-Key with a different request. */
  fingerprint?: string;
  /**
   * SHA-256 (hex) of the connect token the Worker minted for this request. On
   * an Idempotency-Key replay it replaces the lease's token: the token of the
   * lost response cannot be shown again, since only its hash is kept.
   */
  tokenHash?: string;
}

export interface ConnectGrant {
  /** Null when only checking (no socket registered). */
  connectionId: string | null;
  sessionId: string;
}

export interface AcquireView {
  lease: LeaseView;
  /** True when an Idempotency-Key replay returned an existing lease. */
  replayed: boolean;
}

export function leaseView(row: LeaseRow, pool: string): LeaseView {
  return {
    id: row.id,
    pool,
    status: row.status,
    sessionId: row.session_id,
    createdAt: iso(row.created_at),
    ...(row.granted_at === null ? {} : { grantedAt: iso(row.granted_at) }),
    expiresAt: row.expires_at === null ? null : iso(row.expires_at),
    ...(row.ended_at === null ? {} : { endedAt: iso(row.ended_at) }),
    ...(row.end_reason === null ? {} : { endReason: row.end_reason }),
    labels: JSON.parse(row.labels) as Record<string, string>,
    ...(row.persist_profile === null ? {} : { persistProfile: row.persist_profile }),
  };
}

/** A journal row as the API shows it: when, what, and its detail. */
export function eventView(row: JournalRow): { at: string; event: string; detail?: Record<string, unknown> } {
  return {
    at: iso(row.at),
    event: row.event,
    ...(row.detail === null ? {} : { detail: JSON.parse(row.detail) as Record<string, unknown> }),
  };
}

export function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/**
 * The pool as GET /v1/pools/{pool} shows it. O(1) in the pool's size: counts
 * come from the tallies, and `consistent`/`violations` from the last full
 * invariant check (the alarm's, or an operator's), which reads the whole wait
 * queue and so never runs on the read path; a capacity overrun, the one
 * violation the tallies show, is added at once.
 */
export function poolView(shell: PoolShell): PoolView {
  const config = shell.config();
  const counts = shell.db.counts();
  const inUse = liveOf(counts);
  const check = shell.telemetry.lastCheck();
  const violations = [...(check?.violations ?? [])];
  if (inUse > config.maxSessions) violations.push(`${inUse} sessions hold capacity, above maxSessions ${config.maxSessions}`);
  const last = shell.db.getMeta("last_reconcile");
  const lastReport = last ? (JSON.parse(last) as ReconcileReport & { at: number }) : null;
  return {
    pool: shell.poolName,
    config,
    counts,
    breaker: breakerView(shell),
    account: shell.account.view(),
    capacity: { max: config.maxSessions, inUse, available: Math.max(0, config.maxSessions - inUse) + counts.idle },
    draining: isDraining(shell.db),
    consistent: violations.length === 0,
    violations,
    checkedAt: check ? iso(check.at) : null,
    createdAt: iso(Number(shell.db.getMeta("created_at"))),
    lastReconciledAt: lastReport ? iso(lastReport.at) : null,
    lastReconcile: lastReport
      ? {
          vanished: lastReport.vanished,
          suspect: lastReport.suspect ?? 0,
          reclosed: lastReport.reclosed,
          unknown: lastReport.unknown,
          untrusted: lastReport.untrusted ?? false,
        }
      : null,
    reconciledTotal: shell.reconciledTotal(),
  };
}

export function breakerView(shell: PoolShell): BreakerView {
  const step = shell.peek();
  const breaker = breakerOf(step);
  return {
    state: breaker.state,
    retryAfterSeconds: breaker.state === "open" ? Math.max(1, Math.ceil((breaker.until - step.now) / 1000)) : null,
    streak: breaker.streak,
  };
}

export function pressureView(shell: PoolShell): PoolPressure {
  const step = shell.peek();
  const { config, now } = step;
  const counts = shell.db.counts();
  const running = liveOf(counts);
  const gate = launchGate(step);
  const paused = gate.blockedUntil > now;
  const free = paused ? 0 : Math.max(0, config.maxSessions - running);
  const available = counts.idle + free;
  let expected: number | null;
  if (counts.waiting === 0 && counts.idle > 0) expected = 0;
  else if (counts.waiting < free) expected = meanLaunchMs(step);
  else expected = expectedWaitMs(step, counts.waiting + 1, Math.max(1, Math.min(config.maxSessions, running)));
  return {
    pool: shell.poolName,
    running,
    leased: counts.leased,
    idle: counts.idle,
    queued: counts.waiting,
    max: config.maxSessions,
    available,
    expectedWaitSeconds: expected === null ? null : Math.round(expected / 100) / 10,
    warmTarget: warmTarget(step),
    breaker: breakerView(shell),
    launchesPausedUntil: paused && gate.why === "paused" ? iso(gate.blockedUntil) : null,
    draining: isDraining(shell.db),
    account: shell.account.view(),
  };
}

/** Everything GET /metrics shows of the pool (the pool object answers undefined for one never created). */
export function poolMetrics(shell: PoolShell): PoolMetrics {
  const config = shell.config();
  return {
    tenant: shell.tenant,
    pool: shell.poolName,
    counts: shell.db.counts(),
    maxSessions: config.maxSessions,
    maxWaiters: config.maxWaiters,
    consistent: shell.telemetry.lastCheck()?.consistent ?? true,
    breaker: breakerView(shell),
    governorUnreachable: shell.account.unreachable(),
    counters: shell.db.counters(),
    histograms: shell.db.histograms(),
    reconciled: shell.reconciledTotal(),
  };
}

/** What the operators' dashboard shows of the pool: its metrics, the head of its queue, its latest events, its active leases. */
export function poolDashboard(shell: PoolShell): PoolDashboard {
  // One more than shown, to tell whether there are more (the status index serves it).
  const active = shell.db.leasesIn("active", DASHBOARD_LEASES + 1);
  return {
    ...poolMetrics(shell),
    draining: isDraining(shell.db),
    queue: shell.db.waiters(10).map((w) => ({ lease: w.id, since: iso(w.created_at), deadline: w.wait_deadline === null ? null : iso(w.wait_deadline) })),
    events: shell.db.recentJournal(15).map((row) => ({ ...eventView(row), ...(row.lease_id ? { lease: row.lease_id } : {}) })),
    leases: active.slice(0, DASHBOARD_LEASES).map((row) => ({
      id: row.id,
      grantedAt: row.granted_at === null ? null : iso(row.granted_at),
      expiresAt: row.expires_at === null ? null : iso(row.expires_at),
      connected: row.connected_at !== null,
    })),
    moreLeases: active.length > DASHBOARD_LEASES,
  };
}
