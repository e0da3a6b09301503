/**
 * Every endpoint of the lease API over HTTP, through the real Worker into real
 * pool objects (SQLite) that launch real Chromium through the BROWSER binding.
 */
import puppeteer from "@cloudflare/puppeteer";
import { env } from "cloudflare:test";
import { afterAll, describe, expect, it } from "vitest";
import { app } from "../../src/api/app";
import { controlClock, describePool, expectConsistent, liveBrowsers, effectsDone, until } from "../support/api";
import { call, poolName } from "../support/http";
import { newKey, newTenant } from "../support/tenants";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const used: string[] = [];

function pool(): string {
  const name = poolName("http");
  used.push(name);
  return name;
}

/** Every pool used here gives its browsers back, so other test files see a clean platform. */
afterAll(async () => {
  for (const name of used) {
    await call(`/v1/pools/${name}`, { method: "PUT", body: { minIdle: 0 } });
    await call(`/v1/pools/${name}/leases`, { method: "DELETE" });
  }
});

const leases = (name: string) => `/v1/pools/${name}/leases`;

describe("a lease's life over HTTP with real Chromium", () => {
  it("acquire, read, list, renew, release (twice) and renew-after-release", async () => {
    const name = pool();
    const configured = await call(`/v1/pools/${name}`, { method: "PUT", body: { maxSessions: 1, defaultTtlSeconds: 45 } });
    expect(configured.status).toBe(200);
    expect(configured.body.config).toMatchObject({ maxSessions: 1, defaultTtlSeconds: 45, reuse: true });

    const acquired = await call(leases(name), { method: "POST", body: { ttlSeconds: 30, labels: { job: "crawl-7" } } });
    expect(acquired.status).toBe(201);
    const lease = acquired.body;
    expect(lease).toMatchObject({ pool: name, status: "active", labels: { job: "crawl-7" } });
    expect(lease.id).toMatch(UUID);
    expect(acquired.headers.get("location")).toBe(`/v1/pools/${name}/leases/${lease.id}`);
    expect(acquired.headers.get("content-type")).toMatch(/^application\/json/);
    expect(Date.parse(lease.expiresAt) - Date.parse(lease.grantedAt)).toBe(30_000);
    expect(Date.parse(lease.grantedAt)).toBeGreaterThanOrEqual(Date.parse(lease.createdAt));
    // The token is shown once, here: `<tenant, base64url>.<256 random bits>`; only its hash is stored.
    expect(lease.connectUrl).toMatch(new RegExp(`^wss://broker\\.test/v1/pools/${name}/leases/${lease.id}/cdp\\?token=ZGV2\\.[\\w-]{43}$`));
    expect(await liveBrowsers()).toContain(lease.sessionId);

    const read = await call(`${leases(name)}/${lease.id}`);
    expect(read.status).toBe(200);
    // Reads never show a token again: neither the connect URL nor the viewer URL.
    const { connectUrl, viewerUrl, ...withoutToken } = lease;
    expect(connectUrl).toBeDefined();
    expect(viewerUrl).toMatch(new RegExp(`^https://broker\\.test/v1/pools/${name}/leases/${lease.id}/viewer\\?token=ZGV2\\.[\\w-]{43}$`));
    expect(read.body).toEqual(withoutToken);

    const listed = await call(`${leases(name)}?status=active`);
    expect(listed.status).toBe(200);
    expect(listed.body.leases.map((l: { id: string }) => l.id)).toEqual([lease.id]);

    const pool1 = await call(`/v1/pools/${name}`);
    expect(pool1.body).toMatchObject({ pool: name, counts: { leased: 1, waiting: 0 }, consistent: true, capacity: { max: 1, inUse: 1, available: 0 } });

    const renewed = await call(`${leases(name)}/${lease.id}/renew`, { method: "POST", body: { ttlSeconds: 120 } });
    expect(renewed.status).toBe(200);
    expect(Date.parse(renewed.body.expiresAt)).toBeGreaterThan(Date.parse(lease.expiresAt));
    const renewedDefault = await call(`${leases(name)}/${lease.id}/renew`, { method: "POST" });
    expect(renewedDefault.status).toBe(200);

    const released = await call(`${leases(name)}/${lease.id}`, { method: "DELETE" });
    expect(released.status).toBe(200);
    expect(released.body).toMatchObject({ id: lease.id, status: "released", endReason: "released", sessionId: lease.sessionId });
    expect(released.body.endedAt).toBeDefined();

    const again = await call(`${leases(name)}/${lease.id}`, { method: "DELETE" });
    expect(again.status).toBe(200);
    expect(again.body).toEqual(released.body);

    const late = await call(`${leases(name)}/${lease.id}/renew`, { method: "POST", body: {} });
    expect(late.status).toBe(409);
    expect(late.body.code).toBe("lease_not_active");

    await effectsDone("dev", name);
    expect((await describePool("dev", name)).counts).toMatchObject({ leased: 0, idle: 1, waiting: 0 });
    await expectConsistent("dev", name);
  });

  it("reuses a warm browser for the next lease, without the previous lease's pages", async () => {
    const name = pool();
    await call(`/v1/pools/${name}`, { method: "PUT", body: { maxSessions: 1, reuse: true } });
    const first = (await call(leases(name), { method: "POST" })).body;

    const client = await puppeteer.connect(env.BROWSER, first.sessionId);
    const page = await client.newPage();
    await page.setContent("<title>first lease's secret</title>");
    client.disconnect();

    await call(`${leases(name)}/${first.id}`, { method: "DELETE" });
    await effectsDone("dev", name);

    const t0 = Date.now();
    const second = await call(leases(name), { method: "POST" });
    const warmMs = Date.now() - t0;
    expect(second.status).toBe(201);
    expect(second.body.sessionId).toBe(first.sessionId);
    expect(second.body.id).not.toBe(first.id);
    expect(warmMs).toBeLessThan(1_000); // no launch happened; a cold one takes ~1 s here

    const next = await puppeteer.connect(env.BROWSER, second.body.sessionId);
    try {
      const titles = await Promise.all((await next.pages()).map((p) => p.title()));
      expect(titles.join("|")).not.toContain("secret");
    } finally {
      next.disconnect();
    }
  });

  it("with reuse off, closes the browser after each lease and launches a new one", async () => {
    const name = pool();
    await call(`/v1/pools/${name}`, { method: "PUT", body: { maxSessions: 1, reuse: false } });
    const first = (await call(leases(name), { method: "POST" })).body;
    await call(`${leases(name)}/${first.id}`, { method: "DELETE" });
    await effectsDone("dev", name);
    expect(await liveBrowsers()).not.toContain(first.sessionId);

    const second = await call(leases(name), { method: "POST" });
    expect(second.status).toBe(201);
    expect(second.body.sessionId).not.toBe(first.sessionId);
  });

  it("expires a lease by alarm at its TTL, closes its browser and never reuses it", async () => {
    const name = pool();
    const clock = await controlClock("dev", name);
    await call(`/v1/pools/${name}`, { method: "PUT", body: { maxSessions: 1, reuse: true } });
    const lease = (await call(leases(name), { method: "POST", body: { ttlSeconds: 5 } })).body;

    await clock.advance(4_000);
    expect((await call(`${leases(name)}/${lease.id}`)).body.status).toBe("active");

    await clock.advance(1_000);
    await effectsDone("dev", name);
    const expired = await call(`${leases(name)}/${lease.id}`);
    expect(expired.body).toMatchObject({ status: "expired", endReason: "expired" });
    expect(Date.parse(expired.body.endedAt)).toBe(Date.parse(lease.expiresAt));
    expect(await liveBrowsers()).not.toContain(lease.sessionId);
    expect((await describePool("dev", name)).counts).toMatchObject({ leased: 0, idle: 0, closing: 0 });

    const next = await call(leases(name), { method: "POST" });
    expect(next.status).toBe(201);
    expect(next.body.sessionId).not.toBe(lease.sessionId);
    await expectConsistent("dev", name);
  });

  it("grants waiters in FIFO order as leases are released", async () => {
    const name = pool();
    await call(`/v1/pools/${name}`, { method: "PUT", body: { maxSessions: 1 } });
    const holder = (await call(leases(name), { method: "POST" })).body;

    const order: string[] = [];
    const waiters = ["w1", "w2", "w3"].map((label, i) => {
      const reply = (async () => {
        await until("dev", name, (v) => v.counts.waiting === i); // queue in a known order
        const answer = call(leases(name), { method: "POST", body: { waitSeconds: 60, labels: { label } } });
        return answer;
      })();
      return reply.then((r) => {
        order.push(label);
        return r;
      });
    });
    await until("dev", name, (v) => v.counts.waiting === 3);

    let current = holder;
    for (const [i, label] of ["w1", "w2", "w3"].entries()) {
      await call(`${leases(name)}/${current.id}`, { method: "DELETE" });
      const granted = await waiters[i]!;
      expect(granted.status).toBe(201);
      expect(granted.body.labels).toEqual({ label });
      expect(granted.body.sessionId).toBe(holder.sessionId);
      expect(order).toEqual(["w1", "w2", "w3"].slice(0, i + 1));
      expect((await describePool("dev", name)).counts.waiting).toBe(2 - i);
      current = granted.body;
    }
    await expectConsistent("dev", name);
  });

  it("a waiter whose waitSeconds pass gets 429 pool_exhausted with Retry-After from the next expiry", async () => {
    const name = pool();
    const clock = await controlClock("dev", name);
    await call(`/v1/pools/${name}`, { method: "PUT", body: { maxSessions: 1 } });
    await call(leases(name), { method: "POST", body: { ttlSeconds: 100 } });
    const waiter = call(leases(name), { method: "POST", body: { waitSeconds: 5 } });
    await until("dev", name, (v) => v.counts.waiting === 1);

    await clock.advance(5_000);
    const answer = await waiter;
    expect(answer.status).toBe(429);
    expect(answer.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(answer.body.code).toBe("pool_exhausted");
    // The only lease expires 95 s from now.
    expect(Number(answer.headers.get("retry-after"))).toBe(95);
    expect((await describePool("dev", name)).counts.waiting).toBe(0);
    await expectConsistent("dev", name);
  });

  it("release-all ends every active lease of the caller in the pool", async () => {
    const name = pool();
    await call(`/v1/pools/${name}`, { method: "PUT", body: { maxSessions: 2 } });
    const [a, b] = await Promise.all([call(leases(name), { method: "POST" }), call(leases(name), { method: "POST" })]);
    expect([a.status, b.status]).toEqual([201, 201]);

    const all = await call(leases(name), { method: "DELETE" });
    expect(all.status).toBe(200);
    expect(all.body).toEqual({ released: 2 });
    for (const lease of [a.body, b.body]) {
      expect((await call(`${leases(name)}/${lease.id}`)).body.status).toBe("released");
    }
    expect((await call(leases(name), { method: "DELETE" })).body).toEqual({ released: 0 });
    expect((await describePool("dev", name)).counts.leased).toBe(0);
    await expectConsistent("dev", name);
  });
});

describe("listing leases", () => {
  it("pages newest first with a cursor and filters by status", async () => {
    const name = pool();
    await call(`/v1/pools/${name}`, { method: "PUT", body: { maxSessions: 1, reuse: true } });
    const ids: string[] = [];
    for (let i = 0; i < 3; i += 1) {
      const lease = (await call(leases(name), { method: "POST" })).body;
      ids.push(lease.id);
      if (i < 2) {
        await call(`${leases(name)}/${lease.id}`, { method: "DELETE" });
        await effectsDone("dev", name);
      }
    }
    const seen: string[] = [];
    let cursor: number | null = null;
    do {
      const page: { status: number; body: { leases: Array<{ id: string }>; nextCursor: number | null } } = await call(
        `${leases(name)}?limit=2${cursor ? `&cursor=${cursor}` : ""}`,
      );
      expect(page.status).toBe(200);
      expect(page.body.leases.length).toBeLessThanOrEqual(2);
      seen.push(...page.body.leases.map((l) => l.id));
      cursor = page.body.nextCursor;
    } while (cursor);
    expect(seen).toEqual([...ids].reverse());

    const active = await call(`${leases(name)}?status=active`);
    expect(active.body.leases.map((l: { id: string }) => l.id)).toEqual([ids[2]]);
    const released = await call(`${leases(name)}?status=released`);
    expect(released.body.leases.map((l: { id: string }) => l.id).sort()).toEqual([ids[0], ids[1]].sort());
  });
});

describe("Idempotency-Key", () => {
  it("replays the same lease for the same key and body, and refuses the key with another body", async () => {
    const name = pool();
    const headers = { "idempotency-key": `order-${name}` };
    const first = await call(leases(name), { method: "POST", body: { ttlSeconds: 30, labels: { a: "1" } }, headers });
    expect(first.status).toBe(201);
    expect(first.headers.get("idempotent-replayed")).toBeNull();

    // Same body with keys in another order is the same request.
    const replay = await call(leases(name), { method: "POST", rawBody: '{"labels":{"a":"1"},"ttlSeconds":30}', headers: { ...headers, "content-type": "application/json" } });
    expect(replay.status).toBe(201);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(replay.body.id).toBe(first.body.id);
    expect(replay.body.sessionId).toBe(first.body.sessionId);

    const conflict = await call(leases(name), { method: "POST", body: { ttlSeconds: 31 }, headers });
    expect(conflict.status).toBe(409);
    expect(conflict.body.code).toBe("idempotency_key_reused");

    const view = await describePool("dev", name);
    expect(view.counts.leased).toBe(1);
  });

  it("is scoped to the API key that sent it: another key of the same tenant with the same key gets its own lease", async () => {
    const { tenant, key } = await newTenant("idem");
    const other = await newKey(tenant, "second");
    const name = pool();
    const headers = { "idempotency-key": "shared-by-accident" };
    const first = await call(leases(name), { method: "POST", body: { ttlSeconds: 30 }, headers, key });
    const second = await call(leases(name), { method: "POST", body: { ttlSeconds: 30 }, headers, key: other.key });
    expect([first.status, second.status]).toEqual([201, 201]);
    expect(second.headers.get("idempotent-replayed")).toBeNull();
    expect(second.body.id).not.toBe(first.body.id);
    // And each key still replays its own.
    const again = await call(leases(name), { method: "POST", body: { ttlSeconds: 30 }, headers, key: other.key });
    expect(again.body.id).toBe(second.body.id);
    for (const [id, k] of [[first.body.id, key], [second.body.id, other.key]] as const) await call(`${leases(name)}/${id}`, { method: "DELETE", key: k });
  });
});

describe("service endpoints", () => {
  it("GET /healthz answers without a key", async () => {
    const health = await call("/healthz", { key: null });
    expect(health.status).toBe(200);
    expect(health.body).toEqual({ status: "ok" });
  });

  it("GET /openapi.json describes every route of the API, and only those", async () => {
    const doc = await call("/openapi.json", { key: null });
    expect(doc.status).toBe(200);
    expect(doc.body.openapi).toMatch(/^3\.1\./);
    const paths = doc.body.paths as Record<string, Record<string, unknown>>;
    const documented = Object.entries(paths).flatMap(([path, ops]) =>
      Object.keys(ops)
        .filter((m) => ["get", "post", "put", "delete", "patch"].includes(m))
        .map((m) => `${m.toUpperCase()} ${path}`),
    );
    // The routes the Worker's router really has (middleware is registered as ALL).
    const served = new Set(app.routes.filter((r) => r.method !== "ALL").map((r) => `${r.method} ${r.path.replace(/:(\w+)/g, "{$1}")}`));
    expect(documented.sort()).toEqual([...served].sort());
    expect(served.size).toBeGreaterThanOrEqual(32);
  });

});
