/**
 * GET /metrics: the Prometheus text exposition (version 0.0.4) of every pool
 * the account registry lists, asked of the pool objects in parallel, and of
 * the account's capacity as its governor describes it. Names are prefixed
 * `broker_`; every pool sample carries `tenant` and `pool` labels, the
 * account's samples none, and its tenants' samples `tenant`.
 *
 * The governor is one object for the whole account: when it does not answer,
 * the pools are rendered all the same, the account's families have no
 * samples, and `broker_governor_up` is 0.
 */
import type { BreakerState, CapacityView } from "../governor/object";
import { grantedTotal } from "../pool/metrics";
import type { PoolMetrics } from "../pool/object";
import type { PoolEntry } from "../registry/object";

/** Pools one scrape covers at most (pages of 100 from the registry); beyond it `broker_metrics_truncated` is 1. */
export const METRICS_MAX_POOLS = 1000;

type Labels = Record<string, string | number>;

function escape(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function labelText(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escape(String(v))}"`);
  return parts.length ? `{${parts.join(",")}}` : "";
}

function number(value: number): string {
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return Number.isFinite(value) ? String(value) : "NaN";
}

class Exposition {
  private readonly families = new Map<string, { help: string; type: string; lines: string[] }>();

  sample(name: string, type: "gauge" | "counter" | "histogram", help: string, labels: Labels, value: number, sampleName = name): void {
    const family = this.families.get(name) ?? { help, type, lines: [] };
    family.lines.push(`${sampleName}${labelText(labels)} ${number(value)}`);
    this.families.set(name, family);
  }

  /** Declares a family even when no pool has a sample for it (so dashboards and alerts can rely on the name). */
  declare(name: string, type: "gauge" | "counter" | "histogram", help: string): void {
    if (!this.families.has(name)) this.families.set(name, { help, type, lines: [] });
  }

  text(): string {
    const out: string[] = [];
    for (const [name, family] of this.families) {
      out.push(`# HELP ${name} ${family.help}`, `# TYPE ${name} ${family.type}`, ...family.lines);
    }
    return `${out.join("\n")}\n`;
  }
}

const HELP = {
  broker_pool_sessions: "Sessions of the pool by state (launching, idle, leased, resetting, closing).",
  broker_pool_waiting: "Callers queued for a session.",
  broker_pool_max_sessions: "The pool's maxSessions.",
  broker_pool_max_waiters: "The pool's maxWaiters.",
  broker_pool_consistent: "1 if the pool's invariants hold, 0 if checkInvariants() reports a violation.",
  broker_acquires_total: "Acquires by outcome: granted, or why not (pool_exhausted, browser_unavailable, pool_draining, wait_timeout, launch_failed, launch_timeout, cancelled, drained, forced, object_restarted).",
  broker_releases_total: "Leases ended, by reason (released, expired, failed, forced, not_connected, abandoned).",
  broker_launch_failures_total: "Browser launches that failed, by reason (error, platform_limit, timeout, restart).",
  broker_reconcile_fixes_total: "Reconciliation's repairs: tracked sessions found gone (vanished) and ended browsers closed again (reclosed).",
  broker_queue_wait_seconds: "Time from acquire to grant.",
  broker_launch_duration_seconds: "Time a successful browser launch took.",
  broker_lease_duration_seconds: "Time from grant to the lease's end, by reason.",
  broker_pool_breaker_state: "The pool's launch circuit breaker: 0 closed, 1 half_open (one probe launch), 2 open (acquires that need a launch answer 503).",
  broker_pool_breaker_streak: "Launches of the pool that failed or timed out in a row.",
  broker_pool_breaker_opened_total: "Times the pool's circuit breaker opened.",
  broker_pool_governor_unreachable: "1 if the pool's last call to the account's capacity governor failed (it launches within GOVERNOR_FALLBACK_SESSIONS meanwhile), else 0.",
  broker_launch_deferred_total: "Launches the pool reserved but did not start, by the governor's reason (account_full, launch_rate, platform_limited, breaker_open, over_share, governor_unreachable).",
  broker_governor_fallback_total: "Launches the pool started within its local budget because the governor could not be reached.",
  broker_governor_up: "1 if the account's capacity governor answered this scrape, else 0 (and the broker_account_ and broker_tenant_ families have no samples).",
  broker_account_sessions_limit: "Concurrent browsers the governor grants permits within (the operator's or the Worker var's limit, capped by a platform 429's report).",
  broker_account_sessions_used: "Browsers the account runs, each holding a permit (launching, idle, leased, being reset or closed).",
  broker_account_launches_per_second: "New browsers per second the governor grants across the account.",
  broker_account_breaker_state: "The account's launch breaker: 0 closed, 1 half_open, 2 open (no permit is granted).",
  broker_account_breaker_streak: "Launches across the account that failed in a row.",
  broker_account_platform_blocked: "1 while the governor grants nothing because the platform answered 429, else 0.",
  broker_tenant_weight: "The tenant's weight in the account's fair shares.",
  broker_tenant_sessions_held: "Permits the tenant's pools hold.",
  broker_tenant_launches_pending: "Launches of the tenant the governor refused and that are still wanted (the last 15 s).",
  broker_tenant_fair_share: "The tenant's weighted max-min fair share of the account's limit (fractional).",
  broker_metrics_pools: "Pools covered by this scrape.",
  broker_metrics_truncated: `1 if the account has more pools than one scrape covers (${METRICS_MAX_POOLS}).`,
} as const;

/** A breaker's state as a gauge value (the same for the pool's and the account's). */
export const BREAKER_STATE_VALUE: Record<BreakerState, number> = { closed: 0, half_open: 1, open: 2 };

/** `account`: the governor's view, or null if it did not answer. */
export function renderMetrics(pools: PoolMetrics[], truncated: boolean, account: CapacityView | null): string {
  const x = new Exposition();
  const gauge = (name: keyof typeof HELP, labels: Labels, value: number) => x.sample(name, "gauge", HELP[name], labels, value);
  const counter = (name: keyof typeof HELP, labels: Labels, value: number) => x.sample(name, "counter", HELP[name], labels, value);
  // Every family is declared, with or without samples, so dashboards and alert rules can rely on the names.
  for (const name of Object.keys(HELP) as (keyof typeof HELP)[]) {
    const type = name.endsWith("_total") ? "counter" : name.endsWith("_seconds") ? "histogram" : "gauge";
    x.declare(name, type, HELP[name]);
  }
  for (const m of pools) {
    const id = { tenant: m.tenant, pool: m.pool };
    for (const state of ["launching", "idle", "leased", "resetting", "closing"] as const) gauge("broker_pool_sessions", { ...id, state }, m.counts[state]);
    gauge("broker_pool_waiting", id, m.counts.waiting);
    gauge("broker_pool_max_sessions", id, m.maxSessions);
    gauge("broker_pool_max_waiters", id, m.maxWaiters);
    gauge("broker_pool_consistent", id, m.consistent ? 1 : 0);
    gauge("broker_pool_breaker_state", id, BREAKER_STATE_VALUE[m.breaker.state]);
    gauge("broker_pool_breaker_streak", id, m.breaker.streak);
    gauge("broker_pool_governor_unreachable", id, m.governorUnreachable ? 1 : 0);

    counter("broker_acquires_total", { ...id, outcome: "granted" }, grantedTotal(m.histograms));
    for (const c of m.counters.filter((c) => c.name === "acquire_failures")) counter("broker_acquires_total", { ...id, outcome: c.labels.outcome ?? "unknown" }, c.value);
    for (const h of m.histograms.filter((h) => h.name === "lease_duration_seconds")) counter("broker_releases_total", { ...id, reason: h.labels.reason ?? "unknown" }, h.count);
    for (const c of m.counters.filter((c) => c.name === "launch_failures")) counter("broker_launch_failures_total", { ...id, reason: c.labels.reason ?? "unknown" }, c.value);
    counter("broker_reconcile_fixes_total", { ...id, kind: "vanished" }, m.reconciled.vanished);
    counter("broker_reconcile_fixes_total", { ...id, kind: "reclosed" }, m.reconciled.reclosed);
    for (const c of m.counters.filter((c) => c.name === "launch_deferred")) counter("broker_launch_deferred_total", { ...id, reason: c.labels.reason ?? "unknown" }, c.value);
    counter("broker_pool_breaker_opened_total", id, total(m, "breaker_opened"));
    counter("broker_governor_fallback_total", id, total(m, "governor_fallback"));

    for (const h of m.histograms) {
      const name = `broker_${h.name}` as keyof typeof HELP;
      const labels = { ...id, ...h.labels };
      for (const bucket of h.buckets) x.sample(name, "histogram", HELP[name], { ...labels, le: bucket.le }, bucket.count, `${name}_bucket`);
      x.sample(name, "histogram", HELP[name], labels, h.sum, `${name}_sum`);
      x.sample(name, "histogram", HELP[name], labels, h.count, `${name}_count`);
    }
  }
  gauge("broker_governor_up", {}, account ? 1 : 0);
  if (account) {
    gauge("broker_account_sessions_limit", {}, account.limits.maxConcurrentSessions);
    gauge("broker_account_sessions_used", {}, account.usage.used);
    gauge("broker_account_launches_per_second", {}, account.limits.launchesPerSecond);
    gauge("broker_account_breaker_state", {}, BREAKER_STATE_VALUE[account.breaker.state]);
    gauge("broker_account_breaker_streak", {}, account.breaker.streak);
    gauge("broker_account_platform_blocked", {}, account.usage.blockedUntil === null ? 0 : 1);
    for (const t of account.tenants) {
      const tenant = { tenant: t.tenant };
      gauge("broker_tenant_weight", tenant, t.weight);
      gauge("broker_tenant_sessions_held", tenant, t.held);
      gauge("broker_tenant_launches_pending", tenant, t.pending);
      gauge("broker_tenant_fair_share", tenant, t.share);
    }
  }
  gauge("broker_metrics_pools", {}, pools.length);
  gauge("broker_metrics_truncated", {}, truncated ? 1 : 0);
  return x.text();
}

/** A counter without labels: 0 until the pool first counts it. */
function total(m: PoolMetrics, name: "breaker_opened" | "governor_fallback"): number {
  return m.counters.filter((c) => c.name === name).reduce((sum, c) => sum + c.value, 0);
}

/** Every registered pool (up to METRICS_MAX_POOLS), paging through the registry. */
export async function allPools(registry: { listPools(o: { cursor?: string; limit: number }): Promise<{ pools: PoolEntry[]; nextCursor: string | null }> }) {
  const pools: PoolEntry[] = [];
  let cursor: string | undefined;
  for (;;) {
    const page = await registry.listPools({ limit: 100, ...(cursor === undefined ? {} : { cursor }) });
    pools.push(...page.pools);
    if (!page.nextCursor) return { pools, truncated: false };
    if (pools.length >= METRICS_MAX_POOLS) return { pools: pools.slice(0, METRICS_MAX_POOLS), truncated: true };
    cursor = page.nextCursor;
  }
}
