/**
 * End to end: unmodified puppeteer-core and playwright-core, on Node, drive a
 * leased browser through the broker's connectUrl (wrangler dev serving the
 * Worker, real Chromium behind the BROWSER binding).
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import puppeteer from "puppeteer-core";
import { afterAll, describe, expect, it } from "vitest";
import { acquire, api, brokerUrl, HTML, release, uniquePool, within, withToken } from "./support";

const pools: [string, string | undefined][] = [];
function pool(prefix: string, key?: string): string {
  const name = uniquePool(prefix);
  pools.push([name, key]);
  return name;
}
afterAll(async () => {
  for (const [name, key] of pools) await api(`/v1/pools/${name}/leases`, { method: "DELETE", ...(key ? { key } : {}) });
});

const PNG = [0x89, 0x50, 0x4e, 0x47];

describe("puppeteer-core (browserWSEndpoint)", () => {
  it("connects, evaluates, takes a 1920×1080 screenshot; release disconnects it; the old URL is refused afterwards", async () => {
    const name = pool("pptr");
    const lease = await acquire(name);
    const browser = await puppeteer.connect({ browserWSEndpoint: lease.connectUrl, defaultViewport: { width: 1920, height: 1080 } });
    const page = await browser.newPage();
    await page.goto(HTML("puppeteer"));
    expect(await page.evaluate(() => `${document.title}: ${document.getElementById("h")!.textContent}`)).toBe("puppeteer: hello puppeteer");
    const shot = await page.screenshot({ type: "png" });
    expect([...shot.subarray(0, 4)]).toEqual(PNG);
    // PNG IHDR: width and height, big-endian, at bytes 16-23.
    const view = new DataView(shot.buffer, shot.byteOffset, shot.byteLength);
    expect([view.getUint32(16), view.getUint32(20)]).toEqual([1920, 1080]);

    const disconnected = within<number>(1_000 + 500, "puppeteer's disconnected event", (done) => browser.once("disconnected", () => done(Date.now())));
    const released = await release(name, lease.id);
    const releasedAt = Date.now();
    expect(released.status).toBe(200);
    expect((await disconnected) - releasedAt).toBeLessThan(1_000);

    await expect(puppeteer.connect({ browserWSEndpoint: lease.connectUrl })).rejects.toThrow(/409/);
  });

  it("refuses a forged token and another tenant's lease; a lease can be reconnected while active", async () => {
    const name = pool("pptr");
    pools.push([name, "dev2-key"]);
    const mine = await acquire(name);
    const theirs = await acquire(name, {}, "dev2-key");
    const [tenant] = new URL(mine.connectUrl).searchParams.get("token")!.split(".");
    await expect(puppeteer.connect({ browserWSEndpoint: withToken(mine.connectUrl, `${tenant}.${"x".repeat(43)}`) })).rejects.toThrow(/401/);
    const myToken = new URL(mine.connectUrl).searchParams.get("token")!;
    await expect(puppeteer.connect({ browserWSEndpoint: withToken(theirs.connectUrl, myToken) })).rejects.toThrow(/404/);

    const first = await puppeteer.connect({ browserWSEndpoint: mine.connectUrl });
    const page = await first.newPage();
    await page.goto(HTML("reconnect"));
    await first.disconnect();
    const again = await puppeteer.connect({ browserWSEndpoint: mine.connectUrl });
    const titles = await Promise.all((await again.pages()).map((p) => p.title()));
    expect(titles).toContain("reconnect");
    await again.disconnect();
  });
});

describe("playwright-core (connectOverCDP)", () => {
  it("connects, evaluates, screenshots; release disconnects it; the old URL is refused afterwards", async () => {
    const name = pool("pw");
    const lease = await acquire(name);
    const browser = await chromium.connectOverCDP(lease.connectUrl);
    const context = browser.contexts()[0] ?? (await browser.newContext());
    const page = await context.newPage();
    await page.setViewportSize({ width: 1920, height: 1080 });
    await page.goto(HTML("playwright"));
    expect(await page.evaluate(() => document.getElementById("h")!.textContent)).toBe("hello playwright");
    const shot = await page.screenshot({ type: "png" });
    expect([...shot.subarray(0, 4)]).toEqual(PNG);

    const disconnected = within<number>(1_500, "playwright's disconnected event", (done) => browser.once("disconnected", () => done(Date.now())));
    await release(name, lease.id);
    const releasedAt = Date.now();
    expect((await disconnected) - releasedAt).toBeLessThan(1_000);
    await expect(chromium.connectOverCDP(lease.connectUrl)).rejects.toThrow(/409/);
  });

  it("refuses a forged token and another tenant's lease", async () => {
    const name = pool("pw");
    pools.push([name, "dev2-key"]);
    const mine = await acquire(name);
    const theirs = await acquire(name, {}, "dev2-key");
    const token = new URL(mine.connectUrl).searchParams.get("token")!;
    const [tenant] = token.split(".");
    await expect(chromium.connectOverCDP(withToken(mine.connectUrl, `${tenant}.${"y".repeat(43)}`))).rejects.toThrow(/401/);
    await expect(chromium.connectOverCDP(withToken(theirs.connectUrl, token))).rejects.toThrow(/404/);
  });
});

describe("a lease that expires while a client is connected", () => {
  it("disconnects the client, and the next lease never receives that browser's pages", async () => {
    const name = pool("expiry");
    await api(`/v1/pools/${name}`, { method: "PUT", body: { maxSessions: 1, reuse: true } });
    const lease = await acquire(name, { ttlSeconds: 3 });
    const browser = await puppeteer.connect({ browserWSEndpoint: lease.connectUrl });
    const page = await browser.newPage();
    await page.goto(HTML("old-lease-secret"));
    const expiresAt = Date.parse(lease.expiresAt);
    // The alarm fires at expiresAt; the disconnect must follow within 1 s (plus the alarm's own latency).
    const disconnectedAt = await within<number>(expiresAt - Date.now() + 3_000, "disconnect at expiry", (done) =>
      browser.once("disconnected", () => done(Date.now())),
    );
    expect(disconnectedAt).toBeGreaterThanOrEqual(expiresAt - 50);
    expect(disconnectedAt - expiresAt).toBeLessThan(2_000);

    const read = await api(`/v1/pools/${name}/leases/${lease.id}`);
    expect(read.body).toMatchObject({ status: "expired" });
    const next = await acquire(name);
    expect(next.sessionId).not.toBe(lease.sessionId);
    const fresh = await puppeteer.connect({ browserWSEndpoint: next.connectUrl });
    const titles = await Promise.all((await fresh.pages()).map((p) => p.title()));
    expect(titles).not.toContain("old-lease-secret");
    await fresh.disconnect();
    await release(name, next.id);
  });
});

/** Runs a script of this repository with Node, asynchronously (see below). */
function runScript(script: string, args: string[], env: Record<string, string> = {}) {
  // Asynchronously: a blocked event loop would let the broker's idle keep-alive sockets go stale under fetch.
  return new Promise<{ status: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [script, ...args], { env: { ...process.env, ...env }, encoding: "utf8", timeout: 120_000 }, (error, stdout, stderr) =>
      resolve({ status: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe("scripts/walkthrough.mjs walks every row of the API table against the running broker", () => {
  it("every step answers as the contract says", async () => {
    const run = await runScript("scripts/walkthrough.mjs", ["--url", brokerUrl()]);
    expect(run.stdout).not.toMatch(/^FAIL/m);
    expect(run.stdout).toContain("walkthrough: every step answered as the contract says");
    expect(run.status).toBe(0);
  });
});

describe("the examples in examples/ run as documented", () => {
  for (const example of ["puppeteer", "playwright"]) {
    it(`examples/${example}.mjs acquires, screenshots and releases`, async () => {
      const dir = mkdtempSync(join(tmpdir(), "example-"));
      try {
        const out = join(dir, `${example}.png`);
        const pool = uniquePool(`ex-${example}`);
        const run = await runScript(`examples/${example}.mjs`, [], { BROKER_URL: brokerUrl(), POOL: pool, OUT: out });
        expect(run.stderr).toBe("");
        expect(run.status).toBe(0);
        expect(run.stdout).toMatch(/leased [0-9a-f-]{36}/);
        expect(run.stdout).toContain("title: Hello");
        expect(run.stdout).toContain("released: released");
        expect([...readFileSync(out).subarray(0, 4)]).toEqual(PNG);
        const leases = await api(`/v1/pools/${pool}/leases?status=active`);
        expect(leases.body.leases).toEqual([]);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
