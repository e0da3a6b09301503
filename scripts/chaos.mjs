#!/usr/bin/env node
/**
 * `npm run chaos`: fault scenarios against the broker, each with pass/fail.
 * Each runs load (scripts/lib/load.mjs) while something goes wrong, then the
 * leak audit: no lease lost (each is active or ended with a reason), no slot
 * stuck, no session leased twice, full capacity usable again within TTL + 2 s.
 * Prints a table and exits 1 on any failure. Localhost only; bounded in time.
 *
 *   npm run chaos                      # every scenario
 *   npm run chaos -- --only burst      # scenarios whose name contains "burst"
 */
import { rmSync } from "node:fs";
import { parseArgs } from "node:util";
import { BrokerClient } from "../client/dist/index.js";
import { stopBrowsers } from "./lib/browsers.mjs";
import { freePort, startBroker } from "./lib/broker.mjs";
import { audit, runLoad } from "./lib/load.mjs";

const { values } = parseArgs({ options: { only: { type: "string" } } });
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const SIM = { BROWSER_PROVIDER: "simulated" };

/** All clients share the dev key; the per-key rate limit is off so the scenarios stress the broker, not the limiter. */
const UNLIMITED = { RATE_LIMIT_REQUESTS: "0" };

/** @type {{ name: string, vars: Record<string,string>, pool: object, load: object, during?: (ctx) => Promise<string> }[]} */
const scenarios = [
  {
    name: "launch failures 10%",
    vars: { ...SIM, SIM_LAUNCH_FAIL_RATE: "0.1" },
    pool: { maxSessions: 3, reuse: false },
    load: { clients: 60, seconds: 8, vanish: 0.2, ttl: 4, wait: 2 },
  },
  {
    name: "launch failures 50%",
    vars: { ...SIM, SIM_LAUNCH_FAIL_RATE: "0.5" },
    pool: { maxSessions: 3, reuse: false },
    load: { clients: 60, seconds: 8, vanish: 0.2, ttl: 4, wait: 2 },
  },
  {
    name: "launches slower than the launch timeout",
    vars: { ...SIM, SIM_LAUNCH_MS: "300", SIM_LAUNCH_JITTER_MS: "2500" },
    pool: { maxSessions: 3, reuse: false, launchTimeoutSeconds: 1 },
    load: { clients: 40, seconds: 8, vanish: 0.2, ttl: 4, wait: 2 },
  },
  {
    name: "Chromium killed from outside mid-lease (real browsers)",
    vars: {},
    pool: { maxSessions: 3, reuse: true },
    load: { clients: 30, seconds: 12, vanish: 0.2, ttl: 5, wait: 3 },
    during: async ({ broker }) => {
      await sleep(5_000);
      const killed = stopBrowsers(broker.tmp);
      return `killed ${killed} Chromium processes at t=5 s`;
    },
  },
  {
    name: "broker SIGKILLed mid-load, restarted on its state",
    vars: { ...SIM },
    pool: { maxSessions: 3, reuse: true },
    load: { clients: 60, seconds: 16, vanish: 0.2, ttl: 4, wait: 2 },
    restart: true,
  },
  {
    name: "burst far above capacity (500 clients, 2 sessions)",
    vars: { ...SIM },
    pool: { maxSessions: 2, reuse: true },
    load: { clients: 500, seconds: 6, vanish: 0.33, ttl: 3, wait: 0 },
  },
];

const results = [];
for (const scenario of scenarios) {
  if (values.only && !scenario.name.includes(values.only)) continue;
  const started = Date.now();
  console.log(`\nchaos: ${scenario.name}`);
  const port = await freePort();
  let broker = await startBroker({ vars: { ...UNLIMITED, ...scenario.vars }, port, ...(scenario.restart ? { state: `/tmp/chaos-state-${port}` } : {}) });
  const notes = [];
  try {
    const pool = `chaos-${Date.now().toString(36)}`;
    await new BrokerClient({ baseUrl: broker.url, apiKey: "dev-key" }).configurePool(pool, {
      maxWaiters: 1000,
      defaultTtlSeconds: scenario.load.ttl,
      ...scenario.pool,
    });
    const load = runLoad({
      url: broker.url,
      pool,
      clients: scenario.load.clients,
      durationMs: scenario.load.seconds * 1000,
      vanishShare: scenario.load.vanish,
      ttlSeconds: scenario.load.ttl,
      waitSeconds: scenario.load.wait,
      onProgress: (p) => process.stdout.write(`\r  t=${Math.round(p.elapsedMs / 1000)} s ops ${p.ops} granted ${p.granted} vanished ${p.vanished} errors ${p.errors}   `),
    });
    if (scenario.during) notes.push(await scenario.during({ broker }));
    if (scenario.restart) {
      await sleep((scenario.load.seconds * 1000) / 3);
      await broker.kill();
      notes.push(`SIGKILL at t=${Math.round((Date.now() - started) / 1000)} s`);
      broker = await startBroker({ vars: { ...UNLIMITED, ...scenario.vars }, port, state: broker.state });
      notes.push(`restarted at t=${Math.round((Date.now() - started) / 1000)} s`);
    }
    const result = await load;
    process.stdout.write("\n");
    const report = await audit({
      url: broker.url,
      pool,
      seen: result.seen,
      ttlSeconds: scenario.load.ttl,
      maxSessions: scenario.pool.maxSessions,
      loadEndedAt: Date.now(),
    });
    for (const c of report.checks) console.log(`  ${c.ok ? "pass" : "FAIL"}  ${c.name}: ${c.detail}`);
    results.push({
      name: scenario.name,
      pass: report.pass,
      granted: result.granted,
      ops: result.ops,
      leases: report.leases,
      drainMs: report.drainMs,
      notes: [...notes, ...report.checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`)].join("; "),
    });
  } catch (error) {
    results.push({ name: scenario.name, pass: false, notes: String(error?.message ?? error) });
  } finally {
    await broker.stop();
    if (scenario.restart) rmSync(broker.state, { recursive: true, force: true });
  }
}

console.log("\n| scenario | result | leases granted | operations | leases audited | drained after | notes |\n|---|---|---|---|---|---|---|");
for (const r of results) {
  console.log(`| ${r.name} | ${r.pass ? "pass" : "FAIL"} | ${r.granted ?? "-"} | ${r.ops ?? "-"} | ${r.leases ?? "-"} | ${r.drainMs === null || r.drainMs === undefined ? "-" : `${r.drainMs} ms`} | ${r.notes ?? ""} |`);
}
const failed = results.filter((r) => !r.pass).length;
console.log(failed === 0 ? `\nchaos: all ${results.length} scenarios passed` : `\nchaos: ${failed} of ${results.length} scenarios FAILED`);
process.exit(failed === 0 ? 0 : 1);
