/**
 * GET /metrics through the real Worker, with pools on real Chromium: the
 * exposition parses with a Prometheus text-format parser, and its gauges,
 * counters and histograms say what the pools did.
 */
import parsePrometheusTextFormat, { type Family } from "parse-prometheus-text-format";
import { describe, expect, it } from "vitest";
import { call, poolName } from "../support/http";

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
    ]) {
      expect(families.map((f) => f.name)).toContain(name);
    }
    expect(families.find((f) => f.name === "broker_queue_wait_seconds")?.type).toBe("HISTOGRAM");
    expect(value(families, "broker_pool_sessions", { ...id, state: "leased" })).toBe(1);
    expect(value(families, "broker_pool_waiting", id)).toBe(0);
    expect(value(families, "broker_pool_max_sessions", id)).toBe(1);
    expect(value(families, "broker_pool_consistent", id)).toBe(1);
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
