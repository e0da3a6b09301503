#!/usr/bin/env node
/**
 * `npm run chaos`: fault scenarios against the broker, each with pass/fail.
 * Most run load (scripts/lib/load.mjs) while something goes wrong, then the
 * leak audit: no lease lost (each is active or ended with a reason), no slot
 * stuck, no session leased twice, full capacity usable again within TTL + 2 s.
 * A few drive a short script of their own instead (idle browsers killed,
 * callers that give up after queueing), then the same audit.
 * Prints a table (with how long until full capacity was back) and exits 1 on
 * any failure. Localhost only; bounded in time. See docs/chaos.md.
 *
 *   npm run chaos                      # every scenario
 *   npm run chaos -- --only burst      # scenarios whose name contains "burst"
 */
import { rmSync } from "node:fs";
import { parseArgs } from "node:util";
import puppeteer from "puppeteer-core";
import { BrokerClient } from "../client/dist/index.js";
import { browsersOf, stopBrowsers } from "./lib/browsers.mjs";
import { freePort, startBroker } from "./lib/broker.mjs";
import { allLeases, audit, customer, runLoad } from "./lib/load.mjs";

const { values } = parseArgs({ options: { only: { type: "string" } } });
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
// The simulated platform has no launch rate: the account's (1/s by default) is raised to match it.
const SIM = { BROWSER_PROVIDER: "simulated", ACCOUNT_LAUNCHES_PER_SECOND: "1000" };

/** All clients share the dev key; the per-key rate limit is off so the scenarios stress the broker, not the limiter. */
const UNLIMITED = { RATE_LIMIT_REQUESTS: "0" };

/**
 * An idle session that proved alive this recently is handed out without a
 * check (ALIVE_BYPASS_MS in src/pool/machine.ts, as HikariCP's
 * aliveBypassWindowMs). A browser killed inside that window may be handed out
 * dead by design, so the idle-kill scenario acquires after it.
 */
const ALIVE_BYPASS_MS = 5_000;

/**
 * Polls the pool's counts until `done(counts)` holds; a bounded wait for an
 * event, never a fixed sleep. Resolves with the view and the time it held;
 * rejects with the last counts after `timeoutMs`.
 */
async function waitForCounts(api, pool, done, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const view = await api.getPool(pool);
    if (done(view.counts)) return { view, at: Date.now() };
    if (Date.now() > deadline) throw new Error(`${what} not within ${timeoutMs} ms (counts ${JSON.stringify(view.counts)})`);
    await sleep(50);
  }
}

/** The event names of a lease's audit trail, in order (for the notes). */
async function eventsOf(url, pool, id) {
  const response = await fetch(`${url}/v1/pools/${pool}/leases/${id}/events`, { headers: { authorization: "Bearer dev-key" } });
  if (!response.ok) return [`events ${response.status}`];
  const body = await response.json();
  return (body.events ?? []).map((e) => e.event);
}

const seconds = (ms) => (ms === null || ms === undefined ? "-" : `${(ms / 1000).toFixed(1)} s`);

/**
 * Idle browsers killed from outside (real Chromium): two warm sessions are
 * idle, their Chromium processes are SIGKILLed, and two callers then acquire,
 * connect with puppeteer-core and evaluate a page. A dead idle session must be
 * found by the check before the borrow and never handed out.
 */
async function idleBrowsersKilled({ broker, pool, api, check, notes }) {
  const config = { maxSessions: 3, minIdle: 2, reuse: true, defaultTtlSeconds: 30 };
  await api.configurePool(pool, config);
  const warm = await waitForCounts(api, pool, (c) => c.idle === 2 && c.launching === 0, 90_000, "2 idle sessions");
  // Nothing is leased: every browser of this run is one of the pool's idle sessions.
  const victims = browsersOf(broker.tmp);
  const killed = stopBrowsers(broker.tmp);
  const killedAt = Date.now();
  check(
    "killed the 2 idle sessions' Chromium",
    victims.length === 2 && killed >= 2 && victims.every((v) => v.sessionId !== null),
    `${victims.length} browsers (sessions ${victims.map((v) => v.sessionId?.slice(0, 8) ?? "unknown").join(", ")}), ${killed} processes killed`,
  );
  // Past the bypass window: from here on the pool must check an idle session before it grants it.
  await sleep(Math.max(0, warm.at + ALIVE_BYPASS_MS + 1_000 - Date.now()));

  const started = Date.now();
  const acquires = await Promise.all(
    [0, 1].map(async (i) => {
      const reply = await customer(broker.url).acquire(pool, { ttlSeconds: 60, waitSeconds: 60, labels: { caller: String(i) } });
      return { ...reply, doneAt: Date.now() };
    }),
  );
  const granted = acquires.filter((a) => a.status === 201);
  check("both acquires 201", granted.length === 2, acquires.map((a) => `${a.status} in ${Math.round(a.ms)} ms`).join(", "));
  const dead = new Set(victims.map((v) => v.sessionId));
  const handedDead = granted.filter((a) => dead.has(a.body.sessionId));
  check("no killed browser handed out", handedDead.length === 0, `${handedDead.length} of ${granted.length} leases on a killed browser`);
  notes.push(`acquires took ${acquires.map((a) => seconds(a.doneAt - started)).join(" and ")} (${Math.round((started - killedAt) / 1000)} s after the kill)`);

  const driven = await Promise.all(
    granted.map(async (a, i) => {
      let browser;
      try {
        browser = await puppeteer.connect({ browserWSEndpoint: a.body.connectUrl });
        const page = await browser.newPage();
        await page.goto(`data:text/html,${encodeURIComponent(`<title>idle-kill-${i}</title><p id="p">alive ${i}</p>`)}`);
        const text = await page.evaluate(() => document.getElementById("p").textContent);
        return text === `alive ${i}` ? "ok" : `evaluated ${JSON.stringify(text)}`;
      } catch (error) {
        return `failed: ${String(error?.message ?? error).slice(0, 120)}`;
      } finally {
        await browser?.disconnect().catch(() => {});
      }
    }),
  );
  check("both connects + evaluate succeed", driven.length === 2 && driven.every((d) => d === "ok"), driven.join("; ") || "nothing to connect to");
  for (const a of granted) {
    const events = await eventsOf(broker.url, pool, a.body.id);
    notes.push(`lease ${a.body.labels?.caller ?? "?"}: ${events.join(" → ")}`);
  }

  const client = customer(broker.url);
  for (const a of granted) await client.release(pool, a.body.id);
  const releasedAt = Date.now();
  // Capacity back: the pool at its warm target again (2 idle, nothing leased).
  let capacityBackMs = null;
  try {
    const back = await waitForCounts(api, pool, (c) => c.idle >= 2 && c.leased === 0 && c.waiting === 0, 60_000, "2 idle again");
    capacityBackMs = back.at - releasedAt;
  } catch (error) {
    check("back to 2 idle", false, String(error.message));
  }
  notes.push(`2 idle again ${seconds(capacityBackMs)} after the releases (${capacityBackMs === null ? "-" : seconds(releasedAt + capacityBackMs - killedAt)} after the kill)`);
  const report = await audit({ url: broker.url, pool, seen: new Set(granted.map((a) => a.body.id)), ttlSeconds: 30, maxSessions: config.maxSessions, loadEndedAt: releasedAt });
  return { report, granted: granted.length, ops: acquires.length + granted.length, capacityBackMs };
}

/**
 * Callers that give up after queueing: both sessions are held, N callers queue
 * (waitSeconds 20) and abort their HTTP requests after ~0.5 s, the holders
 * release. Locally the Worker never sees those aborts (`request.signal` does
 * not fire under wrangler dev), so the pool grants the queued leases to callers
 * that are gone, two at a time; connectWithinSeconds must end each of them
 * (not_connected) and return its browser, so full capacity is back within
 * connectWithinSeconds + 2 s of the last grants.
 */
async function callersGiveUp({ broker, pool, api, check, notes }) {
  const maxSessions = 2;
  const connectWithinSeconds = 3;
  const callers = 4;
  const rounds = Math.ceil(callers / maxSessions);
  await api.configurePool(pool, { maxSessions, reuse: true, connectWithinSeconds, defaultTtlSeconds: 60, maxWaiters: 100 });

  const holders = await Promise.all([0, 1].map(() => customer(broker.url).acquire(pool, { ttlSeconds: 60, waitSeconds: 10, labels: { role: "holder" } })));
  check("both holders 201", holders.every((h) => h.status === 201), holders.map((h) => h.status).join(", "));

  const queuedFrom = Date.now();
  const controllers = Array.from({ length: callers }, () => new AbortController());
  const calls = controllers.map((controller, i) =>
    customer(broker.url)
      .acquire(pool, { ttlSeconds: 60, waitSeconds: 20, labels: { role: "gives-up", caller: String(i) }, signal: controller.signal })
      .then(
        (reply) => `answered ${reply.status}`,
        (error) => (error?.name === "AbortError" ? "aborted" : `error ${error?.message ?? error}`),
      ),
  );
  await waitForCounts(api, pool, (c) => c.waiting === callers, 10_000, `${callers} waiting`);
  await sleep(Math.max(0, queuedFrom + 500 - Date.now()));
  for (const controller of controllers) controller.abort();
  const outcomes = await Promise.all(calls);
  check(`all ${callers} callers gave up while queued`, outcomes.every((o) => o === "aborted"), outcomes.join(", "));

  const client = customer(broker.url);
  await Promise.all(holders.filter((h) => h.status === 201).map((h) => client.release(pool, h.body.id)));
  const releasedAt = Date.now();

  // Capacity back: nothing leased, nobody waiting (the counts), then proved by a fresh caller that does not queue.
  const limitMs = rounds * connectWithinSeconds * 1000 + 2_000;
  let capacityBackMs = null;
  try {
    const back = await waitForCounts(api, pool, (c) => c.leased === 0 && c.waiting === 0, limitMs + 10_000, "0 leased / 0 waiting");
    capacityBackMs = back.at - releasedAt;
  } catch (error) {
    notes.push(String(error.message));
  }
  check(
    `capacity back within ${rounds} × connectWithinSeconds + 2 s of the releases`,
    capacityBackMs !== null && capacityBackMs <= limitMs,
    `${seconds(capacityBackMs)} (limit ${seconds(limitMs)}: ${callers} gone callers are granted ${maxSessions} at a time)`,
  );
  const fresh = await Promise.all([0, 1].map(() => customer(broker.url).acquire(pool, { ttlSeconds: 10, waitSeconds: 0, labels: { role: "fresh" } })));
  check("a fresh caller (waitSeconds 0) gets both sessions", fresh.every((f) => f.status === 201), fresh.map((f) => f.status).join(", "));
  for (const f of fresh.filter((f) => f.status === 201)) await client.release(pool, f.body.id);

  const leases = await allLeases(api, pool);
  const gaveUp = leases.filter((l) => l.labels?.role === "gives-up");
  const reasons = new Map();
  for (const l of gaveUp) reasons.set(`${l.status}/${l.endReason ?? "-"}`, (reasons.get(`${l.status}/${l.endReason ?? "-"}`) ?? 0) + 1);
  check(
    "every given-up lease ended not_connected (or abandoned)",
    gaveUp.length === callers && gaveUp.every((l) => l.status === "released" && ["not_connected", "abandoned"].includes(l.endReason)),
    `${gaveUp.length} leases: ${[...reasons].map(([k, n]) => `${n} ${k}`).join(", ")}`,
  );
  const held = gaveUp.filter((l) => l.grantedAt && l.endedAt).map((l) => Date.parse(l.endedAt) - Date.parse(l.grantedAt));
  check(
    "each ended within connectWithinSeconds + 2 s of its grant",
    held.length === callers && held.every((ms) => ms <= connectWithinSeconds * 1000 + 2_000),
    `granted → ended ${held.map((ms) => seconds(ms)).join(", ")}`,
  );
  const holderRows = leases.filter((l) => l.labels?.role === "holder");
  check("the holders ended by their release (the timeline held)", holderRows.every((l) => l.endReason === "released"), holderRows.map((l) => l.endReason).join(", "));
  notes.push(`${callers} gone callers granted in ${rounds} rounds; capacity back ${seconds(capacityBackMs)} after the releases`);

  const seen = new Set([...holders, ...fresh].filter((r) => r.status === 201).map((r) => r.body.id));
  const report = await audit({ url: broker.url, pool, seen, ttlSeconds: connectWithinSeconds, maxSessions, loadEndedAt: Date.now() });
  return { report, granted: seen.size + gaveUp.filter((l) => l.grantedAt).length, ops: holders.length + callers + fresh.length, capacityBackMs };
}

/**
 * @type {{ name: string, vars: Record<string,string>, pool?: object, load?: object, during?: (ctx) => Promise<string>,
 *   restart?: boolean, capacityWithinTtl?: boolean, verify?: (ctx) => Promise<void>, run?: (ctx) => Promise<object> }[]}
 */
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
  {
    // A new pool first reconciles 60 s after its creation (RECONCILE_INTERVAL_MS), so the load runs
    // past that: from ~60 s the list hangs until its 10 s deadline, then is retried every 10 s.
    name: "platform list hangs (reconciliation never completes)",
    vars: { ...SIM, SIM_LIST_HANGS: "1" },
    pool: { maxSessions: 3, reuse: true },
    load: { clients: 30, seconds: 75, vanish: 0.3, ttl: 3, wait: 1, holdMs: [50, 500] },
    capacityWithinTtl: true,
    verify: async ({ api, pool, logLines, loadStartedAt, check }) => {
      const failed = logLines.filter(({ line }) => line.includes('"event":"reconcile_failed"') && line.includes(`/${pool}"`));
      check(
        "reconciliation was attempted and its list timed out",
        failed.length >= 1,
        `${failed.length} reconcile_failed for this pool (at t=${failed.map((f) => Math.round((f.at - loadStartedAt) / 1000)).join(", ")} s)${failed[0] ? `: ${failed[0].line.slice(0, 140)}` : ""}`,
      );
      const view = await api.getPool(pool);
      check("no reconciliation ever completed", view.lastReconciledAt === null, `lastReconciledAt ${view.lastReconciledAt}`);
      // While a list hung (the 10 s before each failure), leases still expired on time.
      const hung = failed.map((f) => [f.at - 10_000, f.at]);
      const lags = (await allLeases(api, pool))
        .filter((l) => l.status === "expired" && l.expiresAt && l.endedAt && hung.some(([from, to]) => Date.parse(l.expiresAt) >= from && Date.parse(l.expiresAt) <= to))
        .map((l) => Date.parse(l.endedAt) - Date.parse(l.expiresAt));
      check(
        "leases expired on time while the list hung",
        lags.length > 0 && Math.max(...lags) <= 1_000,
        lags.length ? `${lags.length} expiries in the hung windows, late by at most ${Math.max(...lags)} ms` : "no expiry fell in a hung window",
      );
    },
  },
  {
    name: "idle browsers killed from outside (real browsers)",
    vars: {},
    run: idleBrowsersKilled,
  },
  {
    name: "callers give up after queueing (gone callers granted later)",
    vars: { ...SIM },
    run: callersGiveUp,
  },
];

const results = [];
for (const scenario of scenarios) {
  if (values.only && !scenario.name.includes(values.only)) continue;
  const started = Date.now();
  console.log(`\nchaos: ${scenario.name}`);
  const port = await freePort();
  const logLines = [];
  let partial = "";
  const onOutput = (chunk) => {
    const lines = (partial + chunk).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) if (line.includes('"event":"')) logLines.push({ at: Date.now(), line });
  };
  const startOn = (state) => startBroker({ vars: { ...UNLIMITED, ...scenario.vars }, port, onOutput, ...(state ? { state } : {}) });
  let broker = await startOn(scenario.restart ? `/tmp/chaos-state-${port}` : undefined);
  const notes = [];
  try {
    const pool = `chaos-${Date.now().toString(36)}`;
    const api = new BrokerClient({ baseUrl: broker.url, apiKey: "dev-key" });
    const extra = [];
    const check = (name, ok, detail = "") => extra.push({ name, ok, detail });
    let outcome;
    if (scenario.run) {
      outcome = await scenario.run({ broker, pool, api, check, notes });
    } else {
      await api.configurePool(pool, { maxWaiters: 1000, defaultTtlSeconds: scenario.load.ttl, ...scenario.pool });
      const loadStartedAt = Date.now();
      const load = runLoad({
        url: broker.url,
        pool,
        clients: scenario.load.clients,
        durationMs: scenario.load.seconds * 1000,
        vanishShare: scenario.load.vanish,
        ttlSeconds: scenario.load.ttl,
        waitSeconds: scenario.load.wait,
        ...(scenario.load.holdMs ? { holdMs: scenario.load.holdMs } : {}),
        onProgress: (p) => process.stdout.write(`\r  t=${Math.round(p.elapsedMs / 1000)} s ops ${p.ops} granted ${p.granted} vanished ${p.vanished} errors ${p.errors}   `),
      });
      if (scenario.during) notes.push(await scenario.during({ broker }));
      if (scenario.restart) {
        await sleep((scenario.load.seconds * 1000) / 3);
        await broker.kill();
        notes.push(`SIGKILL at t=${Math.round((Date.now() - started) / 1000)} s`);
        broker = await startOn(broker.state);
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
        ...(scenario.capacityWithinTtl ? { capacityWithinMs: scenario.load.ttl * 1000 + 2000 } : {}),
      });
      if (scenario.verify) await scenario.verify({ broker, pool, api, logLines, loadStartedAt, check });
      outcome = { report, granted: result.granted, ops: result.ops, capacityBackMs: report.capacityBackMs };
    }
    const checks = [...extra, ...outcome.report.checks];
    for (const c of checks) console.log(`  ${c.ok ? "pass" : "FAIL"}  ${c.name}: ${c.detail}`);
    for (const n of notes) console.log(`  note  ${n}`);
    results.push({
      name: scenario.name,
      pass: checks.every((c) => c.ok),
      granted: outcome.granted,
      ops: outcome.ops,
      leases: outcome.report.leases,
      drainMs: outcome.report.drainMs,
      capacityBackMs: outcome.capacityBackMs,
      seconds: Math.round((Date.now() - started) / 1000),
      notes: [...notes, ...checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`)].join("; "),
    });
  } catch (error) {
    console.log(`  FAIL  ${String(error?.stack ?? error)}`);
    results.push({ name: scenario.name, pass: false, notes: String(error?.message ?? error) });
  } finally {
    await broker.stop();
    if (scenario.restart) rmSync(broker.state, { recursive: true, force: true });
  }
}

console.log(
  "\n| scenario | result | leases granted | operations | leases audited | drained after | capacity back after | took | notes |\n|---|---|---|---|---|---|---|---|---|",
);
for (const r of results) {
  const drained = r.drainMs === null || r.drainMs === undefined ? "-" : `${r.drainMs} ms`;
  console.log(`| ${r.name} | ${r.pass ? "pass" : "FAIL"} | ${r.granted ?? "-"} | ${r.ops ?? "-"} | ${r.leases ?? "-"} | ${drained} | ${seconds(r.capacityBackMs)} | ${r.seconds ?? "-"} s | ${r.notes ?? ""} |`);
}
const failed = results.filter((r) => !r.pass).length;
console.log(failed === 0 ? `\nchaos: all ${results.length} scenarios passed` : `\nchaos: ${failed} of ${results.length} scenarios FAILED`);
process.exit(failed === 0 ? 0 : 1);
