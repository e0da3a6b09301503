#!/usr/bin/env node
/**
 * The incident, replayed against a running broker: a burst of concurrent
 * clients on a small pool, a share of which vanish mid-request (they abort
 * their HTTP request and never release). Checks, while it runs and after:
 *   - the pool never holds more sessions than maxSessions and stays consistent;
 *   - no session is ever held by two leases at once (audited from the leases);
 *   - the pool is back to zero leased and zero waiting within TTL + 2 s of the burst's end.
 *
 * Usage: node scripts/burst.mjs [--url http://127.0.0.1:8787] [--clients 60] [--sessions 3]
 *        [--vanish 0.33] [--ttl 5] [--wait 3] [--key dev-key]
 * Targets loopback only; every request has a deadline; exits 0 on pass, 1 on fail.
 */
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    url: { type: "string", default: "http://127.0.0.1:8787" },
    clients: { type: "string", default: "60" },
    sessions: { type: "string", default: "3" },
    vanish: { type: "string", default: "0.33" },
    ttl: { type: "string", default: "5" },
    wait: { type: "string", default: "10" },
    key: { type: "string", default: "dev-key" },
  },
});
const base = new URL(values.url);
if (!["localhost", "127.0.0.1", "[::1]"].includes(base.hostname)) {
  console.error(`burst: refusing to target ${base.hostname}; this tool only drives a broker on loopback`);
  process.exit(2);
}
const clients = Number(values.clients);
const maxSessions = Number(values.sessions);
const vanishShare = Number(values.vanish);
const ttlSeconds = Number(values.ttl);
const waitSeconds = Number(values.wait);
const pool = `burst-${Date.now().toString(36)}`;
const headers = { authorization: `Bearer ${values.key}`, "content-type": "application/json" };

async function api(method, path, body, signal) {
  const response = await fetch(new URL(path, base), {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: signal ?? AbortSignal.timeout(30_000),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

const configured = await api("PUT", `/v1/pools/${pool}`, { maxSessions, maxWaiters: clients, defaultTtlSeconds: ttlSeconds });
if (configured.status !== 200) {
  console.error("burst: could not configure the pool", configured);
  process.exit(1);
}
console.log(`burst: pool ${pool}: ${clients} clients, maxSessions ${maxSessions}, ${Math.round(vanishShare * 100)}% vanish, ttl ${ttlSeconds}s, wait ${waitSeconds}s`);

// Watch the pool while the burst runs.
const observed = { maxInUse: 0, maxLeased: 0, inconsistent: [] };
let sampling = true;
const sampler = (async () => {
  while (sampling) {
    const { body } = await api("GET", `/v1/pools/${pool}`);
    const c = body.counts;
    observed.maxInUse = Math.max(observed.maxInUse, c.launching + c.idle + c.leased + c.resetting + c.closing);
    observed.maxLeased = Math.max(observed.maxLeased, c.leased);
    if (!body.consistent) observed.inconsistent.push(...body.violations);
  }
})();

const outcomes = {};
const count = (key) => (outcomes[key] = (outcomes[key] ?? 0) + 1);
const started = Date.now();
let done = 0;
async function client(index) {
  // Spread the vanishing clients through the burst (every k-th), so they sit
  // between live ones in the queue, as real disconnects would.
  const vanishes = vanishShare > 0 && index % Math.round(1 / vanishShare) === 0;
  const controller = new AbortController();
  if (vanishes) setTimeout(() => controller.abort(), 50 + Math.random() * 1500);
  try {
    const reply = await api("POST", `/v1/pools/${pool}/leases`, { ttlSeconds, waitSeconds }, AbortSignal.any([controller.signal, AbortSignal.timeout(30_000)]));
    count(`${reply.status}${reply.body?.code ? ` ${reply.body.code}` : ""}`);
    if (reply.status === 201) {
      if (vanishes) return; // got it, then vanished without releasing: the TTL must reclaim it
      await new Promise((resolve) => setTimeout(resolve, 100 + Math.random() * 300));
      await api("DELETE", `/v1/pools/${pool}/leases/${reply.body.id}`);
    }
  } catch (error) {
    count(vanishes ? "vanished" : `error ${error.name}`);
  } finally {
    done += 1;
    if (done % 10 === 0) process.stdout.write(`burst: ${done}/${clients} clients done (${((Date.now() - started) / 1000).toFixed(1)} s)\n`);
  }
}
await Promise.all(Array.from({ length: clients }, (_, i) => client(i)));
const burstEnded = Date.now();

// Back to zero leased and zero waiting within TTL + 2 s?
const deadline = burstEnded + (ttlSeconds + 2) * 1000;
let drainedAt = null;
while (Date.now() < deadline + 5_000) {
  const { body } = await api("GET", `/v1/pools/${pool}`);
  if (body.counts.leased === 0 && body.counts.waiting === 0) {
    drainedAt = Date.now();
    break;
  }
  await new Promise((resolve) => setTimeout(resolve, 100));
}
sampling = false;
await sampler;

// Audit: every lease the pool ever granted, and no session held by two at once.
const leases = [];
for (let cursor; ; ) {
  const { body } = await api("GET", `/v1/pools/${pool}/leases?limit=100${cursor ? `&cursor=${cursor}` : ""}`);
  leases.push(...body.leases);
  if (!body.nextCursor) break;
  cursor = body.nextCursor;
}
const bySession = new Map();
for (const lease of leases.filter((l) => l.grantedAt)) {
  const list = bySession.get(lease.sessionId) ?? [];
  list.push([Date.parse(lease.grantedAt), Date.parse(lease.endedAt ?? new Date().toISOString()), lease.id]);
  bySession.set(lease.sessionId, list);
}
const overlaps = [];
for (const [sessionId, intervals] of bySession) {
  intervals.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < intervals.length; i++) {
    if (intervals[i][0] < intervals[i - 1][1]) overlaps.push(`${sessionId}: ${intervals[i - 1][2]} and ${intervals[i][2]}`);
  }
}
const stillActive = leases.filter((l) => l.status === "active" || l.status === "waiting").length;
const final = (await api("GET", `/v1/pools/${pool}`)).body;
await api("DELETE", `/v1/pools/${pool}/leases`);

const drainSeconds = drainedAt === null ? null : (drainedAt - burstEnded) / 1000;
const checks = [
  [`never more than ${maxSessions} sessions (max seen ${observed.maxInUse}, max leased ${observed.maxLeased})`, observed.maxInUse <= maxSessions],
  [`pool consistent throughout (${observed.inconsistent.length} violations seen)`, observed.inconsistent.length === 0 && final.consistent],
  [`no session leased twice (${leases.filter((l) => l.grantedAt).length} grants over ${bySession.size} sessions)`, overlaps.length === 0],
  [`zero leased and zero waiting ${drainSeconds === null ? "never reached" : `after ${drainSeconds.toFixed(1)} s`} (limit ${ttlSeconds + 2} s)`, drainSeconds !== null && drainSeconds <= ttlSeconds + 2],
  [`every lease ended with a reason (${stillActive} still open)`, stillActive === 0 && leases.every((l) => l.status === "active" || l.endReason)],
];
console.log(`\nburst: outcomes ${JSON.stringify(outcomes)}; burst lasted ${((burstEnded - started) / 1000).toFixed(1)} s`);
console.log("| check | result |\n|---|---|");
for (const [name, ok] of checks) console.log(`| ${name} | ${ok ? "pass" : "FAIL"} |`);
if (overlaps.length) console.log("overlaps:", overlaps.slice(0, 5));
if (observed.inconsistent.length) console.log("violations:", [...new Set(observed.inconsistent)].slice(0, 5));
process.exit(checks.every(([, ok]) => ok) ? 0 : 1);
