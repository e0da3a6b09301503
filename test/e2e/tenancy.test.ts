/**
 * End to end with managed keys against `wrangler dev` (the local Rate Limiting
 * binding, the tenant objects, real Chromium): an operator creates a tenant's
 * key, the tenant drives a leased browser with Puppeteer through it, and the
 * key stops working with the request after its revocation.
 */
import puppeteer from "puppeteer-core";
import { describe, expect, it } from "vitest";
import { api, HTML, uniquePool } from "./support";

const ADMIN = "dev-admin";

describe("a managed key, end to end", () => {
  it("is created by an operator, leases and drives a browser, and is refused right after its revocation", async () => {
    const tenant = uniquePool("e2e-tenant");
    const quota = await api(`/v1/admin/tenants/${tenant}`, { method: "PUT", body: { maxPools: 1, maxSessions: 1 }, key: ADMIN });
    expect(quota.status).toBe(200);
    const created = await api(`/v1/admin/tenants/${tenant}/keys`, { method: "POST", body: { name: "e2e" }, key: ADMIN });
    expect(created.status).toBe(201);
    const { key, id } = created.body as { key: string; id: string };

    const pool = uniquePool("e2e-managed");
    expect((await api(`/v1/pools/${pool}`, { method: "PUT", body: { maxSessions: 1 }, key })).status).toBe(200);
    expect((await api(`/v1/pools/${uniquePool("e2e-second")}`, { method: "PUT", body: { maxSessions: 1 }, key })).body.code).toBe("quota_exceeded");
    const lease = await api(`/v1/pools/${pool}/leases`, { method: "POST", body: { waitSeconds: 30 }, key });
    expect(lease.status).toBe(201);
    const browser = await puppeteer.connect({ browserWSEndpoint: lease.body.connectUrl });
    try {
      const page = await browser.newPage();
      await page.goto(HTML("managed"));
      expect(await page.title()).toBe("managed");
    } finally {
      await browser.disconnect();
    }
    expect(await api(`/v1/tenant`, { key })).toMatchObject({ status: 200, body: { tenant, usage: { pools: 1, sessions: 1 } } });

    expect((await api(`/v1/admin/tenants/${tenant}/keys/${id}`, { method: "DELETE", key: ADMIN })).status).toBe(200);
    const refused = await api(`/v1/pools/${pool}/leases/${lease.body.id}`, { method: "DELETE", key });
    expect(refused.status).toBe(401);
    // The operator ends what the revoked key left behind, and deletes the pool.
    expect((await api(`/v1/admin/pools/${tenant}/${pool}/leases/${lease.body.id}`, { method: "DELETE", key: ADMIN })).status).toBe(200);
    const gone = await api(`/v1/admin/pools/${tenant}/${pool}`, { method: "DELETE", key: ADMIN });
    expect(gone.status).toBe(200);
    expect((await api(`/v1/admin/tenants/${tenant}`, { key: ADMIN })).body.usage).toEqual({ pools: 0, sessions: 0 });
  });
});
