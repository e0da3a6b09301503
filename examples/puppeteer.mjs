#!/usr/bin/env node
/**
 * Lease a browser from the broker and drive it with Puppeteer, through the
 * typed client (client/index.ts, built to client/dist by `npm run setup`).
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
import { BrokerClient, BrokerError } from "../client/dist/index.js";

const broker = new BrokerClient({
  baseUrl: process.env.BROKER_URL ?? "http://localhost:8787",
  apiKey: process.env.BROKER_KEY ?? "dev-key",
  // A full pool (429) or a browser still launching (503) is retried after the broker's Retry-After.
  onRetry: ({ status, code, delayMs }) => console.log(`broker busy (${status} ${code}); retrying in ${delayMs} ms`),
});
const pool = process.env.POOL ?? "examples";
const out = process.env.OUT ?? "puppeteer.png";

let leaseId;
try {
  // 1. Acquire: wait up to 30 s for a free browser; the lease lasts 60 s unless renewed.
  //    withLease releases it however the function ends (4.), so the browser always goes back.
  await broker.withLease(
    pool,
    async (lease) => {
      leaseId = lease.id;
      console.log(`leased ${lease.id} (browser ${lease.sessionId}) until ${lease.expiresAt}`);
      // 2. Connect: the lease's connectUrl is an ordinary CDP WebSocket endpoint.
      const browser = await puppeteer.connect({ browserWSEndpoint: lease.connectUrl, defaultViewport: { width: 1920, height: 1080 } });
      // 3. Work.
      const page = await browser.newPage();
      await page.goto(`data:text/html,${encodeURIComponent("<title>Hello</title><h1>Hello from a leased browser</h1>")}`);
      console.log(`title: ${await page.title()}`);
      await writeFile(out, await page.screenshot({ type: "png" }));
      console.log(`screenshot: ${out}`);
      await browser.disconnect();
    },
    {
      ttlSeconds: 60,
      waitSeconds: 30,
      labels: { example: "puppeteer" },
      onReleaseError: (error) => console.error(`release failed (the lease's TTL ends it anyway): ${error}`),
    },
  );
} catch (error) {
  // Before a lease, the error is the acquire's: the broker's answer (after its retries) or the network.
  console.error(leaseId === undefined && error instanceof BrokerError ? `acquire failed: ${error.message}` : error);
  process.exitCode = 1;
}
// 4. Released: read the lease back to show how it ended.
if (leaseId) console.log(`released: ${(await broker.getLease(pool, leaseId)).status}`);
