/**
 * GET /metrics through the real Worker, with pools on real Chromium: the
 * exposition parses with a Prometheus text-format parser, and its gauges,
 * counters and histograms say what the pools did. The account's capacity
 * comes from the governor; pools driven by a fault provider (each with a
 * governor of its own) show the breaker, deferred launches and the fallback
 * budget.
 */
import { env } from "cloudflare:test";
import parsePrometheusTextFormat, { type Family } from "parse-prometheus-text-format";
import { afterEach, describe, expect, it } from "vitest";
import { call, poolName } from "../support/http";
import { faultPool, granted } from "../support/pool";
import { tenantName } from "../support/tenants";
import { injectFaults, objectErrors } from "./stub-faults";

afterEach(() => {
  // No fault rule outlives its test.
  injectFaults().restore();
});

let lastText = "";

/** Scrapes and parses (the parser throws on any line that is not valid text format). */
async function scrape(): Promise<Family[]> {
  const reply = await call<string>("/metrics", { key: "dev-admin" });
  expect(reply.status).toBe(200);
  expect(reply.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  lastText = reply.body;
  return parsePrometheusTextFormat(reply.body);
}

/**
 * A histogram series' sample (`_count`, `_sum` or a `_bucket`) from the last
 * scrape's text: the parser above merges a family's labelled histograms into
 * one, so series are read from their lines.
 */
function series(name: string, labels: Record<string, string>): number | undefined {
  for (const line of lastText.split("\n")) {
    const match = /^([a-z_]+)\{(.*)\} (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const found = Object.fromEntries([...match[2]!.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.keys(found).length === Object.keys(labels).length && Object.entries(labels).every(([k, v]) => found[k] === v)) return Number(match[3]);
  }
  return undefined;
}

function value(families: Family[], name: string, labels: Record<string, string>): number | undefined {
  const family = families.find((f) => f.name === name);
  const sample = family?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  if (!sample) return undefined;
  return Number(sample.value ?? sample.count);
}

describe("GET /metrics", () => {
  it("needs the admin token", async () => {
    expect((await call("/metrics", { key: null })).status).toBe(401);
    expect((await call("/metrics", { key: "dev-key" })).status).toBe(401);
  });

  it("parses as Prometheus text, and counts what a pool did", async () => {
    const pool = poolName("metrics");
    expect((await call(`/v1/pools/${pool}`, { method: "PUT", body: { maxSessions: 1, reuse: true } })).status).toBe(200);
    const first = await call(`/v1/pools/${pool}/leases`, { method: "POST", body: { ttlSeconds: 60 } });
    expect(first.status).toBe(201);
    const refused = await call(`/v1/pools/${pool}/leases`, { method: "POST", body: { waitSeconds: 0 } });
    expect(refused.status).toBe(429);

    const id = { tenant: "dev", pool };
    let families = await scrape();
    for (const name of [
      "broker_pool_sessions",
      "broker_pool_waiting",
      "broker_pool_max_sessions",
      "broker_pool_consistent",
      "broker_acquires_total",
      "broker_releases_total",
      "broker_launch_failures_total",
      "broker_reconcile_fixes_total",
      "broker_queue_wait_seconds",
      "broker_launch_duration_seconds",
      "broker_lease_duration_seconds",
      "broker_pool_breaker_state",
      "broker_pool_breaker_streak",
      "broker_pool_breaker_opened_total",
      "broker_pool_governor_unreachable",
      "broker_launch_deferred_total",
      "broker_governor_fallback_total",
      "broker_governor_up",
      "broker_account_sessions_limit",
      "broker_account_sessions_used",
      "broker_account_launches_per_second",
      "broker_account_breaker_state",
      "broker_tenant_fair_share",
      "broker_tenant_sessions_held",
    ]) {
      expect(families.map((f) => f.name)).toContain(name);
    }
    expect(families.find((f) => f.name === "broker_queue_wait_seconds")?.type).toBe("HISTOGRAM");
    expect(value(families, "broker_pool_sessions", { ...id, state: "leased" })).toBe(1);
    expect(value(families, "broker_pool_waiting", id)).toBe(0);
    expect(value(families, "broker_pool_max_sessions", id)).toBe(1);
    expect(value(families, "broker_pool_consistent", id)).toBe(1);
    expect(value(families, "broker_pool_breaker_state", id)).toBe(0);
    expect(value(families, "broker_pool_governor_unreachable", id)).toBe(0);
    expect(value(families, "broker_acquires_total", { ...id, outcome: "granted" })).toBe(1);
    expect(value(families, "broker_acquires_total", { ...id, outcome: "pool_exhausted" })).toBe(1);
    expect(series("broker_launch_duration_seconds_count", id)).toBe(1);
    expect(series("broker_queue_wait_seconds_count", id)).toBe(1);
    expect(value(families, "broker_releases_total", { ...id, reason: "released" })).toBeUndefined();

    // The gauges agree with the pool's own API.
    const described = await call(`/v1/pools/${pool}`);
    expect(value(families, "broker_pool_sessions", { ...id, state: "leased" })).toBe(described.body.counts.leased);

    expect((await call(`/v1/pools/${pool}/leases/${first.body.id}`, { method: "DELETE" })).status).toBe(200);
    families = await scrape();
    expect(value(families, "broker_releases_total", { ...id, reason: "released" })).toBe(1);
    const released = { ...id, reason: "released" };
    expect(series("broker_lease_duration_seconds_count", released)).toBe(1);
    expect(series("broker_lease_duration_seconds_bucket", { ...released, le: "+Inf" })).toBe(1);
    // Cumulative buckets never decrease, and the lease (well under a minute) is in the 60 s bucket.
    const bounds = ["1", "5", "15", "60", "300", "900", "1800", "3600", "+Inf"];
    const counts = bounds.map((le) => series("broker_lease_duration_seconds_bucket", { ...released, le }));
    expect(counts).toEqual([...counts].sort((a, b) => a! - b!));
    expect(counts[3]).toBe(1);
  });
});

describe("GET /metrics: capacity", () => {
  it("shows a pool's circuit breaker open, its streak, and how often it opened", async () => {
    const pool = await faultPool({ maxSessions: 1, breakerThreshold: 1 });
    pool.provider.plan = [{ kind: "fail" }];
    const failed = await pool.acquire({ waitSeconds: 0 });
    expect(failed.ok).toBe(false);
    await pool.effectsDone();

    const id = { tenant: pool.tenant, pool: pool.name };
    const families = await scrape();
    expect(value(families, "broker_pool_breaker_state", id)).toBe(2);
    expect(value(families, "broker_pool_breaker_streak", id)).toBe(1);
    expect(value(families, "broker_pool_breaker_opened_total", id)).toBe(1);
    expect(value(families, "broker_launch_failures_total", { ...id, reason: "error" })).toBe(1);
    expect(value(families, "broker_pool_governor_unreachable", id)).toBe(0);
    expect(families.find((f) => f.name === "broker_pool_breaker_opened_total")?.type).toBe("COUNTER");
    // The pool's own view says the same.
    const described = await pool.stub.describe();
    expect(described.ok && described.value.breaker.state).toBe("open");
  });

  it("counts launches deferred for want of a permit, by the governor's reason", async () => {
    const pool = await faultPool({ maxSessions: 2 });
    await env.GOVERNOR.get(env.GOVERNOR.idFromName(`test-${pool.name}`)).setLimits({ maxConcurrentSessions: 1 });
    granted(await pool.acquire());
    // The account is full: the second launch is not started, and its caller waits on.
    const waiting = pool.acquire({ waitSeconds: 1 });
    await pool.effectsDone();

    const id = { tenant: pool.tenant, pool: pool.name };
    const families = await scrape();
    expect(value(families, "broker_launch_deferred_total", { ...id, reason: "account_full" })).toBe(1);
    expect(value(families, "broker_pool_sessions", { ...id, state: "launching" })).toBe(0);
    expect(value(families, "broker_pool_waiting", id)).toBe(1);
    await pool.advance(1_000);
    expect((await waiting).ok).toBe(false);
  });

  it("says when a pool cannot reach the governor, and counts the launches its local budget allowed", async () => {
    const pool = await faultPool({ maxSessions: 1 });
    const down = (method: string) => ({ kind: "governor" as const, name: `test-${pool.name}`, method, times: 100, error: objectErrors.internal });
    injectFaults(...["acquire", "settle", "release", "sync"].map(down));
    granted(await pool.acquire());
    await pool.effectsDone();

    const id = { tenant: pool.tenant, pool: pool.name };
    const families = await scrape();
    expect(value(families, "broker_pool_governor_unreachable", id)).toBe(1);
    expect(value(families, "broker_governor_fallback_total", id)).toBe(1);
    expect(value(families, "broker_pool_sessions", { ...id, state: "leased" })).toBe(1);
  });

  it("renders the account's limits, usage and breaker, and each tenant's weight, holdings and fair share", async () => {
    const governor = env.GOVERNOR.get(env.GOVERNOR.idFromName("account"));
    const tenant = tenantName("metrics");
    const permit = { tenant, pool: "p", permitId: `${tenant}/p/1`, kind: "demand" as const };
    expect((await governor.acquire(permit)).granted).toBe(true);
    try {
      const families = await scrape();
      const described = await governor.describe();
      expect(value(families, "broker_governor_up", {})).toBe(1);
      expect(value(families, "broker_account_sessions_limit", {})).toBe(Number(env.ACCOUNT_MAX_CONCURRENT_SESSIONS));
      expect(value(families, "broker_account_launches_per_second", {})).toBe(Number(env.ACCOUNT_LAUNCHES_PER_SECOND));
      expect(value(families, "broker_account_sessions_used", {})).toBeGreaterThanOrEqual(1);
      expect(value(families, "broker_account_breaker_state", {})).toBe({ closed: 0, half_open: 1, open: 2 }[described.breaker.state]);
      expect(value(families, "broker_account_platform_blocked", {})).toBe(0);
      expect(value(families, "broker_tenant_sessions_held", { tenant })).toBe(1);
      expect(value(families, "broker_tenant_fair_share", { tenant })).toBe(1);
      expect(value(families, "broker_tenant_weight", { tenant })).toBe(1);
      expect(value(families, "broker_tenant_launches_pending", { tenant })).toBe(0);
    } finally {
      await governor.release(tenant, "p", [permit.permitId]);
    }
  });

  it("still renders every pool when the governor does not answer (an error, or no answer within the deadline), with broker_governor_up 0", async () => {
    const pool = poolName("metrics");
    expect((await call(`/v1/pools/${pool}`, { method: "PUT", body: { maxSessions: 1 } })).status).toBe(200);
    const id = { tenant: "dev", pool };
    const failures = [
      { kind: "governor" as const, name: "account", method: "describe", times: 2, error: objectErrors.retryable },
      { kind: "governor" as const, name: "account", method: "describe", times: 1, answer: () => new Promise(() => {}) },
    ];
    for (const rule of failures) {
      injectFaults(rule);
      const families = await scrape();
      expect(value(families, "broker_governor_up", {})).toBe(0);
      expect(value(families, "broker_pool_max_sessions", id)).toBe(1);
      // The account's families are declared, without samples.
      for (const name of ["broker_account_sessions_limit", "broker_account_sessions_used", "broker_tenant_fair_share"]) {
        expect(families.find((f) => f.name === name)?.metrics ?? []).toEqual([]);
      }
    }
    injectFaults().restore();
    expect(value(await scrape(), "broker_governor_up", {})).toBe(1);
  });
});
