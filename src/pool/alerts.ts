/**
 * Alerts: a webhook POST (JSON) when a pool needs a human. Raised by the pool
 * object (src/pool/object.ts), deduplicated and rate-limited per pool and kind
 * (at most one per ALERT_MIN_INTERVAL_SECONDS), and always logged as an
 * `alert` event even when no webhook is configured.
 *
 * Kinds:
 *   pool_exhausted        no free session for ALERT_EXHAUSTED_SECONDS (callers queued or turned away)
 *   invariant_violation   checkInvariants() reports a violation (a bug)
 *   launch_failure_streak ALERT_LAUNCH_FAILURE_STREAK launches in a row failed or timed out
 *   capacity_reclaimed    reconciliation had to free sessions whose browsers were gone
 */

export type AlertKind = "pool_exhausted" | "invariant_violation" | "launch_failure_streak" | "capacity_reclaimed";

export interface AlertConfig {
  /** Where alerts are POSTed; without it they are only logged. */
  url: string | undefined;
  exhaustedMs: number;
  launchFailureStreak: number;
  minIntervalMs: number;
}

export interface Alert {
  kind: AlertKind;
  tenant: string;
  pool: string;
  at: string;
  summary: string;
  detail: Record<string, unknown>;
}

export function alertConfig(env: Record<string, unknown>): AlertConfig {
  const num = (name: string, fallback: number, min: number) => {
    const value = Number(env[name]);
    return Number.isFinite(value) && value >= min ? value : fallback;
  };
  const url = typeof env.ALERT_WEBHOOK_URL === "string" && /^https?:\/\//.test(env.ALERT_WEBHOOK_URL) ? env.ALERT_WEBHOOK_URL : undefined;
  return {
    url,
    exhaustedMs: num("ALERT_EXHAUSTED_SECONDS", 60, 1) * 1000,
    launchFailureStreak: num("ALERT_LAUNCH_FAILURE_STREAK", 5, 1),
    minIntervalMs: num("ALERT_MIN_INTERVAL_SECONDS", 600, 0) * 1000,
  };
}

/** POSTs the alert, with one retry; throws if both attempts fail (the caller logs it). */
export async function deliver(url: string, alert: Alert): Promise<void> {
  let last: unknown;
  for (let attempt = 1; attempt <= 2; attempt += 1) {
    try {
      const response = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json", "user-agent": "browser-session-broker" },
        body: JSON.stringify(alert),
        signal: AbortSignal.timeout(5_000),
      });
      await response.body?.cancel();
      if (response.ok) return;
      last = new Error(`webhook answered ${response.status}`);
    } catch (error) {
      last = error;
    }
    if (attempt === 1) await scheduler.wait(1_000);
  }
  throw last instanceof Error ? last : new Error(String(last));
}
