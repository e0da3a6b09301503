/**
 * The README's Performance section is written by the benchmarks themselves:
 * each owns a block between `<!-- name -->` and `<!-- /name -->` and replaces
 * only what lies between its two markers, so the figures there are always the
 * last run's, with its date and CPU.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const README = join(dirname(fileURLToPath(import.meta.url)), "..", "README.md");

/** `text` with the block `name` holding `body`; throws if the block's markers are not there exactly once each, in order. */
export function replaceBlock(text, name, body) {
  const open = `<!-- ${name} -->`;
  const close = `<!-- /${name} -->`;
  const start = text.indexOf(open);
  const end = text.indexOf(close);
  const once = (marker, at) => at >= 0 && text.indexOf(marker, at + 1) < 0;
  if (!once(open, start) || !once(close, end) || end < start) {
    throw new Error(`README.md needs one "${open}" followed by one "${close}" for the benchmark's figures`);
  }
  return `${text.slice(0, start + open.length)}\n${body.trim()}\n${text.slice(end)}`;
}

/** Replaces the block `name` of README.md with `body`. */
export function writeReadmeBlock(name, body) {
  writeFileSync(README, replaceBlock(readFileSync(README, "utf8"), name, body));
}

const day = (iso) => String(iso).slice(0, 10);
const fixed2 = (x) => (typeof x === "number" ? x.toFixed(2) : "—");
/** A figure against its target: the value, ✓ or ✗. */
const met = (r, format = fixed2) => `${format(r.value)} ${r.met ? "✓" : "✗"}`;

/** The README block of `npm run bench:lifecycle`, from bench/lifecycle.json's contents. */
export function lifecycleBlock(results) {
  const { machine, targets } = results;
  const ms = (variant) => Math.round(results.variants[variant]?.lifecycle?.p50_ms);
  const rows = Object.entries(results.ratios).map(([driver, r]) => {
    const connect = met(r.connect_overhead_ms, (x) => x.toFixed(1));
    return `| ${driver} | ${ms(`${driver} broker warm`)} / ${ms(`${driver} direct warm`)} | ${met(r.warm_lifecycle_ratio)} | ${fixed2(r.back_to_back_lifecycle_ratio.value)} | ${connect} | ${met(r.cold_lifecycle_ratio)} |`;
  });
  const lines = [
    `A lease's whole life (\`npm run bench:lifecycle\`: acquire, connect, first navigation, release), p50 of ${results.rounds} interleaved rounds,`,
    `against the same work on a local Chromium driven directly; ${day(results.date)}, ${machine.cpus} × ${machine.cpu}, Chromium ${String(results.chromium).replace(/^Chrome\//, "")}:`,
    "",
    `| driver | warm lifecycle, broker / direct ms | ÷ direct (≤ ${targets.warmRatio}) | back-to-back ÷ direct | connect − direct, ms (≤ ${targets.connectOverheadMs}) | cold ÷ raw launch (≤ ${targets.coldRatio}) |`,
    "|---|---|---|---|---|---|",
    ...rows,
  ];
  const b = results.connect_breakdown;
  if (b) {
    const w = b.worker_ms;
    lines.push(
      "",
      `Where a connect goes: the CDP socket opens in ${b.upgrade_ms.broker} ms through the broker and ${b.upgrade_ms.direct} ms directly; ` +
        `the Worker's part is ${w.token} ms checking the token, ${w.grant} ms for the pool's grant and ${w.upstream} ms for the browser's socket, ` +
        `the rest is the HTTP layer in front of the Worker (wrangler dev's proxy, locally). A CDP round trip takes ${b.round_trip_ms.broker} ms through the broker and ${b.round_trip_ms.direct} ms directly.`,
    );
  }
  return lines.join("\n");
}

/** The README block of `npm run bench`, from bench/results.json's contents. */
export function benchBlock(results) {
  const { machine } = results;
  const byC = Object.entries(results.warm_by_concurrency ?? {});
  const lines = [
    `The broker's own cost (\`npm run bench\`), as a ratio to a bare Worker → Durable Object → SQLite write measured in the same run`,
    `(higher is better; target ≥ 0.5); ${day(results.date)}, ${machine.cpus} × ${machine.cpu_model}:`,
    "",
    "| measurement | ratio |",
    "|---|---|",
    ...byC.map(([c, w]) => `| warm acquire + release, concurrency ${c} | ${fixed2(w.ratio)} |`),
    ...byC.filter(([, w]) => w.breakdown?.renew).map(([c, w]) => `| renew (one write transition), concurrency ${c} | ${fixed2(w.breakdown.renew.ratio)} |`),
  ];
  if (results.cold) {
    lines.push(`| cold acquire (a launch) ÷ a raw \`puppeteer.launch\` | ${fixed2(results.cold.ratio)} |`);
  }
  if (results.reuse) lines.push(`| warm acquire, ms (cold: ${results.cold?.broker_acquire_ms} ms) | ${results.reuse.acquire_ms} |`);
  const scaled = (results.scaling ?? []).filter((s) => s.tracked > 10 || s.waiters > 0);
  if (scaled.length > 0) {
    const worst = scaled.reduce((a, b) => (b.ratio_to_smallest < a.ratio_to_smallest ? b : a));
    const most = (key) => Math.max(...scaled.map((s) => s[key])).toLocaleString("en");
    lines.push(`| the warm op on a pool tracking up to ${most("tracked")} leases or queueing up to ${most("waiters")} callers ÷ on a small pool (the worst row) | ${fixed2(worst.ratio_to_smallest)} |`);
  }
  if (results.pool_throughput) {
    const t = results.pool_throughput;
    lines.push(
      "",
      `One pool object sustains ${t.pairs_per_s} acquire + release pairs/s, ${t.launch_rate_multiple}× the platform's fastest launch rate (${t.platform.launches_per_s.at(-1)}/s).`,
    );
  }
  const failing = Object.entries(results.errors_seen ?? {});
  if (failing.length > 0) {
    lines.push("", `Requests failed during these measured runs, so their rows do not measure what they name: ${failing.map(([row, errors]) => `${row} (${JSON.stringify(errors)})`).join("; ")}.`);
  }
  return lines.join("\n");
}

/** The README's blocks, from the JSON files the benchmarks last wrote. */
export function readmeBlocks(lifecycle, bench) {
  return { "bench:lifecycle": lifecycleBlock(lifecycle), "bench:results": benchBlock(bench) };
}

// `node bench/readme.mjs`: rewrites both blocks from the committed JSON (after editing the format here).
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const here = dirname(fileURLToPath(import.meta.url));
  const json = (name) => JSON.parse(readFileSync(join(here, name), "utf8"));
  for (const [name, body] of Object.entries(readmeBlocks(json("lifecycle.json"), json("results.json")))) writeReadmeBlock(name, body);
  console.log("bench: README.md's Performance section rewritten from bench/lifecycle.json and bench/results.json");
}
