/**
 * GET /metrics: the Prometheus text exposition (version 0.0.4) of every pool
 * the account registry lists, asked of the pool objects in parallel. Names are
 * prefixed `broker_`; every sample carries `tenant` and `pool` labels.
 */
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
  broker_metrics_pools: "Pools covered by this scrape.",
  broker_metrics_truncated: `1 if the account has more pools than one scrape covers (${METRICS_MAX_POOLS}).`,
} as const;

export function renderMetrics(pools: PoolMetrics[], truncated: boolean): string {
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

    counter("broker_acquires_total", { ...id, outcome: "granted" }, grantedTotal(m.histograms));
    for (const c of m.counters.filter((c) => c.name === "acquire_failures")) counter("broker_acquires_total", { ...id, outcome: c.labels.outcome ?? "unknown" }, c.value);
    for (const h of m.histograms.filter((h) => h.name === "lease_duration_seconds")) counter("broker_releases_total", { ...id, reason: h.labels.reason ?? "unknown" }, h.count);
    for (const c of m.counters.filter((c) => c.name === "launch_failures")) counter("broker_launch_failures_total", { ...id, reason: c.labels.reason ?? "unknown" }, c.value);
    counter("broker_reconcile_fixes_total", { ...id, kind: "vanished" }, m.reconciled.vanished);
    counter("broker_reconcile_fixes_total", { ...id, kind: "reclosed" }, m.reconciled.reclosed);

    for (const h of m.histograms) {
      const name = `broker_${h.name}` as keyof typeof HELP;
      const labels = { ...id, ...h.labels };
      for (const bucket of h.buckets) x.sample(name, "histogram", HELP[name], { ...labels, le: bucket.le }, bucket.count, `${name}_bucket`);
      x.sample(name, "histogram", HELP[name], labels, h.sum, `${name}_sum`);
      x.sample(name, "histogram", HELP[name], labels, h.count, `${name}_count`);
    }
  }
  gauge("broker_metrics_pools", {}, pools.length);
  gauge("broker_metrics_truncated", {}, truncated ? 1 : 0);
  return x.text();
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
