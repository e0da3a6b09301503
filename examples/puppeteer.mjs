#!/usr/bin/env node
/**
 * Lease a browser from the broker and drive it with Puppeteer.
 *
 *   npm start                      # in another terminal (or set BROKER_URL)
 *   node examples/puppeteer.mjs    # writes puppeteer.png
 *
 * BROKER_URL (default http://localhost:8787), BROKER_KEY (default dev-key),
 * POOL (default examples), OUT (default puppeteer.png).
 * Needs puppeteer-core (a devDependency here; `npm i puppeteer-core` in your project).
 */
import { writeFile } from "node:fs/promises";
import puppeteer from "puppeteer-core";

const broker = process.env.BROKER_URL ?? "http://localhost:8787";
const key = process.env.BROKER_KEY ?? "dev-key";
const pool = process.env.POOL ?? "examples";
const out = process.env.OUT ?? "puppeteer.png";
const headers = { authorization: `Bearer ${key}`, "content-type": "application/json" };

// 1. Acquire: wait up to 30 s for a free browser; the lease lasts 60 s unless renewed.
const created = await fetch(`${broker}/v1/pools/${pool}/leases`, {
  method: "POST",
  headers,
  body: JSON.stringify({ ttlSeconds: 60, waitSeconds: 30, labels: { example: "puppeteer" } }),
});
const lease = await created.json();
if (created.status !== 201) {
  console.error(`acquire failed: ${created.status} ${lease.code}: ${lease.detail}`);
  process.exit(1);
}
console.log(`leased ${lease.id} (browser ${lease.sessionId}) until ${lease.expiresAt}`);

try {
  // 2. Connect: the lease's connectUrl is an ordinary CDP WebSocket endpoint.
  const browser = await puppeteer.connect({ browserWSEndpoint: lease.connectUrl, defaultViewport: { width: 1920, height: 1080 } });
  // 3. Work.
  const page = await browser.newPage();
  await page.goto(`data:text/html,${encodeURIComponent("<title>Hello</title><h1>Hello from a leased browser</h1>")}`);
  console.log(`title: ${await page.title()}`);
  await writeFile(out, await page.screenshot({ type: "png" }));
  console.log(`screenshot: ${out}`);
  await browser.disconnect();
} finally {
  // 4. Release, always: the browser goes back to the pool (or is closed).
  const released = await fetch(`${broker}/v1/pools/${pool}/leases/${lease.id}`, { method: "DELETE", headers });
  console.log(`released: ${(await released.json()).status}`);
}
