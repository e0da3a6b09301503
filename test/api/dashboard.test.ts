/**
 * The dashboard's HTTP side in workerd: the admin token, its exchange for a
 * signed, expiring, read-only session cookie, the data the page draws, and
 * the admin route that mints a lease's viewer (the page's thumbnails).
 * The page itself is tested in real Chromium in test/e2e/dashboard.test.ts.
 */
import { createExecutionContext, env, SELF, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import worker from "../../src/index";
import { call, DEV2_KEY, newPool, poolName } from "../support/http";
import { faultPool, granted } from "../support/pool";
import { injectFaults, objectErrors } from "./stub-faults";

const ADMIN = "dev-admin";

/** Exchanges the admin token for the dashboard's cookie; returns the `Set-Cookie` header and the `name=value` pair to send back. */
async function login(): Promise<{ setCookie: string; cookie: string; value: string }> {
  const exchanged = await SELF.fetch(`https://broker.test/dashboard?token=${ADMIN}`, { redirect: "manual" });
  await exchanged.body?.cancel();
  expect(exchanged.status).toBe(303);
  const setCookie = exchanged.headers.get("set-cookie")!;
  const value = /^broker_admin=([^;]*);/.exec(setCookie)![1]!;
  return { setCookie, cookie: `broker_admin=${value}`, value };
}

/**
 * A session value computed here, independently of src/api/session.ts, as
 * docs/security.md describes it: `<expiry s>.<base64url HMAC-SHA256(expiry)>`
 * under the key SHA-256("dashboard-session:" + admin token).
 */
async function forge(adminToken: string, expiresAt: number): Promise<string> {
  const encoder = new TextEncoder();
  const material = await crypto.subtle.digest("SHA-256", encoder.encode(`dashboard-session:${adminToken}`));
  const key = await crypto.subtle.importKey("raw", material, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, encoder.encode(String(expiresAt))));
  const signature = btoa(String.fromCharCode(...mac)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  return `${expiresAt}.${signature}`;
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

async function dataWith(cookie: string) {
  return call("/dashboard/data", { key: null, headers: { cookie } });
}

describe("GET /dashboard", () => {
  it("needs the admin token; ?token= sets an HttpOnly, SameSite=Strict session cookie and drops the token from the URL", async () => {
    expect((await call("/dashboard", { key: null })).status).toBe(401);
    expect((await call("/dashboard", { key: "dev-key" })).status).toBe(401);
    expect((await call("/dashboard?token=wrong", { key: null })).status).toBe(401);
    const exchanged = await SELF.fetch(`https://broker.test/dashboard?token=${ADMIN}`, { redirect: "manual" });
    await exchanged.body?.cancel();
    expect(exchanged.status).toBe(303);
    expect(exchanged.headers.get("location")).toBe("/dashboard");
    const cookie = exchanged.headers.get("set-cookie")!;
    expect(cookie).toMatch(/^broker_admin=\d+\.[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=43200; Secure$/);
    // The cookie is a session, not the token: neither the token nor any encoding of it is in it.
    for (const form of [ADMIN, encodeURIComponent(ADMIN), btoa(ADMIN).replace(/=+$/, "")]) expect(cookie).not.toContain(form);
    const expiresAt = Number(/^broker_admin=(\d+)\./.exec(cookie)![1]);
    expect(Math.abs(expiresAt - (nowSeconds() + 43_200))).toBeLessThanOrEqual(5);

    const session = `broker_admin=${/^broker_admin=([^;]*);/.exec(cookie)![1]}`;
    const page = await call<string>("/dashboard", { key: null, headers: { cookie: session } });
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
    expect(page.headers.get("content-security-policy")).toContain("default-src 'none'");
    expect(page.body).toContain("<title>Browser session broker</title>");
    expect((await call<string>("/dashboard", { key: ADMIN })).status).toBe(200);
  });

  it("the cookie authorises reads only, never an action (POST, PUT, DELETE)", async () => {
    const pool = poolName("dash");
    expect((await call(`/v1/pools/${pool}`, { method: "PUT", body: { maxSessions: 1 } })).status).toBe(200);
    const { cookie } = await login();
    const headers = { cookie };
    expect((await call(`/v1/admin/pools/dev/${pool}`, { key: null, headers })).status).toBe(200);
    expect((await call(`/v1/admin/tenants/dev`, { key: null, headers })).status).toBe(200);
    const writes: [string, string, unknown][] = [
      ["POST", `/v1/admin/pools/dev/${pool}/drain`, undefined],
      ["PUT", `/v1/admin/pools/dev/${pool}`, { maxSessions: 2 }],
      ["DELETE", `/v1/admin/pools/dev/${pool}`, undefined],
      ["PUT", `/v1/admin/tenants/dev`, { maxPools: 1 }],
      ["POST", `/v1/admin/tenants/dev/keys`, { name: "from-a-cookie" }],
    ];
    for (const [method, path, body] of writes) {
      const reply = await call(path, { method, key: null, headers, ...(body === undefined ? {} : { body }) });
      expect({ method, path, status: reply.status }).toEqual({ method, path, status: 401 });
    }
    const after = (await call(`/v1/pools/${pool}`)).body;
    expect({ draining: after.draining, maxSessions: after.config.maxSessions }).toEqual({ draining: false, maxSessions: 1 });
    expect((await call(`/v1/admin/tenants/dev/keys`, { key: ADMIN })).body.keys.map((k: { name: string }) => k.name)).not.toContain("from-a-cookie");
  });

  it("a valid session reads /dashboard/data; expired, tampered, other-token and raw-token cookies are 401", async () => {
    const { cookie, value } = await login();
    expect((await dataWith(cookie)).status).toBe(200);
    // The test's own computation of a session is right: one it signs under the current token works.
    expect((await dataWith(`broker_admin=${await forge(ADMIN, nowSeconds() + 600)}`)).status).toBe(200);

    const [expiry, signature] = value.split(".") as [string, string];
    const flipped = signature.slice(0, 10) + (signature[10] === "A" ? "B" : "A") + signature.slice(11);
    const refused: [string, string][] = [
      ["expired", await forge(ADMIN, nowSeconds() - 1)],
      ["expired long ago", await forge(ADMIN, nowSeconds() - 86_400)],
      ["signed to last longer than a session", await forge(ADMIN, nowSeconds() + 30 * 86_400)],
      ["expiry moved later, signature kept", `${Number(expiry) + 3600}.${signature}`],
      ["signature altered", `${expiry}.${flipped}`],
      ["signature cut short", `${expiry}.${signature.slice(0, 42)}`],
      ["no signature", expiry],
      ["signed under a previous admin token", await forge("previous-admin-token", nowSeconds() + 600)],
      ["the raw admin token", ADMIN],
      ["the raw admin token, URL-encoded", encodeURIComponent(ADMIN)],
      ["a malformed %-escape", "%E0%A4%A"],
      ["empty", ""],
    ];
    for (const [what, bad] of refused) {
      const reply = await dataWith(`broker_admin=${bad}`);
      expect({ what, status: reply.status, code: reply.body?.code }).toEqual({ what, status: 401, code: "unauthorized" });
      expect((await call("/dashboard", { key: null, headers: { cookie: `broker_admin=${bad}` } })).status).toBe(401);
    }
  });

  it("rotating ADMIN_TOKEN ends every session", async () => {
    const { cookie } = await login();
    const fetchWith = async (adminToken: string) => {
      const ctx = createExecutionContext();
      const response = await worker.fetch(new Request("https://broker.test/dashboard/data", { headers: { cookie } }), { ...env, ADMIN_TOKEN: adminToken } as Env, ctx);
      await waitOnExecutionContext(ctx);
      await response.body?.cancel();
      return response.status;
    };
    expect(await fetchWith(ADMIN)).toBe(200);
    expect(await fetchWith("a-rotated-admin-token")).toBe(401);
  });

  it("/dashboard/data has each pool's counts, totals, queue and events", async () => {
    const pool = poolName("dash");
    expect((await call(`/v1/pools/${pool}`, { method: "PUT", body: { maxSessions: 1 } })).status).toBe(200);
    const lease = await call(`/v1/pools/${pool}/leases`, { method: "POST", body: {} });
    expect(lease.status).toBe(201);
    expect((await call(`/v1/pools/${pool}/leases`, { method: "POST", body: { waitSeconds: 0 } })).status).toBe(429);
    const data = await dataWith((await login()).cookie);
    expect(data.status).toBe(200);
    const mine = data.body.pools.find((p: { pool: string }) => p.pool === pool);
    expect(mine).toMatchObject({
      tenant: "dev",
      counts: { leased: 1, waiting: 0 },
      maxSessions: 1,
      consistent: true,
      draining: false,
      breaker: { state: "closed", streak: 0, retryAfterSeconds: null },
      governorUnreachable: false,
      totals: { granted: 1, failed: 1, launchDeferred: 0 },
      queue: [],
    });
    expect(mine.events[0]).toMatchObject({ event: expect.any(String), at: expect.any(String) });
    expect(mine.events.map((e: { event: string }) => e.event)).toContain("granted");
    await call(`/v1/pools/${pool}/leases/${lease.body.id}`, { method: "DELETE" });
  });

  it("/dashboard/data has the account's capacity as the governor describes it", async () => {
    const data = await dataWith((await login()).cookie);
    expect(data.status).toBe(200);
    const capacity = (await call("/v1/admin/capacity", { key: ADMIN })).body;
    expect(data.body.account).toMatchObject({
      limit: capacity.limits.maxConcurrentSessions,
      launchesPerSecond: capacity.limits.launchesPerSecond,
      used: expect.any(Number),
      headroom: expect.any(Number),
      breaker: { state: capacity.breaker.state, streak: expect.any(Number) },
      blockedUntil: capacity.usage.blockedUntil,
      tenants: expect.any(Array),
    });
    expect(data.body.account.used + data.body.account.headroom).toBe(data.body.account.limit);
    for (const t of data.body.account.tenants) expect(t).toEqual({ tenant: expect.any(String), weight: expect.any(Number), held: expect.any(Number), pending: expect.any(Number), share: expect.any(Number) });
  });

  it("/dashboard/data shows a pool's open breaker and a pool that cannot reach the governor", async () => {
    const broken = await faultPool({ maxSessions: 1, breakerThreshold: 1 });
    broken.provider.plan = [{ kind: "fail" }];
    expect((await broken.acquire({ waitSeconds: 0 })).ok).toBe(false);
    await broken.effectsDone();
    const cut = await faultPool({ maxSessions: 1 });
    injectFaults(...["acquire", "settle", "release", "sync"].map((method) => ({ kind: "governor" as const, name: `test-${cut.name}`, method, times: 100, error: objectErrors.internal })));
    try {
      expect((await cut.acquire()).ok).toBe(true);
      await cut.effectsDone();
      const data = await dataWith((await login()).cookie);
      const shown = (name: string) => data.body.pools.find((p: { pool: string }) => p.pool === name);
      expect(shown(broken.name)).toMatchObject({ breaker: { state: "open", streak: 1, retryAfterSeconds: expect.any(Number) }, governorUnreachable: false });
      expect(shown(cut.name)).toMatchObject({ breaker: { state: "closed" }, governorUnreachable: true, counts: { leased: 1 } });
    } finally {
      injectFaults().restore();
    }
  });

  it("/dashboard/data still has every pool when the governor does not answer; account is null", async () => {
    const pool = poolName("dash");
    expect((await call(`/v1/pools/${pool}`, { method: "PUT", body: { maxSessions: 1 } })).status).toBe(200);
    const { cookie } = await login();
    injectFaults({ kind: "governor", name: "account", method: "describe", times: 2, error: objectErrors.retryable });
    try {
      const data = await dataWith(cookie);
      expect(data.status).toBe(200);
      expect(data.body.account).toBeNull();
      expect(data.body.pools.map((p: { pool: string }) => p.pool)).toContain(pool);
    } finally {
      injectFaults().restore();
    }
  });

  it("/dashboard/data lists each pool's active leases, oldest first, and says when there are more than 12", async () => {
    // Simulated browsers: 13 leases without 13 real Chromium launches.
    const busy = await faultPool({ maxSessions: 13 });
    const quiet = await faultPool({ maxSessions: 1 });
    const ids: string[] = [];
    for (let i = 0; i < 13; i += 1) ids.push(granted(await busy.acquire({ ttlSeconds: 60 })).id);
    const { cookie } = await login();
    const shown = async (name: string) => (await dataWith(cookie)).body.pools.find((p: { pool: string }) => p.pool === name);
    let mine = await shown(busy.name);
    expect(mine.leases.map((l: { id: string }) => l.id)).toEqual(ids.slice(0, 12));
    expect(mine.leases[0]).toEqual({ id: ids[0], grantedAt: expect.any(String), expiresAt: expect.any(String), connected: false });
    expect(mine.moreLeases).toBe(true);
    // Ended leases leave the list.
    for (const id of ids.slice(0, 2)) expect((await busy.stub.release(id)).ok).toBe(true);
    mine = await shown(busy.name);
    expect(mine.leases.map((l: { id: string }) => l.id)).toEqual(ids.slice(2));
    expect(mine.moreLeases).toBe(false);
    expect(await shown(quiet.name)).toMatchObject({ leases: [], moreLeases: false });
  });
});

describe("POST /v1/admin/pools/{tenant}/{pool}/leases/{id}/viewer", () => {
  /** A lease of tenant dev2's (not the operator's, not dev's): the viewer token must name the pool's tenant. */
  async function dev2Lease() {
    const pool = await newPool("dash-view", { maxSessions: 1 }, DEV2_KEY);
    const reply = await call(`/v1/pools/${pool}/leases`, { method: "POST", body: { ttlSeconds: 60 }, key: DEV2_KEY });
    expect(reply.status).toBe(201);
    return { pool, id: reply.body.id as string, path: `/v1/admin/pools/dev2/${pool}/leases/${reply.body.id}/viewer` };
  }

  it("mints a viewer URL of any tenant's lease for the admin token: view only by default, interactive when asked", async () => {
    const { pool, id, path } = await dev2Lease();
    const minted = await call(path, { method: "POST", key: ADMIN, body: {} });
    expect(minted.status).toBe(201);
    expect(minted.headers.get("cache-control")).toBe("no-store");
    expect(minted.body).toEqual({ viewerUrl: expect.any(String), interactive: false, expiresAt: expect.any(String) });
    expect(minted.body.viewerUrl).toMatch(new RegExp(`^https://broker\\.test/v1/pools/${pool}/leases/${id}/viewer\\?token=`));
    // The URL works: its page is served (the token is checked by dev2's pool, so it names dev2).
    const page = await SELF.fetch(minted.body.viewerUrl);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("view only");
    const driving = await call(path, { method: "POST", key: ADMIN, body: { interactive: true } });
    expect(driving.status).toBe(201);
    expect(driving.body.interactive).toBe(true);
    const interactivePage = await SELF.fetch(driving.body.viewerUrl);
    expect(interactivePage.status).toBe(200);
    expect(await interactivePage.text()).toContain('id="mode">interactive<');
    // A compact page (the dashboard's thumbnail) is the same viewer, laid out small.
    const compact = await SELF.fetch(`${minted.body.viewerUrl}&compact=1`);
    expect(await compact.text()).toContain('<body class="compact">');
    await call(`/v1/pools/${pool}/leases/${id}`, { method: "DELETE", key: DEV2_KEY });
    // Dead with its lease.
    expect((await SELF.fetch(minted.body.viewerUrl)).status).toBe(409);
  });

  it("needs the admin token: none, an API key or a wrong token is 401 and mints nothing", async () => {
    const { pool, id, path } = await dev2Lease();
    for (const key of [null, DEV2_KEY, "not-the-admin-token"]) {
      const reply = await call(path, { method: "POST", key, body: {} });
      expect({ key, status: reply.status, code: reply.body?.code }).toEqual({ key, status: 401, code: "unauthorized" });
    }
    const events = (await call(`/v1/pools/${pool}/leases/${id}/events`, { key: DEV2_KEY })).body.events.map((e: { event: string }) => e.event);
    expect(events).not.toContain("viewer_issued");
    await call(`/v1/pools/${pool}/leases/${id}`, { method: "DELETE", key: DEV2_KEY });
  });

  it("the dashboard's session cookie mints only from the dashboard's own origin", async () => {
    const { pool, id, path } = await dev2Lease();
    const { cookie } = await login();
    const fromDashboard = await call(path, { method: "POST", key: null, body: {}, headers: { cookie, origin: "https://broker.test" } });
    expect(fromDashboard.status).toBe(201);
    expect(fromDashboard.body.interactive).toBe(false);
    // View only: driving a tenant's browser takes the admin token itself.
    const driving = await call(path, { method: "POST", key: null, body: { interactive: true }, headers: { cookie, origin: "https://broker.test" } });
    expect(driving.status).toBe(401);
    // Another site (or a sibling subdomain the SameSite cookie still reaches), or no Origin at all: refused.
    for (const origin of ["https://evil.test", "https://other.broker.test", "null", undefined]) {
      const headers: Record<string, string> = { cookie, ...(origin === undefined ? {} : { origin }) };
      expect({ origin, status: (await call(path, { method: "POST", key: null, body: {}, headers })).status }).toEqual({ origin, status: 401 });
    }
    // The exception is this route's: the cookie still authorises no other action from the same origin.
    expect((await call(`/v1/admin/pools/dev2/${pool}/drain`, { method: "POST", key: null, headers: { cookie, origin: "https://broker.test" } })).status).toBe(401);
    await call(`/v1/pools/${pool}/leases/${id}`, { method: "DELETE", key: DEV2_KEY });
  });

  it("answers 404 for an unknown lease, pool or tenant, and 400 for a malformed body", async () => {
    const { pool, id, path } = await dev2Lease();
    const unknown = crypto.randomUUID();
    for (const target of [`/v1/admin/pools/dev2/${pool}/leases/${unknown}/viewer`, `/v1/admin/pools/dev2/no-such-pool/leases/${id}/viewer`, `/v1/admin/pools/dev/${pool}/leases/${id}/viewer`]) {
      const reply = await call(target, { method: "POST", key: ADMIN, body: {} });
      expect({ target, status: reply.status, code: reply.body?.code }).toEqual({ target, status: 404, code: "not_found" });
    }
    const bad = await call(path, { method: "POST", key: ADMIN, body: { interactive: "yes" } });
    expect(bad.status).toBe(400);
    await call(`/v1/pools/${pool}/leases/${id}`, { method: "DELETE", key: DEV2_KEY });
  });
});
