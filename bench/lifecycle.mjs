#!/usr/bin/env node
/**
 * `npm run bench:lifecycle`: a lease's whole life through the broker against the
 * same work done on a local Chromium directly, in the phases of the public
 * comparison of hosted browser services (BrowserArena: create, connect, goto,
 * release), with puppeteer-core and with playwright-core.
 *
 * One iteration is: acquire (POST a lease), connect (to its connectUrl), first
 * navigation (a new page, goto a page this script serves on 127.0.0.1, wait for
 * load, read the title), release (close the page, disconnect, DELETE the lease).
 * The variants, for each driver:
 *
 *   broker warm          a pool of one reused session kept warm (minIdle 1); the
 *                        released browser's reset has finished before the acquire;
 *   broker back-to-back  the same pool, but the acquire follows the previous
 *                        lease's release at once (it waits for that reset);
 *   broker cold          a pool that launches for every lease (minIdle 0, reuse off);
 *   direct warm          connect to a Chromium launched once, same page work,
 *                        close the page, disconnect (acquire: nothing to do);
 *   direct cold          puppeteer.launch / chromium.launch per iteration (the
 *                        launch is the acquire and includes the connect), same
 *                        page work, close the browser.
 *
 * Every round runs every variant once, in an order rotated each round, so noisy
 * neighbours hit all alike; WARMUP rounds (default 2) are discarded, ROUNDS
 * (default 15) are kept. Between variants the broker's pools are let settle (a
 * reset or a close finishes) outside the measured time, so one variant's
 * background work does not land in the next one's figures. Prints progress, a
 * markdown table and the ratios of issue 19; writes bench/lifecycle.json.
 * A failed iteration is reported and left out of the figures, up to
 * MAX_FAILURES (default 3). Localhost only; gives up after DEADLINE_MINUTES
 * (default 15) and always stops its browsers and the broker.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { createServer, request as httpRequest } from "node:http";
import { cpus, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import puppeteer from "puppeteer-core";
import { startBroker } from "../scripts/lib/broker.mjs";
import { lifecycleBlock, writeReadmeBlock } from "./readme.mjs";

const ROUNDS = Number(process.env.ROUNDS ?? 15);
const WARMUP = Number(process.env.WARMUP ?? 2);
/** Failed iterations tolerated (each reported, none sampled) before the run gives up. */
const MAX_FAILURES = Number(process.env.MAX_FAILURES ?? 3);
const DEADLINE_MINUTES = Number(process.env.DEADLINE_MINUTES ?? 15);
const here = dirname(fileURLToPath(import.meta.url));
const chromePath = process.env.CHROME_PATH ?? "/usr/bin/chromium";
if (!existsSync(chromePath)) {
  console.error(`bench: no Chromium at ${chromePath}; run \`npm run setup\` or set CHROME_PATH`);
  process.exit(1);
}
/** The flags scripts/setup.mjs's shim gives the broker's Chromium, so both sides run the same browser alike. */
const CHROME_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];
/** The drivers' own signal handlers would exit before the broker is stopped; ours stop everything. */
const LAUNCH = { executablePath: chromePath, headless: true, args: CHROME_ARGS, handleSIGINT: false, handleSIGTERM: false, handleSIGHUP: false };
const TARGETS = { warmRatio: 1.15, connectOverheadMs: 10, coldRatio: 1.05 };

const TITLE = "lifecycle bench";
const PAGE = `<!doctype html><meta charset="utf-8"><title>${TITLE}</title>
<style>body{font:18px sans-serif;margin:40px}</style><h1>${TITLE}</h1>
${Array.from({ length: 8 }, (_, i) => `<p>Paragraph ${i + 1}. ${"Lorem ipsum dolor sit amet. ".repeat(10)}</p>`).join("\n")}`;

// ---- cleanup: whatever happens, browsers and the broker stop ----

const cleanups = [];
let cleaning;
function cleanUp() {
  cleaning ??= (async () => {
    for (const fn of cleanups.reverse()) {
      await Promise.race([Promise.resolve().then(fn).catch(() => undefined), new Promise((r) => setTimeout(r, 15_000).unref())]);
    }
  })();
  return cleaning;
}
let aborting = false;
async function abort(message, code = 1) {
  // Once cleaning up, the run's own calls fail as their browsers go: those are not news.
  if (aborting) return;
  aborting = true;
  console.error(`\nbench: ${message}`);
  await cleanUp();
  process.exit(code);
}
const deadline = setTimeout(
  () => abort(`gave up after the ${DEADLINE_MINUTES}-minute deadline (DEADLINE_MINUTES); lower ROUNDS or raise it`, 2),
  DEADLINE_MINUTES * 60_000,
);
for (const signal of ["SIGINT", "SIGTERM"]) process.once(signal, () => abort(`stopped by ${signal}`, 130));
// A failure anywhere (a top-level await rejecting lands here too) ends the run, cleaned up.
process.on("uncaughtException", (error) => abort(`failed: ${error.stack ?? error}`));
process.on("unhandledRejection", (error) => abort(`failed: ${error?.stack ?? error}`));

// ---- statistics ----

const round1 = (x) => Math.round(x * 10) / 10;
const quantile = (xs, q) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
};
const stats = (xs) => (xs.length === 0 ? null : { p50_ms: round1(quantile(xs, 0.5)), p95_ms: round1(quantile(xs, 0.95)), n: xs.length });

// ---- the page both sides navigate to ----

const server = createServer((_req, res) => {
  // no-store: every navigation fetches, as a first navigation in a fresh browser would.
  res.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" });
  res.end(PAGE);
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
cleanups.push(() => new Promise((resolve) => server.close(resolve)));
const pageUrl = `http://127.0.0.1:${server.address().port}/`;

// ---- the two drivers, doing the same work the same way on both sides ----

const drivers = {
  puppeteer: {
    connect: (url) => puppeteer.connect({ browserWSEndpoint: url }),
    launch: () => puppeteer.launch(LAUNCH),
    async open(browser) {
      const page = await browser.newPage();
      await page.goto(pageUrl, { waitUntil: "load" });
      return [page, await page.title()];
    },
    disconnect: (browser) => browser.disconnect(),
  },
  playwright: {
    connect: (url) => chromium.connectOverCDP(url),
    launch: () => chromium.launch(LAUNCH),
    async open(browser) {
      // Over CDP the browser's default context is contexts()[0]; a launched browser has none.
      const context = browser.contexts()[0] ?? (await browser.newContext());
      const page = await context.newPage();
      await page.goto(pageUrl, { waitUntil: "load" });
      return [page, await page.title()];
    },
    // On a browser reached with connectOverCDP, close() only disconnects.
    disconnect: (browser) => browser.close(),
  },
};

async function navigate(driver, browser) {
  const [page, title] = await driver.open(browser);
  if (title !== TITLE) throw new Error(`the page's title read "${title}", not "${TITLE}"`);
  return page;
}

// ---- the broker ----

// The broker's last log lines, shown when an iteration fails.
let brokerLog = "";
/** The Worker's own split of each CDP connect (its `cdp_opened` log line: token checks, the pool's grant, the browser's socket). */
const connectSplits = [];
const broker = await startBroker({
  onOutput: (chunk) => {
    brokerLog = (brokerLog + chunk).slice(-4000);
    for (const m of chunk.matchAll(/"event":"cdp_opened".*?"ms":(\{[^}]*\})/g)) connectSplits.push(JSON.parse(m[1]));
  },
});
cleanups.push(() => broker.stop());
console.log(`bench: broker on ${broker.url}`);
const headers = { authorization: "Bearer dev-key", "content-type": "application/json" };

async function call(method, path, body) {
  const response = await fetch(`${broker.url}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : undefined;
}

/** Polls the pool until `ready(counts)` (outside any measured time). */
async function settle(pool, ready, what) {
  const until = Date.now() + 60_000;
  for (;;) {
    const { counts } = await call("GET", `/v1/pools/${pool}`);
    if (ready(counts)) return;
    if (Date.now() > until) throw new Error(`pool ${pool} did not reach "${what}" within 60 s: ${JSON.stringify(counts)}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
const idleReady = (c) => c.idle === 1 && c.launching === 0 && c.leased === 0 && c.resetting === 0 && c.closing === 0;
const empty = (c) => c.idle + c.launching + c.leased + c.resetting + c.closing === 0;

const stamp = Date.now().toString(36);
const warmPool = `bench-lifecycle-warm-${stamp}`;
const coldPool = `bench-lifecycle-cold-${stamp}`;
// No use or age limit: a warm session closed mid-run would put a launch in the warm figures.
await call("PUT", `/v1/pools/${warmPool}`, { maxSessions: 1, minIdle: 1, reuse: true, maxSessionUses: 0, maxSessionAgeSeconds: 0 });
await call("PUT", `/v1/pools/${coldPool}`, { maxSessions: 1, minIdle: 0, reuse: false });
await settle(warmPool, idleReady, "one idle session");
console.log("bench: warm pool ready (one idle session)");

/**
 * acquire, connect, first navigation, release through the broker; ms per phase.
 * A failure leaves nothing held: the lease is released (its pool has one
 * session) and the error says how the broker ended it, if it did.
 */
async function brokerLifecycle(driver, pool) {
  let lease;
  let browser;
  let released = false;
  try {
    const t0 = performance.now();
    lease = await call("POST", `/v1/pools/${pool}/leases`, { ttlSeconds: 60, waitSeconds: 30 });
    const t1 = performance.now();
    browser = await driver.connect(lease.connectUrl);
    const t2 = performance.now();
    const page = await navigate(driver, browser);
    const t3 = performance.now();
    await page.close();
    await driver.disconnect(browser);
    const disconnected = performance.now();
    await call("DELETE", `/v1/pools/${pool}/leases/${lease.id}`);
    released = true;
    const t4 = performance.now();
    return { acquire: t1 - t0, connect: t2 - t1, navigate: t3 - t2, release: t4 - t3, delete: t4 - disconnected, lifecycle: t4 - t0 };
  } catch (error) {
    if (!lease) throw error;
    await Promise.resolve(browser && driver.disconnect(browser)).catch(() => undefined);
    const ended = await call("GET", `/v1/pools/${pool}/leases/${lease.id}`).catch(() => undefined);
    if (!released) await call("DELETE", `/v1/pools/${pool}/leases/${lease.id}`).catch(() => undefined);
    throw new Error(`${error.message} (lease ${lease.id}: ${ended ? `${ended.status}${ended.endReason ? `, ${ended.endReason}` : ""}` : "unreadable"})`, { cause: error });
  }
}

// ---- direct: one Chromium launched once, left without a client as the broker's idle one is ----

const warmDirect = await puppeteer.launch(LAUNCH);
const chromiumVersion = await warmDirect.version();
const directEndpoint = warmDirect.wsEndpoint();
const directProcess = warmDirect.process();
await warmDirect.disconnect();
cleanups.push(() => directProcess.kill("SIGKILL"));

async function directWarmLifecycle(driver) {
  let browser;
  try {
    const t1 = performance.now();
    browser = await driver.connect(directEndpoint);
    const t2 = performance.now();
    const page = await navigate(driver, browser);
    const t3 = performance.now();
    await page.close();
    await driver.disconnect(browser);
    const t4 = performance.now();
    return { acquire: null, connect: t2 - t1, navigate: t3 - t2, release: t4 - t3, delete: null, lifecycle: t4 - t1 };
  } catch (error) {
    await Promise.resolve(browser && driver.disconnect(browser)).catch(() => undefined);
    throw error;
  }
}

const launched = new Set();
cleanups.push(() => Promise.all([...launched].map((browser) => browser.close())));
async function directColdLifecycle(driver) {
  let browser;
  try {
    const t0 = performance.now();
    browser = await driver.launch();
    launched.add(browser);
    const t1 = performance.now();
    const page = await navigate(driver, browser);
    const t3 = performance.now();
    await page.close();
    await browser.close();
    const t4 = performance.now();
    return { acquire: t1 - t0, connect: null, navigate: t3 - t1, release: t4 - t3, delete: null, lifecycle: t4 - t0 };
  } finally {
    if (browser) {
      launched.delete(browser);
      await browser.close().catch(() => undefined);
    }
  }
}

// ---- the variants, and the rounds ----

const KINDS = {
  "broker warm": async (driver) => {
    await settle(warmPool, idleReady, "one idle session");
    const phases = await brokerLifecycle(driver, warmPool);
    await settle(warmPool, idleReady, "one idle session");
    return phases;
  },
  "broker back-to-back": async (driver) => {
    await settle(warmPool, idleReady, "one idle session");
    await brokerLifecycle(driver, warmPool); // the lease whose reset the measured acquire meets
    const phases = await brokerLifecycle(driver, warmPool);
    await settle(warmPool, idleReady, "one idle session");
    return phases;
  },
  "broker cold": async (driver) => {
    await settle(coldPool, empty, "no session");
    const phases = await brokerLifecycle(driver, coldPool);
    await settle(coldPool, empty, "no session"); // the released browser's close
    return phases;
  },
  "direct warm": directWarmLifecycle,
  "direct cold": directColdLifecycle,
};
/** `delete` is the part of the release spent in DELETE …/leases/{id} (the broker's variants only). */
const PHASES = ["acquire", "connect", "navigate", "release", "delete", "lifecycle"];
const variants = Object.keys(drivers).flatMap((driver) => Object.keys(KINDS).map((kind) => ({ driver, kind, name: `${driver} ${kind}` })));
const samples = Object.fromEntries(variants.map((v) => [v.name, Object.fromEntries(PHASES.map((p) => [p, []]))]));

const failures = [];
const started = Date.now();
for (let r = 0; r < WARMUP + ROUNDS; r += 1) {
  const order = [...variants.slice(r % variants.length), ...variants.slice(0, r % variants.length)];
  const line = [];
  for (const v of order) {
    let phases;
    try {
      phases = await KINDS[v.kind](drivers[v.driver]);
    } catch (error) {
      failures.push({ variant: v.name, round: r + 1, error: error.message });
      line.push(`${v.name} FAILED`);
      console.error(`bench: ${v.name}, round ${r + 1} failed: ${error.message}`);
      if (v.kind.startsWith("broker")) console.error(`bench: the broker's last output:\n${brokerLog.split("\n").slice(-15).join("\n")}`);
      if (failures.length > MAX_FAILURES) throw new Error(`more than ${MAX_FAILURES} failed iterations (MAX_FAILURES)`);
      continue;
    }
    line.push(`${v.name} ${Math.round(phases.lifecycle)}`);
    if (r < WARMUP) continue;
    for (const p of PHASES) if (phases[p] !== null) samples[v.name][p].push(phases[p]);
  }
  const label = r < WARMUP ? `warm-up ${r + 1}/${WARMUP}` : `round ${r + 1 - WARMUP}/${ROUNDS}`;
  console.log(`bench: ${label} (${Math.round((Date.now() - started) / 1000)} s), lifecycle ms: ${line.join(", ")}`);
}

// ---- where a connect's time goes ----

/** ms until a WebSocket upgrade to `url` is answered 101 (the socket is then dropped). */
function upgradeMs(url) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const request = httpRequest(new URL(url.replace(/^ws/, "http")), {
      headers: { Connection: "Upgrade", Upgrade: "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": randomBytes(16).toString("base64") },
    });
    request.setTimeout(10_000, () => request.destroy(new Error(`no answer to the upgrade within 10 s: ${url}`)));
    request.on("upgrade", (_response, socket) => {
      resolve(performance.now() - started);
      socket.destroy();
    });
    request.on("response", (response) => reject(new Error(`the upgrade was answered ${response.statusCode}`)));
    request.on("error", reject);
    request.end();
  });
}

/** The median ms of one CDP round trip (Browser.getVersion), over 10, on a connected Puppeteer browser. */
async function roundTripMs(browser) {
  const times = [];
  for (let i = 0; i < 10; i += 1) {
    const started = performance.now();
    await browser.version();
    times.push(performance.now() - started);
  }
  return quantile(times, 0.5);
}

// Interleaved like the rounds: the socket's opening alone, and one CDP round trip, through the broker and directly.
const connectParts = { upgrade: { broker: [], direct: [] }, round_trip: { broker: [], direct: [] } };
const splitsBefore = connectSplits.length;
for (let r = 0; r < ROUNDS; r += 1) {
  await settle(warmPool, idleReady, "one idle session");
  const lease = await call("POST", `/v1/pools/${warmPool}/leases`, { ttlSeconds: 60, waitSeconds: 30 });
  try {
    connectParts.upgrade.broker.push(await upgradeMs(lease.connectUrl));
    connectParts.upgrade.direct.push(await upgradeMs(directEndpoint));
    for (const [side, url] of [["broker", lease.connectUrl], ["direct", directEndpoint]]) {
      const browser = await puppeteer.connect({ browserWSEndpoint: url });
      try {
        connectParts.round_trip[side].push(await roundTripMs(browser));
      } finally {
        await browser.disconnect();
      }
    }
  } finally {
    await call("DELETE", `/v1/pools/${warmPool}/leases/${lease.id}`);
  }
}
const median = (xs) => (xs.length === 0 ? null : round1(quantile(xs, 0.5)));
const splits = connectSplits.slice(splitsBefore);
const connectBreakdown = {
  upgrade_ms: { broker: median(connectParts.upgrade.broker), direct: median(connectParts.upgrade.direct) },
  round_trip_ms: { broker: median(connectParts.round_trip.broker), direct: median(connectParts.round_trip.direct) },
  worker_ms: Object.fromEntries(["token", "grant", "upstream"].map((k) => [k, median(splits.map((s) => s[k]))])),
  worker_samples: splits.length,
  note: "upgrade: a WebSocket upgrade answered 101, nothing sent; round_trip: Browser.getVersion through puppeteer-core; worker_ms: the broker Worker's own split of its connects in this section (its cdp_opened log lines): the connect token's checks (rate limit, the tenant's pool), the pool object's grant, the browser's socket through the BROWSER binding",
};
console.log(`bench: connect breakdown ${JSON.stringify(connectBreakdown)}`);

// ---- report ----

const figures = Object.fromEntries(variants.map((v) => [v.name, Object.fromEntries(PHASES.map((p) => [p, stats(samples[v.name][p])]))]));
const ratio = (a, b) => Math.round((a / b) * 100) / 100;
const p50 = (name, phase) => figures[name][phase].p50_ms;
const ratios = Object.fromEntries(
  Object.keys(drivers).map((d) => {
    const warm = ratio(p50(`${d} broker warm`, "lifecycle"), p50(`${d} direct warm`, "lifecycle"));
    const backToBack = ratio(p50(`${d} broker back-to-back`, "lifecycle"), p50(`${d} direct warm`, "lifecycle"));
    const connect = round1(p50(`${d} broker warm`, "connect") - p50(`${d} direct warm`, "connect"));
    const cold = ratio(p50(`${d} broker cold`, "lifecycle"), p50(`${d} direct cold`, "lifecycle"));
    return [
      d,
      {
        warm_lifecycle_ratio: { value: warm, target: `<= ${TARGETS.warmRatio}`, met: warm <= TARGETS.warmRatio },
        back_to_back_lifecycle_ratio: { value: backToBack, target: `<= ${TARGETS.warmRatio}`, met: backToBack <= TARGETS.warmRatio },
        connect_overhead_ms: { value: connect, target: `<= ${TARGETS.connectOverheadMs}`, met: connect <= TARGETS.connectOverheadMs },
        cold_lifecycle_ratio: { value: cold, target: `<= ${TARGETS.coldRatio}`, met: cold <= TARGETS.coldRatio },
      },
    ];
  }),
);

const cell = (s) => (s === null ? "—" : `${s.p50_ms} / ${s.p95_ms}`);
const mark = (r) => `${r.value}${r.met ? " ✓" : " ✗"}`;
const cpu = cpus()[0]?.model ?? "unknown CPU";
console.log(`
Lease lifecycle, ${ROUNDS} rounds interleaved (${WARMUP} warm-up discarded), p50 / p95 ms; ${cpus().length} × ${cpu}, Node ${process.version}, Chromium ${chromiumVersion}:

| variant | acquire | connect | first navigation | release | of which DELETE | lifecycle |
|---|---|---|---|---|---|---|
${variants.map((v) => `| ${v.name} | ${PHASES.map((p) => cell(figures[v.name][p])).join(" | ")} |`).join("\n")}

| driver | warm lifecycle ÷ direct (≤ ${TARGETS.warmRatio}) | back-to-back ÷ direct | connect − direct, ms (≤ ${TARGETS.connectOverheadMs}) | cold lifecycle ÷ raw launch (≤ ${TARGETS.coldRatio}) |
|---|---|---|---|---|
${Object.entries(ratios)
  .map(([d, r]) => `| ${d} | ${mark(r.warm_lifecycle_ratio)} | ${r.back_to_back_lifecycle_ratio.value} | ${mark(r.connect_overhead_ms)} | ${mark(r.cold_lifecycle_ratio)} |`)
  .join("\n")}`);

const version = (pkg) => JSON.parse(readFileSync(join(here, "..", "node_modules", pkg, "package.json"), "utf8")).version;
const results = {
  date: new Date().toISOString(),
  machine: { cpus: cpus().length, cpu, memory_gb: round1(totalmem() / 2 ** 30), node: process.version },
  chromium: chromiumVersion,
  drivers: { "puppeteer-core": version("puppeteer-core"), "playwright-core": version("playwright-core") },
  rounds: ROUNDS,
  warmup_rounds: WARMUP,
  page_bytes: Buffer.byteLength(PAGE),
  targets: TARGETS,
  ratios,
  connect_breakdown: connectBreakdown,
  failures,
  variants: figures,
  samples: Object.fromEntries(Object.entries(samples).map(([name, phases]) => [name, Object.fromEntries(Object.entries(phases).map(([p, xs]) => [p, xs.map(round1)]))])),
};
writeFileSync(join(here, "lifecycle.json"), `${JSON.stringify(results, null, 2)}\n`);
writeReadmeBlock("bench:lifecycle", lifecycleBlock(results));
if (failures.length > 0) console.log(`\nbench: ${failures.length} iteration(s) failed and are not in the figures (see failures in bench/lifecycle.json)`);
console.log("\nbench: wrote bench/lifecycle.json and README.md's figures");

clearTimeout(deadline);
await cleanUp();
