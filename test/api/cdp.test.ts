/**
 * The CDP connect socket (a lease's connectUrl) through the real Worker, to
 * real Chromium through the BROWSER binding: refusals before any socket is
 * opened, real CDP work through the proxy, every way a lease ends closing its
 * sockets within 1 s, and a browser never handed on while an old client may
 * still be connected.
 */
import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { afterAll, describe, expect, it, vi } from "vitest";
import { tokenHash } from "../../src/token";
import type { PoolObject } from "../../src/pool/object";
import { MAX_CONNECTIONS_PER_LEASE } from "../../src/pool/connections";
import { DISCONNECT_GRACE_MS } from "../../src/pool/effects";
import { controlClock, expectConsistent, liveBrowsers, effectsDone } from "../support/api";
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
    const logged = vi.spyOn(console, "log");
    const cdp = await connect(lease.connectUrl);
    const version = await cdp.send<{ product: string }>("Browser.getVersion");
    expect(version.product).toMatch(/Chrome/);
    // The proxy says where the connect's time went (the lifecycle benchmark reads it).
    const opened = logged.mock.calls.flatMap(([line]) => (String(line).startsWith("{") ? [JSON.parse(String(line))] : [])).find((e) => e.event === "cdp_opened" && e.leaseId === lease.id);
    logged.mockRestore();
    expect(opened?.ms).toEqual({ token: expect.any(Number), grant: expect.any(Number), upstream: expect.any(Number) });
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

describe("refused before any socket is opened", () => {
  it("missing, malformed or forged tokens get 401; unknown leases and tenants 404; ended leases 409", async () => {
    const name = pool();
    await call(`/v1/pools/${name}`, { method: "PUT", body: { maxSessions: 1 } });
    const lease = await acquire(name);
    const [tenantPart] = new URL(lease.connectUrl).searchParams.get("token")!.split(".");
    const forged = `${tenantPart}.${"A".repeat(43)}`;

    const cases: [string, string, number, string][] = [
      ["missing token", withToken(lease.connectUrl, null), 401, "unauthorized"],
      ["malformed token", withToken(lease.connectUrl, "not-a-token"), 401, "unauthorized"],
      ["forged secret", withToken(lease.connectUrl, forged), 401, "unauthorized"],
      ["unknown tenant", withToken(lease.connectUrl, `${btoa("nobody")}.${"A".repeat(43)}`), 404, "not_found"],
      ["unknown lease", lease.connectUrl.replace(lease.id, crypto.randomUUID()), 404, "not_found"],
      ["bad lease id", lease.connectUrl.replace(lease.id, "nope"), 400, "invalid_request"],
    ];
    for (const [what, url, status, code] of cases) {
      const refused = await tryConnect(url);
      expect({ what, status: refused.status, code: refused.body?.code, socket: refused.cdp === undefined }).toEqual({
        what,
        status,
        code,
        socket: true,
      });
    }

    // A plain GET (no Upgrade) with a valid token is told to use a WebSocket client.
    const plain = await call(new URL(lease.connectUrl).pathname + new URL(lease.connectUrl).search, { key: null });
    expect(plain.status).toBe(426);
    expect(plain.body.code).toBe("upgrade_required");
    expect(plain.headers.get("content-type")).toBe("application/problem+json");

    // The lease is unharmed by all of that, and a released one refuses its own URL.
    const cdp = await connect(lease.connectUrl);
    await release(name, lease.id);
    await cdp.closed;
    const late = await tryConnect(lease.connectUrl);
    expect(late).toMatchObject({ status: 409, body: { code: "lease_not_active" } });
    expect(late.cdp).toBeUndefined();
  });

  it("another tenant's lease is refused with 404, in either direction", async () => {
    const name = pool();
    used.push([name, DEV2_KEY]);
    const mine = await acquire(name);
    const theirs = await acquire(name, {}, DEV2_KEY);
    const myToken = new URL(mine.connectUrl).searchParams.get("token")!;
    const theirToken = new URL(theirs.connectUrl).searchParams.get("token")!;
    // My token with their lease id, and their token with mine: each names a pool object that lacks the lease.
    expect(await tryConnect(withToken(theirs.connectUrl, myToken))).toMatchObject({ status: 404, body: { code: "not_found" } });
    expect(await tryConnect(withToken(mine.connectUrl, theirToken))).toMatchObject({ status: 404, body: { code: "not_found" } });
    // Each works with its own.
    for (const lease of [mine, theirs]) {
      const cdp = await connect(lease.connectUrl);
      expect((await cdp.send<{ product: string }>("Browser.getVersion")).product).toMatch(/Chrome/);
      cdp.socket.close(1000, "done");
      await cdp.closed;
    }
  });

  it("an Idempotency-Key replay returns a fresh token; the lost response's token stops working", async () => {
    const name = pool();
    const headers = { "idempotency-key": `replay-${crypto.randomUUID()}` };
    const first = await call(`/v1/pools/${name}/leases`, { method: "POST", body: {}, headers });
    const replay = await call(`/v1/pools/${name}/leases`, { method: "POST", body: {}, headers });
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(replay.body.id).toBe(first.body.id);
    expect(replay.body.connectUrl).not.toBe(first.body.connectUrl);
    expect(await tryConnect(first.body.connectUrl)).toMatchObject({ status: 401 });
    const cdp = await connect(replay.body.connectUrl);
    cdp.socket.close(1000, "done");
    await cdp.closed;
  });
});

describe("connect, disconnect and reconnect while active", () => {
  it("the same URL works again after the client disconnects, and several clients may share the lease", async () => {
    const name = pool();
    const lease = await acquire(name);
    const first = await connect(lease.connectUrl);
    await openPage(first, "<title>kept</title>");
    first.socket.close(1000, "bye");
    // (Its own close event may say 1000 or 1006 depending on how workerd tears the pair down.)
    await first.closed;

    const second = await connect(lease.connectUrl);
    const third = await connect(lease.connectUrl);
    // The page opened by the first connection is still there: it is the same browser.
    expect((await pageUrls(second)).some((url) => url.includes("kept"))).toBe(true);
    expect((await third.send<{ product: string }>("Browser.getVersion")).product).toMatch(/Chrome/);

    await release(name, lease.id);
    const [a, b] = await Promise.all([second.closed, third.closed]);
    expect([a.code, b.code]).toEqual([LEASE_ENDED, LEASE_ENDED]);
  });

  it(`refuses more than ${MAX_CONNECTIONS_PER_LEASE} open connections per lease with 409 too_many_connections`, async () => {
    const name = pool();
    const lease = await acquire(name);
    const hash = tokenHash(new URL(lease.connectUrl).searchParams.get("token")!);
    const stub = poolStub("dev", name);
    const ids: string[] = [];
    for (let i = 0; i < MAX_CONNECTIONS_PER_LEASE; i += 1) {
      const opened = await stub.openConnection(lease.id, hash, true);
      if (!opened.ok) throw new Error(opened.failure.detail);
      ids.push(opened.value.connectionId!);
    }
    const refused = await tryConnect(lease.connectUrl);
    expect(refused).toMatchObject({ status: 409, body: { code: "too_many_connections" } });
    await stub.closeConnection(ids[0]!);
    const cdp = await connect(lease.connectUrl);
    cdp.socket.close(1000, "done");
    await cdp.closed;
    for (const id of ids) await stub.closeConnection(id);
  });
});

describe("every way a lease ends closes its sockets within 1 s", () => {
  it("release-all", async () => {
    const name = pool();
    await call(`/v1/pools/${name}`, { method: "PUT", body: { maxSessions: 2 } });
    const [a, b] = [await acquire(name), await acquire(name)];
    const sockets = [await connect(a.connectUrl), await connect(b.connectUrl)];
    const all = await call(`/v1/pools/${name}/leases`, { method: "DELETE" });
    expect(all.body).toEqual({ released: 2 });
    const at = Date.now();
    for (const closed of await Promise.all(sockets.map((s) => s.closed))) {
      expect(closed).toMatchObject({ code: LEASE_ENDED, reason: "lease released" });
      expect(closed.at - at).toBeLessThan(1000);
    }
  });

  it("expiry while connected: the client is disconnected and the next lease never gets that browser's pages", async () => {
    const name = pool();
    const clock = await controlClock("dev", name);
    await call(`/v1/pools/${name}`, { method: "PUT", body: { maxSessions: 1, reuse: true } });
    const old = await acquire(name, { ttlSeconds: 30 });
    const cdp = await connect(old.connectUrl);
    await openPage(cdp, "<title>secret-of-the-old-lease</title>");

    await clock.advance(30_000);
    const at = Date.now();
    const closed = await cdp.closed;
    expect(closed).toMatchObject({ code: LEASE_ENDED, reason: "lease expired" });
    expect(closed.at - at).toBeLessThan(1000);
    expect(await tryConnect(old.connectUrl)).toMatchObject({ status: 409, body: { code: "lease_not_active" } });

    await effectsDone("dev", name);
    expect(await liveBrowsers()).not.toContain(old.sessionId);
    const next = await acquire(name);
    expect(next.sessionId).not.toBe(old.sessionId);
    const fresh = await connect(next.connectUrl);
    expect((await pageUrls(fresh)).some((url) => url.includes("secret-of-the-old-lease"))).toBe(false);
    await expectConsistent("dev", name);
  });

  it("release with reuse: the session is reset only after the old socket closed, and the next lease sees none of its pages", async () => {
    const name = pool();
    await call(`/v1/pools/${name}`, { method: "PUT", body: { maxSessions: 1, reuse: true } });
    const old = await acquire(name);
    const cdp = await connect(old.connectUrl);
    await openPage(cdp, "<title>left-behind</title>");
    await release(name, old.id);
    await cdp.closed;
    await effectsDone("dev", name);

    const next = await acquire(name);
    expect(next.sessionId).toBe(old.sessionId);
    const fresh = await connect(next.connectUrl);
    expect((await pageUrls(fresh)).some((url) => url.includes("left-behind"))).toBe(false);

    // The journal shows the order: the old lease's socket closed before the session was reset.
    const order = await runInDurableObject(poolStub("dev", name), (_o: PoolObject, state) =>
      state.storage.sql
        .exec<{ event: string; lease_id: string | null }>(`SELECT event, lease_id FROM journal WHERE event IN ('disconnected','reset') ORDER BY seq`)
        .toArray(),
    );
    expect(order[0]).toEqual({ event: "disconnected", lease_id: old.id });
    expect(order[1]?.event).toBe("reset");
    await expectConsistent("dev", name);
  });

  it("a client that may still be connected is never handed on: its browser is closed instead of reused", async () => {
    const name = pool();
    await call(`/v1/pools/${name}`, { method: "PUT", body: { maxSessions: 1, reuse: true } });
    const old = await acquire(name);
    // A socket registered by a Worker that never reports it closed (crashed mid-proxy).
    const hash = tokenHash(new URL(old.connectUrl).searchParams.get("token")!);
    const stuck = await poolStub("dev", name).openConnection(old.id, hash, true);
    expect(stuck.ok).toBe(true);

    const releasedAt = Date.now();
    await release(name, old.id);
    await effectsDone("dev", name);
    expect(Date.now() - releasedAt).toBeGreaterThanOrEqual(DISCONNECT_GRACE_MS - 50);
    expect(await liveBrowsers()).not.toContain(old.sessionId);
    const next = await acquire(name);
    expect(next.sessionId).not.toBe(old.sessionId);
    await expectConsistent("dev", name);
  });

  it("a connection's registration survives a restart of the pool object, and the lease's end still reaches its watcher", async () => {
    const name = pool();
    const lease = await acquire(name);
    const hash = tokenHash(new URL(lease.connectUrl).searchParams.get("token")!);
    const opened = await poolStub("dev", name).openConnection(lease.id, hash, true);
    if (!opened.ok) throw new Error(opened.failure.detail);
    await evictDurableObject(poolStub("dev", name));

    // The Worker asks the new instance again (src/api/cdp.ts does this when its call fails).
    const watching = poolStub("dev", name).watchConnection(opened.value.connectionId!);
    await release(name, lease.id);
    expect(await watching).toEqual({ reason: "released" });
    // And a watch that starts after the end answers at once.
    expect(await poolStub("dev", name).watchConnection(opened.value.connectionId!)).toEqual({ reason: "released" });
    await poolStub("dev", name).closeConnection(opened.value.connectionId!);
    await effectsDone("dev", name);
    await expectConsistent("dev", name);
  });
});
