#!/usr/bin/env node
/**
 * `npm run simulate`: how a pool of a given size would serve a given traffic,
 * decided by the broker's own transitions (sim/engine.ts) in real SQLite
 * inside workerd, on a virtual clock. One table row per candidate setting (the
 * cross product of the list flags). See docs/capacity.md.
 *
 *   npm run simulate -- --rate 1 --hold 20 --duration 3600 --max-sessions 20,24,28
 *   npm run simulate -- --trace calls.csv --max-sessions 4 --min-idle 0,2
 *
 * Traffic: --rate (arrivals/s, Poisson) --hold (mean hold, s) --hold-dist exp|fixed
 *          --duration (s, default 3600) or --arrivals N; --seed (default 1);
 *          or --trace file.csv with lines arrival_s,hold_s (a header line is allowed).
 * Candidates (comma lists): --max-sessions --min-idle --wait-seconds --launch-seconds
 *          --reuse true|false --admission true|false (when the pool has that field).
 * Also:    --launch-dist fixed|exp (default fixed) --reset-seconds (0.05) --close-seconds (0.1)
 *          --check-seconds (0) --ttl (s; default each hold + 60) --max-waiters
 *          --warmup (s before the first arrival; default 30) --config '{"field":value}'
 *          --json file (also write the results as JSON).
 *
 * No browser is started and nothing listens on a port: the only I/O is
 * bundling sim/worker.ts with esbuild and one local workerd process.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { cpus, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
// Only the packages are needed (no Chromium): setup runs only when they are missing.
if (!existsSync(join(root, "node_modules", "wrangler", "package.json")) || !existsSync(join(root, "node_modules", ".bin", "esbuild"))) {
  execFileSync(process.execPath, [join(root, "scripts", "setup.mjs")], { cwd: root, stdio: "inherit" });
}
// The Miniflare (and so the workerd) that the pinned wrangler runs, as bench/run.mjs does.
const fromWrangler = createRequire(createRequire(import.meta.url).resolve("wrangler/package.json"));
const { Miniflare } = fromWrangler("miniflare");

const started = Date.now();
const log = (message) => console.error(`[simulate ${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${message}`);

const { values: flags } = parseArgs({
  options: {
    rate: { type: "string" },
    hold: { type: "string" },
    "hold-dist": { type: "string", default: "exp" },
    duration: { type: "string" },
    arrivals: { type: "string" },
    seed: { type: "string", default: "1" },
    trace: { type: "string" },
    "max-sessions": { type: "string", default: "4" },
    "min-idle": { type: "string", default: "0" },
    "wait-seconds": { type: "string", default: "30" },
    "launch-seconds": { type: "string", default: "1.5" },
    "launch-dist": { type: "string", default: "fixed" },
    reuse: { type: "string", default: "true" },
    admission: { type: "string" },
    "reset-seconds": { type: "string", default: "0.05" },
    "close-seconds": { type: "string", default: "0.1" },
    "check-seconds": { type: "string", default: "0" },
    ttl: { type: "string" },
    "max-waiters": { type: "string" },
    warmup: { type: "string", default: "30" },
    config: { type: "string" },
    json: { type: "string" },
    help: { type: "boolean", short: "h" },
  },
  strict: true,
});

if (flags.help) {
  const text = readFileSync(fileURLToPath(import.meta.url), "utf8");
  console.log(/\/\*\*([\s\S]*?)\*\//.exec(text)[1].replace(/^ \* ?/gm, "").trim());
  process.exit(0);
}

function fail(message) {
  console.error(`simulate: ${message} (--help for the flags)`);
  process.exit(2);
}

function number(flag, { min = 0, integer = false } = {}) {
  const raw = flags[flag];
  const value = Number(raw);
  if (raw === undefined || raw === "" || !Number.isFinite(value) || value < min || (integer && !Number.isInteger(value))) {
    fail(`--${flag} must be ${integer ? "an integer" : "a number"} ≥ ${min}, got ${raw}`);
  }
  return value;
}

function list(flag, parse) {
  return flags[flag].split(",").map((cell) => {
    const value = parse(cell.trim());
    if (value === undefined) fail(`--${flag}: cannot read "${cell}"`);
    return value;
  });
}
const numberCell = (cell) => (cell !== "" && Number.isFinite(Number(cell)) && Number(cell) >= 0 ? Number(cell) : undefined);
const integerCell = (cell) => (Number.isInteger(numberCell(cell)) ? Number(cell) : undefined);
const booleanCell = (cell) => ({ true: true, false: false })[cell];
const distribution = (flag) => (["exp", "fixed"].includes(flags[flag]) ? flags[flag] : fail(`--${flag} must be exp or fixed`));

// ---- traffic -----------------------------------------------------------------------

let arrivals;
let traffic;
if (flags.trace) {
  arrivals = { kind: "trace", csv: readFileSync(flags.trace, "utf8") };
  traffic = `trace ${flags.trace}`;
} else {
  if (flags.rate === undefined || flags.hold === undefined) fail("give --rate and --hold, or --trace");
  const rate = number("rate");
  if (rate === 0) fail("--rate must be positive");
  const count = flags.arrivals === undefined ? undefined : number("arrivals", { min: 1, integer: true });
  const durationSeconds = flags.duration === undefined ? (count === undefined ? 3600 : undefined) : number("duration");
  arrivals = {
    kind: "poisson",
    rate,
    holdSeconds: number("hold"),
    holdDist: distribution("hold-dist"),
    ...(durationSeconds === undefined ? {} : { durationSeconds }),
    ...(count === undefined ? {} : { count }),
    seed: number("seed", { integer: true }),
  };
  traffic =
    `Poisson arrivals at ${rate}/s, ${arrivals.holdDist === "exp" ? "exponential" : "fixed"} holds of mean ${arrivals.holdSeconds} s, ` +
    `${count === undefined ? `${durationSeconds} s` : `${count} arrivals`}, seed ${arrivals.seed}`;
}

// ---- candidates -----------------------------------------------------------------------

const dimensions = [
  { flag: "max-sessions", label: "maxSessions", values: list("max-sessions", integerCell), set: (c, v) => (c.config.maxSessions = v) },
  { flag: "min-idle", label: "minIdle", values: list("min-idle", integerCell), set: (c, v) => (c.config.minIdle = v) },
  { flag: "wait-seconds", label: "waitSeconds", values: list("wait-seconds", numberCell), set: (c, v) => (c.waitSeconds = v) },
  { flag: "launch-seconds", label: "launch s", values: list("launch-seconds", numberCell), set: (c, v) => (c.launchSeconds = v) },
  { flag: "reuse", label: "reuse", values: list("reuse", booleanCell), set: (c, v) => (c.config.reuse = v) },
  ...(flags.admission === undefined
    ? []
    : [{ flag: "admission", label: "admission", values: list("admission", booleanCell), set: (c, v) => (c.config.admission = v) }]),
];
let extraConfig = {};
if (flags.config) {
  try {
    extraConfig = JSON.parse(flags.config);
  } catch {
    fail("--config must be a JSON object of pool config fields");
  }
}
const base = {
  arrivals,
  launchDist: distribution("launch-dist"),
  resetSeconds: number("reset-seconds"),
  closeSeconds: number("close-seconds"),
  checkSeconds: number("check-seconds"),
  warmupSeconds: number("warmup"),
  seed: number("seed", { integer: true }),
  ...(flags.ttl === undefined ? {} : { ttlSeconds: number("ttl") }),
};
const candidates = dimensions.reduce(
  (partial, dimension) => partial.flatMap((row) => dimension.values.map((value) => [...row, value])),
  [[]],
).map((values) => {
  const candidate = {
    ...base,
    config: { ...extraConfig, ...(flags["max-waiters"] === undefined ? {} : { maxWaiters: number("max-waiters", { integer: true }) }) },
  };
  dimensions.forEach((dimension, i) => dimension.set(candidate, values[i]));
  if (candidate.config.minIdle > candidate.config.maxSessions) return undefined;
  return { values, options: candidate };
}).filter(Boolean);
if (candidates.length === 0) fail("no candidate has minIdle ≤ maxSessions");

// ---- run -------------------------------------------------------------------------------

function compatibilityDate() {
  return /^compatibility_date\s*=\s*"([^"]+)"/m.exec(readFileSync(join(root, "wrangler.toml"), "utf8"))?.[1];
}

async function runOne(mf, options, label) {
  const response = await mf.dispatchFetch("http://simulator/", {
    method: "POST",
    body: JSON.stringify({ ...options, progressEvery: 5000 }),
  });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffered += value;
    let newline;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      const message = JSON.parse(buffered.slice(0, newline));
      buffered = buffered.slice(newline + 1);
      if (message.progress) log(`${label}: ${message.progress.arrivals} arrivals, ${Math.round(message.progress.virtualSeconds)} s of virtual time`);
      if (message.error) throw new Error(`${label}: ${message.error}`);
      if (message.result) return message.result;
    }
  }
  throw new Error(`${label}: the simulator answered no result`);
}

const s = (x) => (Number.isFinite(x) ? (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2)) : "–");
const pct = (x) => (Number.isFinite(x) ? `${(x * 100).toFixed(1)} %` : "–");
const tally = (record) =>
  Object.entries(record)
    .map(([key, n]) => `${n} ${key}`)
    .join(", ") || "0";

function table(rows) {
  const header = [
    ...dimensions.map((d) => d.label),
    "arrivals",
    "served",
    "utilisation",
    "wait p50 s",
    "p95 s",
    "p99 s",
    "mean s",
    "waited",
    "rejected",
    "timed out",
    "browsers launched",
    "mean browsers",
  ];
  const lines = [`| ${header.join(" | ")} |`, `|${header.map(() => "---").join("|")}|`];
  for (const { values, result: r } of rows) {
    const failed = tally(r.failed);
    lines.push(
      `| ${[
        ...values.map(String),
        r.arrivals,
        r.served,
        pct(r.utilisation),
        s(r.wait.p50),
        s(r.wait.p95),
        s(r.wait.p99),
        s(r.wait.mean),
        pct(r.waitedShare),
        tally(r.rejected),
        failed === "0" ? r.timedOut : `${r.timedOut} (+ ${failed})`,
        r.launched,
        s(r.meanBrowsers),
      ].join(" | ")} |`,
    );
  }
  return lines.join("\n");
}

async function main() {
  const out = mkdtempSync(join(tmpdir(), "simulate-"));
  const script = join(out, "worker.js");
  let mf;
  try {
    log("bundling sim/worker.ts (esbuild)");
    execFileSync(
      join(root, "node_modules", ".bin", "esbuild"),
      ["sim/worker.ts", "--bundle", "--format=esm", "--platform=browser", "--target=es2022", "--external:cloudflare:*", `--outfile=${script}`, "--log-level=warning"],
      { cwd: root, stdio: ["ignore", "inherit", "inherit"] },
    );
    mf = new Miniflare({
      modules: true,
      scriptPath: script,
      modulesRoot: out,
      compatibilityDate: compatibilityDate(),
      durableObjects: { SIMULATOR: { className: "Simulator", useSQLite: true } },
    });
    await mf.ready;
    const rows = [];
    for (const [i, candidate] of candidates.entries()) {
      const label = `${i + 1}/${candidates.length} ${dimensions.map((d, j) => `${d.label}=${candidate.values[j]}`).join(" ")}`;
      const t0 = Date.now();
      const result = await runOne(mf, candidate.options, label);
      const wallSeconds = (Date.now() - t0) / 1000;
      if (result.violations.length > 0) log(`${label}: the pool's invariants were broken: ${result.violations.join("; ")}`);
      log(`${label}: done in ${wallSeconds.toFixed(1)} s wall (${result.transitions} transitions)`);
      rows.push({ ...candidate, result, wallSeconds });
    }
    const wall = (Date.now() - started) / 1000;
    const cpu = `${cpus()[0]?.model ?? "unknown CPU"} (${cpus().length} cores)`;
    console.log(`\n\`npm run simulate -- ${process.argv.slice(2).join(" ")}\`\n`);
    console.log(`${traffic}; waits in seconds; launch ${base.launchDist}, reset ${base.resetSeconds} s, close ${base.closeSeconds} s, warm-up ${base.warmupSeconds} s.\n`);
    console.log(table(rows));
    console.log(`\n${cpu}, Node ${process.version}; ${candidates.length} run(s) in ${wall.toFixed(1)} s wall.`);
    if (flags.json) {
      writeFileSync(flags.json, `${JSON.stringify({ command: process.argv.slice(2), traffic, cpu, wallSeconds: wall, rows: rows.map(({ values, options, result, wallSeconds }) => ({ values, options: { ...options, arrivals: undefined }, result, wallSeconds })) }, null, 2)}\n`);
      log(`wrote ${flags.json}`);
    }
  } finally {
    await mf?.dispose();
    rmSync(out, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
