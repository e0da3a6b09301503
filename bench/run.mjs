#!/usr/bin/env node
/**
 * `npm run bench`: what the broker adds to what a Durable Object costs.
 *
 * Runs the broker Worker and its pool objects in workerd through Miniflare's
 * API (no `wrangler dev` proxy), beside a baseline Worker + Durable Object and
 * an in-workerd driver (bench/workers/driver.ts) that plays the clients. All
 * in one run, interleaved where two figures are compared:
 *
 *   baseline  an op = two Worker → DO RPCs, each one SQLite write (an
 *             acquire + release is two Worker → DO round trips too)
 *   warm      an op = acquire + release over the broker's HTTP path, on a pool
 *             of reusable simulated sessions (the broker's own cost)
 *   scaling   warm, on pools holding 10 / 1,000 / 10,000 tracked leases, and
 *             with 1,000 / 10,000 callers queued
 *   cold      broker acquire with a real Chromium launch vs. a raw
 *             `puppeteer.launch` (and `puppeteer.acquire`) through the binding
 *   reuse     broker acquire of a warm real session vs. cold
 *
 * Concurrency 1 and 50. Prints progress and markdown tables, writes
 * bench/results.json. Localhost only; bounded (about 5 minutes here).
 * Environment: BENCH_WINDOW_MS (default 3000), BENCH_ROUNDS (default 3),
 * BENCH_COLD_SAMPLES (default 9), BENCH_PHASES (default "warm,scaling,real";
 * e.g. "warm" alone while working on the hot path), BENCH_KEY_CACHE_MS (the
 * broker's MANAGED_KEY_CACHE_MS, default 0 as in production: compare the
 * getManaged probe with 0 and 1000).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { cpus, freemem, release, tmpdir, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { cleanUpRun, runTmpDir } from "../scripts/lib/browsers.mjs";
import { profileDuring, summarize } from "./profile.mjs";
import { benchBlock, writeReadmeBlock } from "./readme.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..");
// The Miniflare (and so the workerd) that the pinned wrangler runs, not another copy in node_modules.
const fromWrangler = createRequire(createRequire(import.meta.url).resolve("wrangler/package.json"));
const { Miniflare } = fromWrangler("miniflare");
const miniflareVersion = fromWrangler("miniflare/package.json").version;
const WINDOW_MS = Number(process.env.BENCH_WINDOW_MS ?? 3000);
const KEY_CACHE_MS = process.env.BENCH_KEY_CACHE_MS ?? "0";
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const COLD_SAMPLES = Number(process.env.BENCH_COLD_SAMPLES ?? 9);
const PROFILE = process.env.BENCH_PROFILE === "1";
const PHASES = new Set((process.env.BENCH_PHASES ?? "warm,scaling,real").split(",").map((p) => p.trim()));
const CONCURRENCY = (process.env.BENCH_CONCURRENCY ?? "1,50").split(",").map(Number);
const TRACKED = [10, 1_000, 10_000];
/**
 * Callers kept queued in the scaling rows: 1,000, and as many as a pool's
 * queue holds (maxWaiters is at most 10,000) beside the `c` callers cycling
 * through its sessions, so that a caller coming back after its release finds
 * room and waits instead of being refused (a refused loop would retry at once
 * and measure a storm of refusals, not the queue).
 */
const MAX_QUEUE = 10_000;
const WAITERS = [1_000, MAX_QUEUE];
const queuedBeside = (waiters, c) => Math.min(waiters, MAX_QUEUE - c);

const started = Date.now();
const log = (message) => console.log(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${message}`);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const r1 = (x) => Math.round(x * 10) / 10;
const r2 = (x) => Math.round(x * 100) / 100;

// ---- build ---------------------------------------------------------------------

function bundle(outdir, config) {
  execFileSync(join(root, "node_modules", ".bin", "wrangler"), ["deploy", "--dry-run", "--outdir", outdir, ...(config ? ["--config", config] : [])], {
    cwd: root,
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
  });
}

function compatibility() {
  const toml = readFileSync(join(root, "wrangler.toml"), "utf8");
  const date = /^compatibility_date\s*=\s*"([^"]+)"/m.exec(toml)?.[1];
  const flags = JSON.parse(/^compatibility_flags\s*=\s*(\[[^\]]*\])/m.exec(toml)?.[1] ?? "[]");
  return { compatibilityDate: date, compatibilityFlags: flags };
}

// ---- workerd ---------------------------------------------------------------------

function miniflare(out, brokerVars) {
  const compat = compatibility();
  return new Miniflare({
    ...(PROFILE ? { inspectorPort: 0 } : {}),
    workers: [
      {
        name: "driver",
        modules: true,
        scriptPath: join(out, "driver", "driver.js"),
        modulesRoot: join(out, "driver"),
        compatibilityDate: compat.compatibilityDate,
        compatibilityFlags: ["nodejs_compat"],
        serviceBindings: { BROKER: "broker", BASELINE: "baseline" },
        durableObjects: { BASELINE_DO: { className: "Baseline", scriptName: "baseline", useSQLite: true } },
        browserRendering: { binding: "BROWSER" },
      },
      {
        name: "baseline",
        modules: true,
        scriptPath: join(out, "driver", "driver.js"),
        modulesRoot: join(out, "driver"),
        compatibilityDate: compat.compatibilityDate,
        compatibilityFlags: ["nodejs_compat"],
        durableObjects: { BASELINE_DO: { className: "Baseline", useSQLite: true } },
        browserRendering: { binding: "BROWSER" },
      },
      {
        name: "broker",
        ...(PROFILE ? { unsafeInspectorProxy: true } : {}),
        modules: true,
        scriptPath: join(out, "broker", "index.js"),
        modulesRoot: join(out, "broker"),
        ...compat,
        durableObjects: {
          POOL: { className: "PoolObject", useSQLite: true },
          REGISTRY: { className: "SessionRegistry", useSQLite: true },
          GOVERNOR: { className: "CapacityGovernor", useSQLite: true },
          TENANT: { className: "TenantObject", useSQLite: true },
          RECORDER: { className: "LeaseRecorder", useSQLite: true },
        },
        // Recorded leases' frames (in memory: the bench records nothing it keeps).
        r2Buckets: ["RECORDINGS", "PROFILES"],
        browserRendering: { binding: "BROWSER" },
        // Every request pays for the per-key limiter, as in production; the
        // limit is high enough that the benchmark measures the broker, not it.
        ratelimits: { RATE_LIMITER: { namespace_id: "1001", simple: { limit: 1_000_000_000, period: 10 } } },
        bindings: {
          API_KEYS: JSON.stringify({ "bench-key": "bench" }),
          ADMIN_TOKEN: "bench-admin",
          MANAGED_KEY_CACHE_MS: KEY_CACHE_MS,
          MAX_SESSIONS_PER_POOL: "120",
          // The bench creates many pools under one tenant: quotas out of its way.
          TENANT_MAX_POOLS: "10000",
          TENANT_MAX_SESSIONS: "100000",
          // Every launch still asks the account's governor for a permit (a real
          // cost, in the cold figures); its limits are out of the bench's way.
          ACCOUNT_MAX_CONCURRENT_SESSIONS: "100000",
          ACCOUNT_LAUNCHES_PER_SECOND: "100000",
          ...brokerVars,
        },
      },
    ],
  });
}

/** Resident memory of the workerd processes under this one (Linux), in MiB. */
function workerdRssMiB() {
  if (process.platform !== "linux") return NaN;
  let total = 0;
  for (const pid of readdirSync("/proc").filter((e) => /^\d+$/.test(e))) {
    try {
      const status = readFileSync(`/proc/${pid}/status`, "utf8");
      if (!/^Name:\s+workerd$/m.test(status)) continue;
      const ppid = Number(/^PPid:\s+(\d+)/m.exec(status)?.[1]);
      if (ppid !== process.pid) continue;
      total += Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0) / 1024;
    } catch {
      // exited meanwhile
    }
  }
  return total;
}

class Bench {
  constructor(mf) {
    this.mf = mf;
  }

  async driver(path, body) {
    const response = await this.mf.dispatchFetch(`http://driver${path}`, { method: "POST", body: JSON.stringify(body) });
    const json = await response.json();
    if (!response.ok) throw new Error(`driver ${path}: ${json.error ?? response.status}`);
    return json;
  }

  broker(method, path, body) {
    return this.request("bench-key", method, path, body);
  }

  /** The broker's admin API (the bench's admin token). */
  admin(method, path, body) {
    return this.request("bench-admin", method, path, body);
  }

  async request(token, method, path, body) {
    const worker = await this.mf.getWorker("broker");
    const response = await worker.fetch(`http://broker${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const json = await response.json();
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(json)}`);
    return json;
  }

  /** Creates a pool and waits (by polling its counts) until `until` holds. */
  async pool(name, config, until = (counts) => counts.idle >= (config.minIdle ?? 0)) {
    await this.broker("PUT", `/v1/pools/${name}`, config);
    return this.until(name, until);
  }

  async until(name, predicate, timeoutMs = 60_000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { counts } = await this.broker("GET", `/v1/pools/${name}`);
      if (predicate(counts)) return counts;
      if (Date.now() > deadline) throw new Error(`pool ${name} did not settle: ${JSON.stringify(counts)}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  run(spec) {
    return this.driver("/run", { warmupMs: 300, durationMs: WINDOW_MS, waiters: 0, ...spec });
  }
}

// The warm hot path: sessions reused without end (a recycled session would add a launch to
// the figures: maxSessionUses defaults to 100), and leases nobody connects to kept (the driver never connects).
const warmPool = (c) => ({
  maxSessions: c,
  minIdle: c,
  reuse: true,
  maxWaiters: MAX_QUEUE,
  idleTimeoutSeconds: 540,
  defaultTtlSeconds: 300,
  maxTtlSeconds: 300,
  maxSessionUses: 0,
  maxSessionAgeSeconds: 0,
  connectWithinSeconds: 0,
});

// ---- phases ----------------------------------------------------------------------

const PROBES = (process.env.BENCH_PROBES ?? "healthz,get,getManaged,renew").split(",");

async function warm(bench) {
  const warm = {};
  for (const c of CONCURRENCY) {
    const pool = `warm-${c}`;
    await bench.pool(pool, warmPool(c));
    const runs = { baseline: [], broker: [], ...Object.fromEntries(PROBES.map((p) => [p, []])) };
    // A managed key of the bench tenant (admin API), for the getManaged probe.
    const managedKey = PROBES.includes("getManaged") ? (await bench.admin("POST", "/v1/admin/tenants/bench/keys", { name: `bench c=${c}` })).key : undefined;
    const spec = (target) => ({ target, pool, concurrency: c, ...(target === "getManaged" ? { apiKey: managedKey } : {}) });
    for (let round = 1; round <= ROUNDS; round += 1) {
      // Interleaved, so a noisy neighbour hits every figure alike.
      for (const target of Object.keys(runs)) {
        if (PROFILE && round === 1 && target === "broker") {
          const { result, profile } = await profileDuring(bench.mf, "broker", () => bench.run(spec(target)), `broker-warm-c${c}`);
          runs[target].push(result);
          log(`profile of the broker's isolate, warm c=${c} (self time; bench/out/broker-warm-c${c}.cpuprofile):`);
          console.table(summarize(profile));
        } else {
          runs[target].push(await bench.run(spec(target)));
        }
      }
      log(`warm c=${c} round ${round}/${ROUNDS}: ${Object.entries(runs).map(([t, r]) => `${t} ${r1(r.at(-1).opsPerSecond)}`).join(", ")} ops/s`);
    }
    const pick = (list) => list.find((r) => r.opsPerSecond === median(list.map((x) => x.opsPerSecond)));
    const b = pick(runs.baseline);
    const w = pick(runs.broker);
    warm[c] = {
      baseline_ops_per_s: r1(b.opsPerSecond),
      broker_ops_per_s: r1(w.opsPerSecond),
      ratio: r2(w.opsPerSecond / b.opsPerSecond),
      p50_ms: r2(w.p50Ms),
      p99_ms: r2(w.p99Ms),
      baseline_p50_ms: r2(b.p50Ms),
      baseline_p99_ms: r2(b.p99Ms),
      breakdown: Object.fromEntries(
        PROBES.map((probe) => {
          const p = pick(runs[probe]);
          return [probe, { ops_per_s: r1(p.opsPerSecond), p50_ms: r2(p.p50Ms), p99_ms: r2(p.p99Ms), ratio: r2(p.opsPerSecond / b.opsPerSecond) }];
        }),
      ),
      errors: summed(Object.values(runs).flat().map((r) => r.errors)),
    };
  }
  return warm;
}

/**
 * Each row is measured against a reference pool (the smallest: TRACKED[0]
 * leases, nobody waiting) in paired rounds, reference then row, so a noisy
 * neighbour or a warming JIT shifts both; the ratio is median over median.
 */
async function scaling(bench) {
  const scaling = [];
  let memory;
  const seeded = async (pool, c, tracked, waiters = 0) => {
    // Admission control would turn away the queue's tail once its expected wait passed the callers'
    // 60 s (a question of this machine's speed): the rows measure what the queue's length costs.
    await bench.pool(pool, { ...warmPool(c), ...(waiters > 0 ? { admission: false } : {}) });
    log(`scaling c=${c}: seeding ${tracked.toLocaleString("en")} leases in ${pool}`);
    await bench.driver("/seed", { pool, count: tracked, concurrency: c });
    await bench.until(pool, (counts) => counts.idle >= c);
  };
  for (const c of CONCURRENCY) {
    // The reference is the smallest row itself; one unmeasured run warms it up.
    const reference = `scale-${c}-${TRACKED[0]}-0`;
    await seeded(reference, c, TRACKED[0]);
    await bench.run({ target: "broker", pool: reference, concurrency: c });
    const allRefRuns = [];
    const rows = [
      ...TRACKED.slice(1).map((tracked) => ({ tracked, waiters: 0 })),
      ...WAITERS.map((waiters) => ({ tracked: TRACKED[0], waiters: queuedBeside(waiters, c) })),
    ];
    for (const row of rows) {
      const pool = `scale-${c}-${row.tracked}-${row.waiters}`;
      await seeded(pool, c, row.tracked, row.waiters);
      const refRuns = [];
      const runs = [];
      let rssBefore;
      let rssPeak = 0;
      for (let round = 1; round <= ROUNDS; round += 1) {
        await bench.until(reference, (counts) => counts.idle >= c && counts.waiting === 0);
        refRuns.push(await bench.run({ target: "broker", pool: reference, concurrency: c }));
        await bench.until(pool, (counts) => counts.idle >= c && counts.waiting === 0);
        if (row.waiters > 0) log(`scaling c=${c}: queueing ${row.waiters.toLocaleString("en")} callers (round ${round}/${ROUNDS})`);
        rssBefore ??= workerdRssMiB();
        const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, workerdRssMiB())), 250);
        try {
          runs.push(await bench.run({ target: "broker", pool, concurrency: c, waiters: row.waiters }));
        } finally {
          clearInterval(sampler);
        }
      }
      allRefRuns.push(...refRuns);
      const ops = median(runs.map((r) => r.opsPerSecond));
      const refOps = median(refRuns.map((r) => r.opsPerSecond));
      const picked = runs.find((r) => r.opsPerSecond === ops);
      const entry = {
        concurrency: c,
        tracked: row.tracked,
        tracked_after: row.tracked + runs.reduce((sum, r) => sum + r.ops, 0),
        waiters: row.waiters,
        ...(picked.queuedAtStart === undefined ? {} : { queued_at_start: picked.queuedAtStart }),
        ops_per_s: r1(ops),
        p50_ms: r2(picked.p50Ms),
        p99_ms: r2(picked.p99Ms),
        reference_ops_per_s: r1(refOps),
        ratio_to_smallest: r2(ops / refOps),
        errors: summed([...runs, ...refRuns].map((r) => r.errors)),
      };
      scaling.push(entry);
      if (row === rows.at(-1) && c === Math.max(...CONCURRENCY)) {
        memory = {
          waiters: row.waiters,
          workerd_rss_before_mib: r1(rssBefore),
          workerd_rss_peak_mib: r1(rssPeak),
          workerd_rss_growth_mib: r1(rssPeak - rssBefore),
          per_waiter_kib: r1(((rssPeak - rssBefore) * 1024) / row.waiters),
          note: "growth of the whole workerd process's RSS while the waiters queue: the pool object's rows and resolvers, plus each waiter's in-flight broker Worker invocation and driver call, so an upper bound for the pool object",
        };
      }
      log(
        `scaling c=${c} tracked ${row.tracked.toLocaleString("en")} waiters ${row.waiters.toLocaleString("en")}: ${entry.ops_per_s} ops/s vs reference ${entry.reference_ops_per_s} (×${entry.ratio_to_smallest}), p50 ${entry.p50_ms} ms, p99 ${entry.p99_ms} ms${failed(entry.errors)}`,
      );
    }
    // The reference row: every round it ran, beside whichever row.
    const refOps = median(allRefRuns.map((r) => r.opsPerSecond));
    const picked = allRefRuns.find((r) => r.opsPerSecond === refOps);
    scaling.splice(scaling.length - rows.length, 0, {
      concurrency: c,
      tracked: TRACKED[0],
      tracked_after: TRACKED[0] + allRefRuns.reduce((sum, r) => sum + r.ops, 0),
      waiters: 0,
      ops_per_s: r1(refOps),
      p50_ms: r2(picked.p50Ms),
      p99_ms: r2(picked.p99Ms),
      reference_ops_per_s: r1(refOps),
      ratio_to_smallest: 1,
      errors: summed(allRefRuns.map((r) => r.errors)),
    });
  }
  return { scaling, memory };
}

async function coldAndReuse(bench) {
  // Cold: a pool that never reuses, so each acquire launches; release closes.
  await bench.pool("cold", { maxSessions: 2, minIdle: 0, reuse: false, launchTimeoutSeconds: 60 });
  log("cold: first Chromium start (not counted)");
  await bench.driver("/launch", { kind: "launch" });
  const samples = { launch: [], acquire: [], broker: [] };
  const measure = {
    launch: async () => (await bench.driver("/launch", { kind: "launch" })).ms,
    acquire: async () => (await bench.driver("/launch", { kind: "acquire" })).ms,
    broker: async () => {
      const { ms } = await bench.driver("/acquire", { pool: "cold" });
      // Released without reuse, so closed: wait until the browser has ended.
      await bench.until("cold", (counts) => counts.closing === 0 && counts.leased === 0);
      return ms;
    },
  };
  const kinds = Object.keys(measure);
  for (let i = 1; i <= COLD_SAMPLES; i += 1) {
    // The order rotates, so none of the three always runs right after another's browser closed.
    for (let k = 0; k < kinds.length; k += 1) {
      const kind = kinds[(i + k) % kinds.length];
      samples[kind].push(await measure[kind]());
    }
    log(`cold ${i}/${COLD_SAMPLES}: puppeteer.launch ${samples.launch.at(-1)} ms, puppeteer.acquire ${samples.acquire.at(-1)} ms, broker acquire ${samples.broker.at(-1)} ms`);
  }
  const raw = samples.launch;
  const rawAcquire = samples.acquire;
  const broker = samples.broker;
  // Reuse: one warm session, cleaned between leases.
  await bench.pool("reuse", { maxSessions: 1, minIdle: 1, reuse: true, launchTimeoutSeconds: 60 });
  const warm = [];
  for (let i = 1; i <= COLD_SAMPLES * 2; i += 1) {
    await bench.until("reuse", (counts) => counts.idle === 1);
    warm.push((await bench.driver("/acquire", { pool: "reuse" })).ms);
  }
  log(`reuse: warm acquires ${warm.join(", ")} ms`);
  const cold = {
    raw_launch_ms: median(raw),
    raw_acquire_ms: median(rawAcquire),
    broker_acquire_ms: median(broker),
    ratio: r2(median(broker) / median(raw)),
    ratio_to_raw_acquire: r2(median(broker) / median(rawAcquire)),
    samples: { raw_launch_ms: raw, raw_acquire_ms: rawAcquire, broker_acquire_ms: broker },
  };
  const reuse = { acquire_ms: median(warm), speedup_vs_cold: r1(median(broker) / Math.max(median(warm), 1)), samples_ms: warm };
  return { cold, reuse };
}

// ---- report ----------------------------------------------------------------------

function table(results) {
  const lines = [];
  lines.push("| measurement | concurrency | ops/s | p50 ms | p99 ms | ratio |", "|---|---|---|---|---|---|");
  const probeNames = {
    healthz: "probe: 2 × GET /healthz (Worker routing only)",
    get: "probe: 2 × GET lease (key check + RPC + 1 SELECT)",
    getManaged: "probe: 2 × GET lease, managed key (+ tenant object RPC per request)",
    renew: "probe: 2 × renew (key check + RPC + write transition)",
  };
  for (const [c, w] of Object.entries(results.warm_by_concurrency ?? {})) {
    lines.push(`| baseline (2 × Worker → DO RPC + 1 SQLite write) | ${c} | ${w.baseline_ops_per_s} | ${w.baseline_p50_ms} | ${w.baseline_p99_ms} | 1 |`);
    lines.push(`| warm acquire + release | ${c} | ${w.broker_ops_per_s} | ${w.p50_ms} | ${w.p99_ms} | **${w.ratio}** |`);
    for (const [probe, p] of Object.entries(w.breakdown ?? {})) {
      lines.push(`| ${probeNames[probe] ?? probe} | ${c} | ${p.ops_per_s} | ${p.p50_ms} | ${p.p99_ms} | ${p.ratio} |`);
    }
  }
  for (const s of results.scaling ?? []) {
    lines.push(
      `| scaling: ${s.tracked.toLocaleString("en")} tracked, ${s.waiters.toLocaleString("en")} waiting | ${s.concurrency} | ${s.ops_per_s} | ${s.p50_ms} | ${s.p99_ms} | **${s.ratio_to_smallest}** of the reference |`,
    );
  }
  if (results.cold) {
    const k = results.cold;
    lines.push(`| cold: raw puppeteer.launch | 1 | | ${k.raw_launch_ms} | | 1 |`);
    lines.push(`| cold: raw puppeteer.acquire | 1 | | ${k.raw_acquire_ms} | | ${r2(k.raw_acquire_ms / k.raw_launch_ms)} |`);
    lines.push(`| cold: broker acquire (launches) | 1 | | ${k.broker_acquire_ms} | | **${k.ratio}** |`);
    lines.push(`| reuse: broker acquire of a warm session | 1 | | ${results.reuse.acquire_ms} | | **${results.reuse.speedup_vs_cold}× faster** than cold |`);
  }
  if (results.pool_throughput) {
    const t = results.pool_throughput;
    lines.push(
      "",
      `One pool object, sustained: ${t.pairs_per_s} acquire + release pairs/s (warm, concurrency ${t.concurrency}). ` +
        `The platform: ${t.platform.launches_per_s.join(" or ")} new browsers/s and ${t.platform.concurrent.join(" or ")} concurrent per account. ` +
        `A pool is the bottleneck only if its leases last under ${t.min_hold_ms} ms: ${t.platform.concurrent.at(-1)} browsers each re-leased every ${t.min_hold_ms} ms need ${t.pairs_per_s} pairs/s; ` +
        `${t.launch_rate_multiple}× the fastest launch rate.`,
    );
  }
  if (results.memory) {
    const m = results.memory;
    lines.push(
      "",
      `Memory with ${m.waiters.toLocaleString("en")} waiters: workerd RSS ${m.workerd_rss_before_mib} MiB → peak ${m.workerd_rss_peak_mib} MiB, +${m.workerd_rss_growth_mib} MiB (${m.per_waiter_kib} KiB per waiter; ${m.note}).`,
    );
  }
  return lines.join("\n");
}

/** Several runs' error counts, added up by message. */
function summed(errorsOfRuns) {
  const total = {};
  for (const errors of errorsOfRuns) for (const [message, n] of Object.entries(errors ?? {})) total[message] = (total[message] ?? 0) + n;
  return total;
}

/** ", N requests failed: …" for a run's errors (a failed request is retried at once by its loop, so failures distort the figures), or "". */
function failed(errors) {
  const total = Object.values(errors ?? {}).reduce((sum, n) => sum + n, 0);
  return total === 0 ? "" : `, ${total} requests failed: ${JSON.stringify(errors)}`;
}

/** Every error the measured runs met, by row; empty when none did. */
function errorsSeen(results) {
  const rows = [
    ...Object.entries(results.warm_by_concurrency ?? {}).map(([c, w]) => [`warm c=${c}`, w.errors]),
    ...(results.scaling ?? []).map((s) => [`scaling c=${s.concurrency} tracked ${s.tracked} waiters ${s.waiters}`, s.errors]),
  ];
  return Object.fromEntries(rows.filter(([, errors]) => Object.keys(errors ?? {}).length > 0));
}

/**
 * Issue 19, item 4: what one pool object sustains against what the platform
 * allows an account (Browser Run's published limits, two plan generations):
 * the pool is never the first bottleneck unless leases are shorter than the
 * hold at which the account's largest concurrency would need more pairs per
 * second than the pool serves.
 */
function poolThroughput(warm) {
  const platform = { launches_per_s: [1, 3], concurrent: [120, 200] };
  const pairs = warm.broker_ops_per_s;
  return {
    concurrency: warm.concurrency,
    pairs_per_s: pairs,
    platform,
    min_hold_ms: Math.ceil((platform.concurrent.at(-1) / pairs) * 1000),
    launch_rate_multiple: Math.round(pairs / platform.launches_per_s.at(-1)),
    note: "pairs/s of a warm pool of simulated browsers (the broker's own cost); min_hold_ms: the lease length below which the account's largest concurrency, every browser re-leased as soon as released, would need more pairs/s than one pool object serves",
  };
}

async function main() {
  const out = mkdtempSync(join(tmpdir(), "bench-build-"));
  // Miniflare starts Chromium with its profile under os.tmpdir(): a directory of this run's own.
  const runTmp = runTmpDir("bench-run-");
  process.env.TMPDIR = runTmp;
  const results = { date: new Date().toISOString() };
  try {
    log("bundling the broker and the driver (wrangler deploy --dry-run)");
    bundle(join(out, "broker"));
    bundle(join(out, "driver"), join(here, "workers", "wrangler.toml"));

    log("workerd with simulated browsers: baseline, warm, scaling");
    const sim = miniflare(out, { BROWSER_PROVIDER: "simulated", SIM_LAUNCH_MS: "20", SIM_RESET_MS: "0", SIM_CLOSE_MS: "0", SIM_MAX_BROWSERS: "1000", EVENT_LOGS: "problems" });
    try {
      await sim.ready;
      const bench = new Bench(sim);
      if (PHASES.has("warm")) {
        const byConcurrency = await warm(bench);
        results.warm = { ...byConcurrency[Math.max(...CONCURRENCY)], concurrency: Math.max(...CONCURRENCY) };
        results.warm_by_concurrency = byConcurrency;
        results.pool_throughput = poolThroughput(results.warm);
      }
      if (PHASES.has("scaling")) Object.assign(results, await scaling(bench));
    } finally {
      await sim.dispose();
    }

    if (PHASES.has("real")) {
      log("workerd with real Chromium behind the BROWSER binding: cold, reuse");
      const real = miniflare(out, { EVENT_LOGS: "problems" });
      try {
        await real.ready;
        Object.assign(results, await coldAndReuse(new Bench(real)));
      } finally {
        await real.dispose();
      }
    }
  } finally {
    cleanUpRun(runTmp);
    rmSync(out, { recursive: true, force: true });
  }
  results.machine = {
    cpus: cpus().length,
    cpu_model: cpus()[0]?.model,
    memory_gib: r1(totalmem() / 2 ** 30),
    free_memory_gib: r1(freemem() / 2 ** 30),
    os: `${process.platform} ${release()}`,
    node: process.version,
    miniflare: miniflareVersion,
  };
  results.settings = { managed_key_cache_ms: Number(KEY_CACHE_MS) };
  results.definitions = {
    op: "warm/scaling: one acquire (POST /v1/pools/{pool}/leases) + one release (DELETE …/leases/{id}) through the broker Worker's fetch handler; baseline: two requests to a Worker whose handler makes one RPC to a Durable Object that does one SQLite INSERT",
    ratio: "broker ops/s ÷ baseline ops/s, the median of interleaved rounds",
    clients: "an in-workerd driver calls both Workers through service bindings (no Node HTTP client in the measured path)",
    window_ms: WINDOW_MS,
    rounds: ROUNDS,
  };
  results.duration_s = Math.round((Date.now() - started) / 1000);
  results.errors_seen = errorsSeen(results);
  if (Object.keys(results.errors_seen).length > 0) {
    log(`WARNING: requests failed during measured runs, so those rows do not measure what they name: ${JSON.stringify(results.errors_seen)}`);
  }
  writeFileSync(join(here, "results.json"), JSON.stringify(results, null, 2) + "\n");
  writeReadmeBlock("bench:results", benchBlock(results));
  console.log(`\n${table(results)}\n`);
  log(`wrote bench/results.json and README.md's figures`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
