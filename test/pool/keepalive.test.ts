/**
 * Leased browsers outlive the platform's keep-alive, and the pool's own pings
 * never make the lessee's connect fail. The fault provider plays a platform
 * that ends a browser after `keepAliveMs` without a devtools command, and,
 * for the contention tests, one that accepts a single connection per browser
 * (as Browser Rendering did before September 2026).
 */
import { runInDurableObject } from "cloudflare:test";
import { afterEach, describe, expect, it, vi } from "vitest";
import { providerFactory } from "../../src/browser/factory";
import type { PoolObject } from "../../src/pool/object";
import { tryConnect } from "../support/cdp";
import { call } from "../support/http";
import { faultPool, flush, granted, type TestPool } from "../support/pool";

const KEEP_ALIVE_MS = 60_000;
const realFactory = providerFactory.create;
afterEach(() => {
  providerFactory.create = realFactory;
});


/** A platform with a 60 s keep-alive, on the pool's clock; the pool launches with the same keep-alive. */
async function shortKeepAlive(pool: TestPool): Promise<void> {
  pool.provider.keepAliveMs = KEEP_ALIVE_MS;
  pool.provider.clock = () => pool.clock.now;
  await runInDurableObject(pool.stub, (object: PoolObject) => {
    object.keepAliveMs = KEEP_ALIVE_MS;
  });
}

describe("a lease longer than the keep-alive", () => {
  it("keeps its browser while no client is connected: the pool pings it every half keep-alive", async () => {
    const pool = await faultPool({ maxSessions: 1, connectWithinSeconds: 0, idleTimeoutSeconds: 20 });
    await shortKeepAlive(pool);
    const lease = granted(await pool.acquire({ ttlSeconds: 300 }));
    for (let t = 0; t < 290_000; t += 10_000) await pool.advance(10_000);
    await pool.effectsDone();
    expect(pool.provider.live.has(lease.sessionId!)).toBe(true);
    expect(await pool.stub.getLease(lease.id)).toMatchObject({ ok: true, value: { status: "active", sessionId: lease.sessionId } });
    expect(pool.provider.pings.length).toBeGreaterThanOrEqual(290_000 / (KEEP_ALIVE_MS / 2) - 1);
  });

  it("is not pinged while its client is connected (the client's own traffic counts)", async () => {
    const pool = await faultPool({ maxSessions: 1, connectWithinSeconds: 0 });
    await shortKeepAlive(pool);
    const token = "b".repeat(64);
    const lease = granted(await pool.acquire({ ttlSeconds: 300, tokenHash: token }));
    const opened = await pool.stub.openConnection(lease.id, token, true);
    expect(opened.ok).toBe(true);
    await pool.advance(KEEP_ALIVE_MS);
    await pool.effectsDone();
    expect(pool.provider.pings).toEqual([]);
  });

  it("without the pool's pings, the platform would have ended it (the fault provider's keep-alive is real)", async () => {
    const pool = await faultPool({ maxSessions: 1, connectWithinSeconds: 0 });
    await shortKeepAlive(pool);
    const lease = granted(await pool.acquire({ ttlSeconds: 300 }));
    pool.clock.now += KEEP_ALIVE_MS;
    pool.provider.expire();
    expect(pool.provider.live.has(lease.sessionId!)).toBe(false);
  });
});

describe("a platform that accepts one connection per browser", () => {
  it("a client's connect waits for the pool's keep-alive ping to finish, and is not refused", async () => {
    const pool = await faultPool({ maxSessions: 1, connectWithinSeconds: 0 });
    await shortKeepAlive(pool);
    pool.provider.maxConnections = 1;
    const token = "c".repeat(64);
    const lease = granted(await pool.acquire({ ttlSeconds: 300, tokenHash: token }));
    pool.provider.manualIo = true;
    await pool.advance(KEEP_ALIVE_MS / 2);
    // The ping is under way and holds the browser's one connection.
    expect(pool.provider.pendingIoCount).toBe(1);
    let answered = false;
    const opening = pool.stub.openConnection(lease.id, token, true).then((result) => {
      answered = true;
      return result;
    });
    await flush(pool.stub);
    expect(answered).toBe(false);
    await pool.inside(() => pool.provider.takeIo(0)!.succeed());
    expect((await opening).ok).toBe(true);
    // The client's connection is accepted: the ping's was closed first.
    pool.provider.occupy(lease.sessionId!)();
    expect(pool.provider.refusedConnects).toBe(0);
  });

  it("the CDP proxy retries a connect refused while the browser's one connection is closing, and opens it", async () => {
    const pool = await faultPool({ maxSessions: 1, connectWithinSeconds: 0 });
    pool.provider.maxConnections = 1;
    providerFactory.create = () => pool.provider;
    const acquired = await call(`/v1/pools/${pool.name}/leases`, { method: "POST", body: {} });
    expect(acquired.status).toBe(201);
    // Something else holds the browser's only connection (a conversation about to end).
    const busy = pool.provider.occupy(acquired.body.sessionId);
    const connecting = tryConnect(acquired.body.connectUrl);
    await vi.waitFor(() => expect(pool.provider.refusedConnects).toBeGreaterThan(0), { timeout: 2_000, interval: 5 });
    busy();
    const { status, cdp } = await connecting;
    expect(status).toBe(101);
    expect(await cdp!.send("Browser.getVersion")).toEqual({});
    cdp!.socket.close(1000, "done");
    expect(await pool.stub.getLease(acquired.body.id)).toMatchObject({ ok: true, value: { status: "active" } });
  });

  it("a connect refused every time, of a browser that still runs, answers 503 browser_busy and keeps the lease", async () => {
    const pool = await faultPool({ maxSessions: 1, connectWithinSeconds: 0 });
    pool.provider.maxConnections = 1;
    providerFactory.create = () => pool.provider;
    const acquired = await call(`/v1/pools/${pool.name}/leases`, { method: "POST", body: {} });
    const busy = pool.provider.occupy(acquired.body.sessionId);
    const refused = await tryConnect(acquired.body.connectUrl);
    expect(refused.status).toBe(503);
    expect(refused.body).toMatchObject({ code: "browser_busy" });
    busy();
    expect(await pool.stub.getLease(acquired.body.id)).toMatchObject({ ok: true, value: { status: "active" } });
    await pool.expectConsistent();
  });
});
