#!/usr/bin/env node
/**
 * `npm run load`: drives N concurrent clients (default 200) through acquire /
 * renew / release on one pool of the broker, a share of them vanishing
 * mid-request, for a bounded time; shows progress; ends with throughput,
 * latency p50/p95/p99 per operation, outcomes by status, and the leak audit
 * (scripts/lib/load.mjs). Exits 1 if the audit fails.
 *
 *   npm run load                                  # starts wrangler dev, real Chromium
 *   npm run load -- --provider simulated          # simulated browsers (broker cost only)
 *   npm run load -- --url http://127.0.0.1:8787   # a broker you started (localhost only)
 *
 * Options: --clients 200 --seconds 20 --vanish 0.33 --ttl 5 --wait 2 --max-sessions 4
 */
import { parseArgs } from "node:util";
import { BrokerClient } from "../client/dist/index.js";
import { startBroker } from "./lib/broker.mjs";
import { audit, latencyTable, outcomeTable, runLoad } from "./lib/load.mjs";

const { values } = parseArgs({
  options: {
    url: { type: "string" },
    provider: { type: "string", default: "real" },
    clients: { type: "string", default: "200" },
    seconds: { type: "string", default: "20" },
    vanish: { type: "string", default: "0.33" },
    ttl: { type: "string", default: "5" },
    wait: { type: "string", default: "2" },
    "max-sessions": { type: "string", default: "4" },
  },
});
const clients = Math.min(2000, Number(values.clients));
const seconds = Math.min(300, Number(values.seconds));
const ttlSeconds = Number(values.ttl);
const maxSessions = Number(values["max-sessions"]);
if (!["real", "simulated"].includes(values.provider)) throw new Error("--provider is real or simulated");

let broker;
let url = values.url;
if (url) {
  if (!["localhost", "127.0.0.1", "[::1]"].includes(new URL(url).hostname)) {
    console.error(`load: refusing ${url}: localhost only`);
    process.exit(2);
  }
} else {
  console.log(`load: starting the broker (wrangler dev, ${values.provider} browsers)…`);
  // Every simulated client uses the one dev key: with the per-key rate limit on,
  // this would measure the limiter (test/api/ratelimit.test.ts covers it), not the broker.
  // The simulated platform has no launch rate: the account's launch rate
  // (ACCOUNT_LAUNCHES_PER_SECOND, 1/s by default) is raised to match it.
  const simulated = { BROWSER_PROVIDER: "simulated", ACCOUNT_LAUNCHES_PER_SECOND: "1000" };
  const vars = { RATE_LIMIT_REQUESTS: "0", ...(values.provider === "simulated" ? simulated : {}) };
  broker = await startBroker({ vars });
  url = broker.url;
}

const pool = `load-${Date.now().toString(36)}`;
try {
  await new BrokerClient({ baseUrl: url, apiKey: "dev-key" }).configurePool(pool, {
    maxSessions,
    maxWaiters: Math.max(clients, 10),
    defaultTtlSeconds: ttlSeconds,
    launchTimeoutSeconds: 30,
  });
  console.log(`load: ${clients} clients for ${seconds} s on ${url}/v1/pools/${pool} (maxSessions ${maxSessions}, TTL ${ttlSeconds} s, ${values.vanish} vanish)`);
  const result = await runLoad({
    url,
    pool,
    clients,
    durationMs: seconds * 1000,
    vanishShare: Number(values.vanish),
    ttlSeconds,
    waitSeconds: Number(values.wait),
    onProgress: (p) =>
      console.log(`  t=${String(Math.round(p.elapsedMs / 1000)).padStart(3)} s  ops ${p.ops}  in flight ${p.inflight}  granted ${p.granted}  vanished ${p.vanished}  errors ${p.errors}`),
  });
  const loadEndedAt = Date.now();
  console.log(`\nload: ${result.ops} operations in ${(result.elapsedMs / 1000).toFixed(1)} s = ${(result.ops / (result.elapsedMs / 1000)).toFixed(1)} ops/s; ${result.granted} leases granted, ${result.vanished} clients vanished\n`);
  console.log(latencyTable(result.byOp));
  console.log();
  console.log(outcomeTable(result.outcomes));
  if (result.errorKinds.size > 0) console.log(`\nnetwork errors: ${[...result.errorKinds].map(([k, n]) => `${k} ×${n}`).join(", ")}`);
  console.log("\nload: auditing (waiting for expiries, then re-leasing full capacity)…");
  const report = await audit({ url, pool, seen: result.seen, ttlSeconds, maxSessions, loadEndedAt });
  console.log("\n| audit | result | detail |\n|---|---|---|");
  for (const c of report.checks) console.log(`| ${c.name} | ${c.ok ? "pass" : "FAIL"} | ${c.detail} |`);
  console.log(report.pass ? "\nload: PASS — zero leaked, zero double-leased" : "\nload: FAIL");
  process.exitCode = report.pass ? 0 : 1;
} finally {
  await broker?.stop();
}
