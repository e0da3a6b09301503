/**
 * What a pool tells the outside world about itself: one JSON log line per
 * committed journal row (Workers Logs filters on its fields), one Analytics
 * Engine data point each, and alerts (a webhook POST, rate-limited per kind)
 * when the pool needs a human. Nothing here decides anything about sessions or
 * leases; a failure to publish never breaks a transition that has committed.
 */
import { log } from "../log";
import { message } from "../deadline";
import { type AlertKind, alertConfig, deliver } from "./alerts";
import { checkInvariants, type InvariantReport } from "./invariants";
import type { PoolConfig } from "./config";
import { liveOf } from "./machine";
import type { JournalEntry } from "./records";
import type { PoolStore } from "./store";
import { iso } from "./views";

/** Events logged even when EVENT_LOGS is "problems". */
const PROBLEM_EVENTS = new Set([
  "expired",
  "forced",
  "not_connected",
  "abandoned",
  "lease_failed",
  "wait_failed",
  "launch_failed",
  "launch_timeout",
  "launch_abandoned",
  "late_launch_closed",
  "close_failed",
  "close_gave_up",
  "suspect",
  "reconcile_untrusted",
  "reconciled_vanished",
  "reconciled_reclose",
  "drained",
]);

export interface TelemetryHost {
  /** Read at each use: operators' settings (alert thresholds, EVENT_LOGS) are the object's current env. */
  env(): Env;
  db: PoolStore;
  clock: () => number;
  tenant: () => string;
  pool: () => string;
  config: () => PoolConfig;
  /** Runs `fn` in one transaction and publishes what it journaled. */
  atomically<T>(fn: () => T): T;
  /** Keeps a promise alive with the object (a webhook delivery). */
  track(promise: Promise<unknown>): void;
}

export class Telemetry {
  constructor(private readonly host: TelemetryHost) {}

  /**
   * Publishes committed journal rows: one JSON log line each unless EVENT_LOGS
   * is "problems", and one Analytics Engine data point each (blobs: tenant,
   * pool, event, lease, reason; doubles: duration in ms, session row; index:
   * tenant/pool).
   */
  publish(entries: JournalEntry[]): void {
    if (entries.length === 0) return;
    const env = this.host.env();
    const tenant = this.host.tenant();
    const pool = this.host.pool();
    const everything = (env.EVENT_LOGS as string | undefined) !== "problems";
    for (const entry of entries) {
      const durationMs = eventDuration(entry.detail);
      const reason = typeof entry.detail?.reason === "string" ? entry.detail.reason : "";
      if (everything || PROBLEM_EVENTS.has(entry.event)) {
        console.log(
          JSON.stringify({
            event: entry.event,
            tenant,
            pool,
            ...(entry.leaseId ? { lease: entry.leaseId } : {}),
            ...(entry.sessionRow === null ? {} : { session: entry.sessionRow }),
            ...(durationMs === undefined ? {} : { durationMs }),
            ...entry.detail,
          }),
        );
      }
      try {
        env.EVENTS?.writeDataPoint({
          indexes: [`${tenant}/${pool}`.slice(0, 96)],
          blobs: [tenant, pool, entry.event, entry.leaseId ?? "", reason],
          doubles: [durationMs ?? 0, entry.sessionRow ?? 0],
        });
      } catch (error) {
        log("analytics_failed", { error: message(error) });
      }
    }
  }

  /** A launch-failure streak at the threshold raises one alert (cached meta reads only on the hot path). */
  watchLaunchFailures(): void {
    const { db } = this.host;
    const streak = Number(db.getMeta("launch_failure_streak") ?? 0);
    if (streak === 0) return;
    if (streak < this.alertConfig().launchFailureStreak) return;
    if (db.getMeta("launch_failure_streak_alerted") === "1") return;
    db.setMeta("launch_failure_streak_alerted", "1");
    this.alert("launch_failure_streak", `${streak} browser launches in a row failed`, { streak });
  }

  /**
   * Alarm-time checks: an exhaustion that lasted, and the full invariant check,
   * whose report is kept for the pool's read path (which never runs it: it
   * scans the wait queue).
   */
  watchHealth(now: number): InvariantReport {
    const { db } = this.host;
    const config = this.alertConfig();
    const since = Number(db.getMeta("exhausted_since") || 0);
    if (since && now - since >= config.exhaustedMs && db.getMeta("exhausted_alerted") !== String(since)) {
      const counts = db.counts();
      const max = this.host.config().maxSessions;
      if (counts.idle === 0 && (counts.waiting > 0 || liveOf(counts) >= max)) {
        db.setMeta("exhausted_alerted", String(since));
        this.alert("pool_exhausted", `no free session for ${Math.round((now - since) / 1000)} s`, {
          exhaustedSince: iso(since),
          counts,
          maxSessions: max,
        });
      }
    }
    return this.checkNow(now);
  }

  /** Runs the full invariant check now and keeps its report (meta last_check); alerts on a violation. */
  checkNow(now: number): InvariantReport {
    const report = checkInvariants(this.host.db.sql, this.host.config(), now);
    this.host.atomically(() => this.host.db.setMeta("last_check", JSON.stringify({ at: now, ...report })));
    if (!report.consistent) this.alert("invariant_violation", "the pool's invariants are violated", { violations: report.violations });
    return report;
  }

  /** The last full invariant check, if any ran since the pool was created. */
  lastCheck(): (InvariantReport & { at: number }) | undefined {
    const stored = this.host.db.getMeta("last_check");
    return stored ? (JSON.parse(stored) as InvariantReport & { at: number }) : undefined;
  }

  /** When the alarm must run to alert on an exhaustion that is still going on. */
  exhaustionDeadline(): number | null {
    const { db } = this.host;
    const since = Number(db.getMeta("exhausted_since") || 0);
    if (!since || db.getMeta("exhausted_alerted") === String(since)) return null;
    return since + this.alertConfig().exhaustedMs;
  }

  /**
   * Raises an alert: logged and journaled always; POSTed to ALERT_WEBHOOK_URL
   * if set; at most one per kind per ALERT_MIN_INTERVAL_SECONDS for this pool.
   */
  alert(kind: AlertKind, summary: string, detail: Record<string, unknown>): void {
    const { db } = this.host;
    const config = this.alertConfig();
    const now = this.host.clock();
    const name = `${this.host.tenant()}/${this.host.pool()}`;
    const last = Number(db.getMeta(`alert_sent:${kind}`) ?? 0);
    if (last && now - last < config.minIntervalMs) {
      log("alert_suppressed", { pool: name, kind, lastSentAt: iso(last) });
      return;
    }
    this.host.atomically(() => {
      db.setMeta(`alert_sent:${kind}`, String(now));
      db.journal(now, "alert", null, null, { kind, summary, webhook: Boolean(config.url) });
    });
    const payload = { kind, tenant: this.host.tenant(), pool: this.host.pool(), at: iso(now), summary, detail };
    if (config.url) {
      const url = config.url;
      this.host.track(deliver(url, payload).catch((error) => log("alert_failed", { pool: name, kind, error: message(error) })));
    }
  }

  private alertConfig() {
    return alertConfig(this.host.env() as unknown as Record<string, unknown>);
  }
}

/** The duration an event reports, whichever detail field carries it. */
function eventDuration(detail: Record<string, unknown> | undefined): number | undefined {
  for (const key of ["heldMs", "waitedMs", "launchMs", "connectedMs"]) {
    const value = detail?.[key];
    if (typeof value === "number") return value;
  }
  return undefined;
}
