#!/usr/bin/env node
/**
 * `npm run bench:cdp`: what the CDP proxy costs. Starts the broker (wrangler
 * dev, real Chromium behind the BROWSER binding), leases a browser and, in the
 * same run, interleaving the two so noisy neighbours hit both alike, measures:
 *
 *   - connect: puppeteer.connect to the lease's connectUrl (through the Worker)
 *     vs. puppeteer.connect straight to a Chromium's own DevTools endpoint;
 *   - screenshot: a 1920×1080 PNG of the same page, through each connection.
 *
 * Prints progress and a markdown table; writes bench/cdp-results.json.
 * ROUNDS (default 15) sets the samples per measurement. Localhost only.
 */
import { existsSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import puppeteer from "puppeteer-core";
import { startBroker } from "../scripts/lib/broker.mjs";

const ROUNDS = Number(process.env.ROUNDS ?? 15);
const here = dirname(fileURLToPath(import.meta.url));
const chromePath = process.env.CHROME_PATH ?? "/usr/bin/chromium";
if (!existsSync(chromePath)) {
  console.error(`bench: no Chromium at ${chromePath}; run \`npm run setup\` or set CHROME_PATH`);
  process.exit(1);
}

const PAGE = `<!doctype html><title>bench</title>
<style>body{margin:0;font:24px sans-serif;background:linear-gradient(135deg,#0b3d91,#f38020)}
.card{margin:40px;padding:40px;background:#fff;border-radius:16px;box-shadow:0 8px 32px #0006}</style>
${Array.from({ length: 12 }, (_, i) => `<div class="card"><h2>Card ${i + 1}</h2><p>${"Lorem ipsum dolor sit amet. ".repeat(12)}</p></div>`).join("")}`;

const quantile = (xs, q) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
};
const stats = (xs) => ({ p50_ms: round(quantile(xs, 0.5)), p95_ms: round(quantile(xs, 0.95)), n: xs.length });
const round = (x) => Math.round(x * 10) / 10;
const time = async (fn) => {
  const started = performance.now();
  const value = await fn();
  return [performance.now() - started, value];
};

async function preparePage(browser) {
  const page = await browser.newPage();
  await page.setViewport({ width: 1920, height: 1080 });
  await page.setContent(PAGE);
  await page.screenshot({ type: "png" }); // warm-up
  return page;
}

const broker = await startBroker();
console.log(`bench: broker on ${broker.url}`);
const direct = await puppeteer.launch({
  executablePath: chromePath,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const headers = { authorization: "Bearer dev-key", "content-type": "application/json" };
const pool = `bench-cdp-${Date.now().toString(36)}`;
let lease;
try {
  await fetch(`${broker.url}/v1/pools/${pool}`, { method: "PUT", headers, body: JSON.stringify({ maxSessions: 1 }) });
  const [acquireMs, created] = await time(() =>
    fetch(`${broker.url}/v1/pools/${pool}/leases`, { method: "POST", headers, body: JSON.stringify({ ttlSeconds: 600, waitSeconds: 30 }) }),
  );
  lease = await created.json();
  if (created.status !== 201) throw new Error(`acquire failed: ${created.status} ${JSON.stringify(lease)}`);
  console.log(`bench: leased ${lease.id} in ${round(acquireMs)} ms (cold launch)`);

  const samples = { proxyConnect: [], directConnect: [], proxyShot: [], directShot: [] };
  for (let i = 0; i < ROUNDS; i += 1) {
    const [p] = await time(async () => (await puppeteer.connect({ browserWSEndpoint: lease.connectUrl })).disconnect());
    const [d] = await time(async () => (await puppeteer.connect({ browserWSEndpoint: direct.wsEndpoint() })).disconnect());
    samples.proxyConnect.push(p);
    samples.directConnect.push(d);
    process.stdout.write(`\rbench: connect ${i + 1}/${ROUNDS}`);
  }
  process.stdout.write("\n");

  const viaProxy = await puppeteer.connect({ browserWSEndpoint: lease.connectUrl });
  const viaDirect = await puppeteer.connect({ browserWSEndpoint: direct.wsEndpoint() });
  const [proxyPage, directPage] = [await preparePage(viaProxy), await preparePage(viaDirect)];
  let bytes = 0;
  for (let i = 0; i < ROUNDS; i += 1) {
    const [p, png] = await time(() => proxyPage.screenshot({ type: "png" }));
    const [d] = await time(() => directPage.screenshot({ type: "png" }));
    samples.proxyShot.push(p);
    samples.directShot.push(d);
    bytes = png.length;
    process.stdout.write(`\rbench: screenshot ${i + 1}/${ROUNDS}`);
  }
  process.stdout.write("\n");
  await viaProxy.disconnect();
  await viaDirect.disconnect();

  const connect = { proxy: stats(samples.proxyConnect), direct: stats(samples.directConnect) };
  const screenshot = { proxy: stats(samples.proxyShot), direct: stats(samples.directShot), png_bytes: bytes };
  const ratio = (a, b) => Math.round((a / b) * 100) / 100;
  const results = {
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, cpu: cpus()[0]?.model, memory_gb: round(totalmem() / 2 ** 30), node: process.version },
    rounds: ROUNDS,
    cold_acquire_ms: round(acquireMs),
    connect: { ...connect, ratio_p50: ratio(connect.proxy.p50_ms, connect.direct.p50_ms) },
    screenshot_1920x1080: { ...screenshot, ratio_p50: ratio(screenshot.proxy.p50_ms, screenshot.direct.p50_ms) },
  };
  console.log(`
| measurement (${ROUNDS} rounds, interleaved) | through the broker p50 / p95 | direct p50 / p95 | ratio (p50) |
|---|---|---|---|
| puppeteer.connect | ${connect.proxy.p50_ms} / ${connect.proxy.p95_ms} ms | ${connect.direct.p50_ms} / ${connect.direct.p95_ms} ms | ${results.connect.ratio_p50}× |
| 1920×1080 PNG screenshot (${Math.round(bytes / 1024)} KiB) | ${screenshot.proxy.p50_ms} / ${screenshot.proxy.p95_ms} ms | ${screenshot.direct.p50_ms} / ${screenshot.direct.p95_ms} ms | ${results.screenshot_1920x1080.ratio_p50}× |

cold acquire (launch through the binding): ${round(acquireMs)} ms`);
  writeFileSync(join(here, "cdp-results.json"), `${JSON.stringify(results, null, 2)}\n`);
  console.log("bench: wrote bench/cdp-results.json");
} finally {
  if (lease) await fetch(`${broker.url}/v1/pools/${pool}/leases/${lease.id}`, { method: "DELETE", headers }).catch(() => undefined);
  await direct.close();
  await broker.stop();
}
