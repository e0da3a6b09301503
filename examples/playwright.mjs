#!/usr/bin/env node
/**
 * Lease a browser from the broker and drive it with Playwright over CDP.
 *
 *   npm start                       # in another terminal (or set BROKER_URL)
 *   node examples/playwright.mjs    # writes playwright.png
 *
 * BROKER_URL (default http://localhost:8787), BROKER_KEY (default dev-key),
 * POOL (default examples), OUT (default playwright.png).
 * Needs playwright-core (a devDependency here; `npm i playwright-core` in your project).
 */
import { writeFile } from "node:fs/promises";
import { chromium } from "playwright-core";

const broker = process.env.BROKER_URL ?? "http://localhost:8787";
const key = process.env.BROKER_KEY ?? "dev-key";
const pool = process.env.POOL ?? "examples";
const out = process.env.OUT ?? "playwright.png";
const headers = { authorization: `Bearer ${key}`, "content-type": "application/json" };

// 1. Acquire: wait up to 30 s for a free browser; the lease lasts 60 s unless renewed.
const created = await fetch(`${broker}/v1/pools/${pool}/leases`, {
  method: "POST",
  headers,
  body: JSON.stringify({ ttlSeconds: 60, waitSeconds: 30, labels: { example: "playwright" } }),
});
const lease = await created.json();
if (created.status !== 201) {
  console.error(`acquire failed: ${created.status} ${lease.code}: ${lease.detail}`);
  process.exit(1);
}
console.log(`leased ${lease.id} (browser ${lease.sessionId}) until ${lease.expiresAt}`);

try {
  // 2. Connect: the lease's connectUrl works with connectOverCDP as it is.
  const browser = await chromium.connectOverCDP(lease.connectUrl);
  const context = browser.contexts()[0] ?? (await browser.newContext());
  // 3. Work.
  const page = await context.newPage();
  await page.setViewportSize({ width: 1920, height: 1080 });
  await page.goto(`data:text/html,${encodeURIComponent("<title>Hello</title><h1>Hello from a leased browser</h1>")}`);
  console.log(`title: ${await page.title()}`);
  await writeFile(out, await page.screenshot({ type: "png" }));
  console.log(`screenshot: ${out}`);
  await page.close();
  await browser.close(); // over CDP this only disconnects; the lease still owns the browser
} finally {
  // 4. Release, always: the browser goes back to the pool (or is closed).
  const released = await fetch(`${broker}/v1/pools/${pool}/leases/${lease.id}`, { method: "DELETE", headers });
  console.log(`released: ${(await released.json()).status}`);
}
