/**
 * The CDP connect socket (a lease's connectUrl) through the real Worker, to
 * real Chromium through the BROWSER binding: refusals before any socket is
 * opened, real CDP work through the proxy, every way a lease ends closing its
 * sockets within 1 s, and a browser never handed on while an old client may
 * still be connected.
 */
import { runInDurableObject } from "cloudflare:test";
import { afterAll, describe, expect, it } from "vitest";
import { tokenHash } from "../../src/api/token";
import type { PoolObject } from "../../src/pool/object";
import { DISCONNECT_GRACE_MS, MAX_CONNECTIONS_PER_LEASE } from "../../src/pool/object";
import { controlClock, expectConsistent, liveBrowsers, settled } from "../support/api";
import { connect, openPage, pageUrls, tryConnect } from "../support/cdp";
import { call, DEV2_KEY, poolName } from "../support/http";
import { poolStub } from "../support/pool";

const LEASE_ENDED = 4001;
/** An expression that resolves once the page has loaded. */
const LOADED = "new Promise((r) => (document.readyState === 'complete' ? r() : addEventListener('load', () => r())))";
const used: [string, string][] = [];

function pool(): string {
  const name = poolName("cdp");
  used.push([name, "dev-key"]);
  return name;
}

afterAll(async () => {
  for (const [name, key] of used) await call(`/v1/pools/${name}/leases`, { method: "DELETE", key });
});

async function acquire(name: string, body: Record<string, unknown> = {}, key?: string) {
  const created = await call(`/v1/pools/${name}/leases`, { method: "POST", body: { waitSeconds: 20, ...body }, ...(key ? { key } : {}) });
  if (created.status !== 201) throw new Error(`acquire failed: ${created.status} ${JSON.stringify(created.body)}`);
  return created.body as { id: string; sessionId: string; connectUrl: string; status: string };
}

const release = (name: string, id: string) => call(`/v1/pools/${name}/leases/${id}`, { method: "DELETE" });

/** The connectUrl with its token replaced. */
function withToken(connectUrl: string, token: string | null): string {
  const url = new URL(connectUrl);
  if (token === null) url.searchParams.delete("token");
  else url.searchParams.set("token", token);
  return url.toString();
}

describe("CDP through the lease's connectUrl", () => {
  it("drives the leased browser: version, a data: page, evaluate, screenshot", async () => {
    const name = pool();
    await call(`/v1/pools/${name}`, { method: "PUT", body: { maxSessions: 1 } });
    const lease = await acquire(name);
    const cdp = await connect(lease.connectUrl);
    const version = await cdp.send<{ product: string }>("Browser.getVersion");
    expect(version.product).toMatch(/Chrome/);
    const page = await openPage(cdp, "<title>leased</title><h1 id=h>hello from the lease</h1>");
    const evaluated = await cdp.send<{ result: { value: string } }>(
      "Runtime.evaluate",
      { expression: `${LOADED}.then(() => document.title + ' / ' + document.getElementById('h').textContent)`, awaitPromise: true, returnByValue: true },
      page.sessionId,
    );
    expect(evaluated.result.value).toBe("leased / hello from the lease");
    const shot = await cdp.send<{ data: string }>("Page.captureScreenshot", { format: "png" }, page.sessionId);
    const png = Uint8Array.from(atob(shot.data), (ch) => ch.charCodeAt(0));
    expect([...png.slice(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    expect(png.length).toBeGreaterThan(1000);

    const released = await release(name, lease.id);
    expect(released.status).toBe(200);
    const releasedAt = Date.now();
    const closed = await cdp.closed;
    expect(closed.code).toBe(LEASE_ENDED);
    expect(closed.reason).toBe("lease released");
    expect(closed.at - releasedAt).toBeLessThan(1000);
  });
});
