/**
 * The dashboard's HTTP side in workerd: the admin token, its exchange for a
 * read-only cookie, and the data the page draws. The page itself is tested in
 * real Chromium in test/e2e/dashboard.test.ts.
 */
import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { call, poolName } from "../support/http";

describe("GET /dashboard", () => {
  it("needs the admin token; ?token= sets an HttpOnly, SameSite=Strict cookie and drops the token from the URL", async () => {
    expect((await call("/dashboard", { key: null })).status).toBe(401);
    expect((await call("/dashboard", { key: "dev-key" })).status).toBe(401);
    expect((await call("/dashboard?token=wrong", { key: null })).status).toBe(401);
    const exchanged = await SELF.fetch("https://broker.test/dashboard?token=dev-admin", { redirect: "manual" });
    await exchanged.body?.cancel();
    expect(exchanged.status).toBe(303);
    expect(exchanged.headers.get("location")).toBe("/dashboard");
    const cookie = exchanged.headers.get("set-cookie")!;
    expect(cookie).toMatch(/^broker_admin=dev-admin; Path=\/; HttpOnly; SameSite=Strict; Max-Age=\d+; Secure$/);

    const page = await call<string>("/dashboard", { key: null, headers: { cookie: "broker_admin=dev-admin" } });
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
    expect(page.headers.get("content-security-policy")).toContain("default-src 'none'");
    expect(page.body).toContain("<title>Browser session broker</title>");
    expect((await call<string>("/dashboard", { key: "dev-admin" })).status).toBe(200);
  });

  it("the cookie authorises reads only, never an action", async () => {
    const pool = poolName("dash");
    expect((await call(`/v1/pools/${pool}`, { method: "PUT", body: {} })).status).toBe(200);
    const cookie = { cookie: "broker_admin=dev-admin" };
    expect((await call(`/v1/admin/pools/dev/${pool}`, { key: null, headers: cookie })).status).toBe(200);
    expect((await call(`/v1/admin/pools/dev/${pool}/drain`, { method: "POST", key: null, headers: cookie })).status).toBe(401);
    expect((await call(`/v1/pools/${pool}`)).body.draining).toBe(false);
  });

  it("/dashboard/data has each pool's counts, totals, queue and events", async () => {
    const pool = poolName("dash");
    expect((await call(`/v1/pools/${pool}`, { method: "PUT", body: { maxSessions: 1 } })).status).toBe(200);
    const lease = await call(`/v1/pools/${pool}/leases`, { method: "POST", body: {} });
    expect(lease.status).toBe(201);
    expect((await call(`/v1/pools/${pool}/leases`, { method: "POST", body: { waitSeconds: 0 } })).status).toBe(429);
    const data = await call("/dashboard/data", { key: null, headers: { cookie: "broker_admin=dev-admin" } });
    expect(data.status).toBe(200);
    const mine = data.body.pools.find((p: { pool: string }) => p.pool === pool);
    expect(mine).toMatchObject({
      tenant: "dev",
      counts: { leased: 1, waiting: 0 },
      maxSessions: 1,
      consistent: true,
      draining: false,
      totals: { granted: 1, failed: 1 },
      queue: [],
    });
    expect(mine.events[0]).toMatchObject({ event: expect.any(String), at: expect.any(String) });
    expect(mine.events.map((e: { event: string }) => e.event)).toContain("granted");
    await call(`/v1/pools/${pool}/leases/${lease.body.id}`, { method: "DELETE" });
  });
});
