/**
 * What the pool object shows of itself: the shapes its RPC methods answer with
 * (the Worker turns them into the HTTP API's JSON) and the functions that build
 * them from rows. No decisions and no storage writes live here.
 */
import type { PoolConfig } from "./config";
import { isDraining, liveOf } from "./machine";
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
}

export interface PoolView {
  pool: string;
  config: PoolConfig;
  counts: Counts;
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

export interface PoolMetrics {
  tenant: string;
  pool: string;
  counts: Counts;
  maxSessions: number;
  maxWaiters: number;
  consistent: boolean;
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
}

export interface AcquireInput {
  /** Chosen by the Worker, one per HTTP request, so it can cancel the wait if its client disconnects and retry the call safely. */
  leaseId: string;
  tenant: string;
  pool: string;
  owner: string;
  ttlSeconds?: number;
  waitSeconds?: number;
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
