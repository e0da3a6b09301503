/**
 * The operators' dashboard in real headless Chromium: a browser leased from
 * the broker itself opens /dashboard with the admin token, the numbers it
 * shows (the pool's and the account's) match the admin API, it refreshes
 * itself when the pool changes, the held lease gets a live thumbnail (a
 * compact viewer of that lease, in an <iframe>), and a screenshot is kept as a
 * test artifact (test-results/dashboard.png).
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import puppeteer, { type Page } from "puppeteer-core";
import { describe, expect, it } from "vitest";
import { acquire, api, brokerUrl, release, uniquePool } from "./support";

const ARTIFACTS = join(import.meta.dirname, "..", "..", "test-results");

async function shown(page: Page, key: string, field: string): Promise<string | null> {
  return page.$eval(`section[data-pool="${key}"] [data-field="${field}"]`, (el) => el.textContent).catch(() => null);
}

describe("GET /dashboard in a real browser", () => {
  it("shows the API's numbers and a live thumbnail of the held lease, refreshes itself, and is saved as a screenshot", async () => {
    // "0…" sorts before other tests' pools: the page gives thumbnails (12 at most) in page order.
    const watched = uniquePool("0dash");
    expect((await api(`/v1/pools/${watched}`, { method: "PUT", body: { maxSessions: 3 } })).status).toBe(200);
    const held = await acquire(watched, { ttlSeconds: 120 });
    const viewerPool = uniquePool("viewer");
    expect((await api(`/v1/pools/${viewerPool}`, { method: "PUT", body: { maxSessions: 1 } })).status).toBe(200);
    const viewer = await acquire(viewerPool, { ttlSeconds: 120 });
    const browser = await puppeteer.connect({ browserWSEndpoint: viewer.connectUrl, defaultViewport: { width: 1440, height: 1000 } });
    try {
      const page = await browser.newPage();
      const opened = await page.goto(`${brokerUrl()}/dashboard?token=dev-admin`, { waitUntil: "domcontentloaded" });
      expect(opened?.status()).toBe(200);
      expect(new URL(page.url()).search).toBe(""); // the token left the address bar
      const key = `dev/${watched}`;
      await page.waitForSelector(`section[data-pool="${key}"]`, { timeout: 15_000 });

      const listed = (await api("/v1/admin/pools?limit=100", { key: "dev-admin" })).body.pools as { tenant: string; pool: string; counts: Record<string, number>; consistent: boolean }[];
      const truth = listed.find((p) => p.tenant === "dev" && p.pool === watched)!;
      for (const field of ["leased", "idle", "launching", "resetting", "closing", "waiting"]) {
        expect(await shown(page, key, field)).toBe(String(truth.counts[field]));
      }
      expect(await shown(page, key, "maxSessions")).toBe("3");
      expect(await shown(page, key, "consistent")).toBe(truth.consistent ? "consistent" : "INCONSISTENT");
      expect(await shown(page, key, "granted")).toBe("1");
      expect(await shown(page, key, "breaker")).toBe("breaker closed");
      expect(await shown(page, key, "governor")).toBeNull(); // the badge appears only while the pool cannot reach the governor

      // The account panel shows the governor's numbers; the dev tenant holds at least the two leases' browsers.
      const capacity = (await api("/v1/admin/capacity", { key: "dev-admin" })).body;
      const account = (field: string) => page.$eval(`#account [data-field="${field}"]`, (el) => el.textContent).catch(() => null);
      expect(await account("limit")).toBe(String(capacity.limits.maxConcurrentSessions));
      expect(await account("launchesPerSecond")).toBe(String(capacity.limits.launchesPerSecond));
      expect(await account("breaker")).toBe(`breaker ${capacity.breaker.state === "half_open" ? "half-open" : capacity.breaker.state}${capacity.breaker.state === "open" ? ` ${capacity.breaker.retryAfterSeconds} s` : ""}`);
      const devHeld = await page.$eval(`#account tr[data-tenant="dev"] [data-field="held"]`, (el) => Number(el.textContent)).catch(() => 0);
      expect(devHeld).toBeGreaterThanOrEqual(2);

      // The held lease's tile has a thumbnail: a compact viewer of that lease, minted by the page, that goes live.
      const frameSelector = `section[data-pool="${key}"] figure.lease[data-lease="${held.id}"] iframe`;
      await page.waitForSelector(frameSelector, { timeout: 15_000 });
      const src = new URL(await page.$eval(frameSelector, (el) => (el as HTMLIFrameElement).src));
      expect(src.pathname).toBe(`/v1/pools/${watched}/leases/${held.id}/viewer`);
      expect(src.searchParams.get("token")).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/);
      expect(src.searchParams.get("compact")).toBe("1");
      const thumbnail = await (await page.$(frameSelector))!.contentFrame();
      await thumbnail!.waitForFunction(() => document.getElementById("state")?.dataset.state === "live", { timeout: 20_000 });

      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: join(ARTIFACTS, "dashboard.png"), fullPage: true });

      // It refreshes by itself: the release shows up without a reload.
      await release(watched, held.id);
      await page.waitForFunction(
        (selector) => document.querySelector(selector)?.textContent === "0",
        { timeout: 15_000 },
        `section[data-pool="${key}"] [data-field="leased"]`,
      );
      // The ended lease's tile (and its viewer) leaves the page.
      await page.waitForFunction((selector) => !document.querySelector(selector), { timeout: 15_000 }, `section[data-pool="${key}"] figure.lease[data-lease="${held.id}"]`);
      const after = (await api(`/v1/pools/${watched}`)).body;
      expect(await shown(page, key, "leased")).toBe(String(after.counts.leased));
    } finally {
      browser.disconnect();
      await release(viewerPool, viewer.id);
    }
  }, 90_000);
});
