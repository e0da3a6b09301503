/**
 * Operators' actions on a pool (admin token), through the real Worker with real
 * Chromium: drain and resume, force-release, purge idle sessions, resize, and
 * a lease's events, on any tenant's pool.
 */
import { describe, expect, it } from "vitest";
import { expectConsistent, liveBrowsers, effectsDone, until } from "../support/api";
import { call, newPool, poolName } from "../support/http";

const ADMIN = "dev-admin";
const adminPath = (pool: string) => `/v1/admin/pools/dev/${pool}`;


describe("operators' actions", () => {
  it("need the admin token, not an API key", async () => {
    const name = await newPool("admin", {});
    for (const [method, suffix] of [
      ["GET", ""],
      ["PUT", ""],
      ["POST", "/drain"],
      ["POST", "/resume"],
      ["POST", "/purge-idle"],
      ["DELETE", `/leases/${crypto.randomUUID()}`],
    ] as const) {
      expect((await call(`${adminPath(name)}${suffix}`, { method, key: "dev-key" })).status).toBe(401);
      expect((await call(`${adminPath(name)}${suffix}`, { method, key: null })).status).toBe(401);
    }
  });

  it("drain turns waiters and new callers away with 503 pool_draining; active leases run on; resume grants again", async () => {
    const name = await newPool("admin", { maxSessions: 1 });
    const held = await call(`/v1/pools/${name}/leases`, { method: "POST", body: { ttlSeconds: 60 } });
    expect(held.status).toBe(201);
    const waiter = call(`/v1/pools/${name}/leases`, { method: "POST", body: { waitSeconds: 30 } });
    await until("dev", name, (view) => view.counts.waiting === 1);

    const drained = await call(`${adminPath(name)}/drain`, { method: "POST", key: ADMIN });
    expect(drained.status).toBe(200);
    expect(drained.body).toMatchObject({ waitersTurnedAway: 1, pool: { draining: true, counts: { waiting: 0, leased: 1 } } });
    const turnedAway = await waiter;
    expect(turnedAway.status).toBe(503);
    expect(turnedAway.body).toMatchObject({ code: "pool_draining" });
    expect(Number(turnedAway.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    const refused = await call(`/v1/pools/${name}/leases`, { method: "POST", body: {} });
    expect(refused.status).toBe(503);
    expect(refused.body).toMatchObject({ code: "pool_draining" });
    expect((await call(`/v1/pools/${name}/leases/${held.body.id}`)).body).toMatchObject({ status: "active" });
    expect((await call(`/v1/pools/${name}/leases/${held.body.id}`, { method: "DELETE" })).status).toBe(200);
    await effectsDone("dev", name);

    const resumed = await call(`${adminPath(name)}/resume`, { method: "POST", key: ADMIN });
    expect(resumed.body).toMatchObject({ draining: false });
    const again = await call(`/v1/pools/${name}/leases`, { method: "POST", body: {} });
    expect(again.status).toBe(201);
    await call(`/v1/pools/${name}/leases/${again.body.id}`, { method: "DELETE" });
    await expectConsistent("dev", name);
  });

  it("force-release ends a lease as forced and closes its browser instead of reusing it", async () => {
    const name = await newPool("admin", { maxSessions: 1, reuse: true });
    const lease = await call(`/v1/pools/${name}/leases`, { method: "POST", body: {} });
    expect(lease.status).toBe(201);
    const forced = await call(`${adminPath(name)}/leases/${lease.body.id}`, { method: "DELETE", key: ADMIN });
    expect(forced.status).toBe(200);
    expect(forced.body).toMatchObject({ id: lease.body.id, status: "released", endReason: "forced" });
    // The tenant sees the same, and its audit trail says who ended it.
    expect((await call(`/v1/pools/${name}/leases/${lease.body.id}`)).body).toMatchObject({ endReason: "forced" });
    const events = await call(`${adminPath(name)}/leases/${lease.body.id}/events`, { key: ADMIN });
    expect(events.body.events.map((e: { event: string }) => e.event)).toContain("forced");
    await effectsDone("dev", name);
    expect(await liveBrowsers()).not.toContain(lease.body.sessionId);
    const next = await call(`/v1/pools/${name}/leases`, { method: "POST", body: {} });
    expect(next.status).toBe(201);
    expect(next.body.sessionId).not.toBe(lease.body.sessionId);
    await call(`/v1/pools/${name}/leases/${next.body.id}`, { method: "DELETE" });
    // Forcing it again changes nothing; an unknown lease is 404.
    expect((await call(`${adminPath(name)}/leases/${lease.body.id}`, { method: "DELETE", key: ADMIN })).body).toMatchObject({ endReason: "forced" });
    expect((await call(`${adminPath(name)}/leases/${crypto.randomUUID()}`, { method: "DELETE", key: ADMIN })).status).toBe(404);
    await expectConsistent("dev", name);
  });

  it("purge-idle closes the idle browsers and the warm target replaces them", async () => {
    const name = await newPool("admin", { maxSessions: 2, minIdle: 1 });
    const before = await until("dev", name, (view) => view.counts.idle === 1);
    expect(before.counts.idle).toBe(1);
    const liveBefore = await liveBrowsers();
    const purged = await call(`${adminPath(name)}/purge-idle`, { method: "POST", key: ADMIN });
    expect(purged.status).toBe(200);
    expect(purged.body.closed).toBe(1);
    await effectsDone("dev", name);
    const after = await until("dev", name, (view) => view.counts.idle === 1 && view.counts.closing === 0 && view.counts.launching === 0);
    expect(after.counts.idle).toBe(1);
    const lease = await call(`/v1/pools/${name}/leases`, { method: "POST", body: {} });
    expect(liveBefore).not.toContain(lease.body.sessionId);
    await call(`/v1/pools/${name}/leases/${lease.body.id}`, { method: "DELETE" });
    await expectConsistent("dev", name);
    // No warm target left behind to launch while the test runtime shuts down.
    await call(`/v1/pools/${name}`, { method: "PUT", body: { minIdle: 0 } });
    await effectsDone("dev", name);
  });

  it("resizes an existing pool, and never creates one", async () => {
    const name = await newPool("admin", { maxSessions: 1 });
    const resized = await call(adminPath(name), { method: "PUT", body: { maxSessions: 3 }, key: ADMIN });
    expect(resized.status).toBe(200);
    expect(resized.body.config.maxSessions).toBe(3);
    expect((await call(`/v1/pools/${name}`)).body.config.maxSessions).toBe(3);
    const missing = poolName("admin");
    expect((await call(adminPath(missing), { method: "PUT", body: { maxSessions: 3 }, key: ADMIN })).status).toBe(404);
    expect((await call(`/v1/pools/${missing}`)).status).toBe(404);
    expect((await call(`/v1/admin/pools/bad tenant/${name}`, { key: ADMIN })).status).toBe(400);
  });
});

// A path under /v1/admin that names no operators' route is a 404 to the operator, not a 401
// that tells them to fix an admin token that is fine.
describe("unknown operators' routes", () => {
  it("answer 404 not_found with the admin token", async () => {
    for (const [method, path] of [
      ["DELETE", "/v1/admin/tenants/dev"],
      ["PATCH", "/v1/admin/tenants/dev"],
      ["GET", "/v1/admin/nope"],
      ["POST", "/v1/admin/pools/dev/p/nope"],
      // `..` is resolved by the URL: this is DELETE /v1/admin/tenants/dev
      ["DELETE", "/v1/admin/tenants/dev/keys/.."],
    ] as const) {
      const reply = await call(path, { method, key: "dev-admin" });
      expect(reply.status, `${method} ${path}: ${JSON.stringify(reply.body)}`).toBe(404);
      expect(reply.body.code).toBe("not_found");
    }
  });
});
