/**
 * The account's session registry: browsers pools launched are known and never
 * touched; live browsers no pool knows are closed once older than the grace
 * (orphans); registrations of browsers that are gone are forgotten; a pool that
 * lost a launch to a restart gets its orphan closed. Fault provider here (the
 * platform's clock and list are under the test's control); real Chromium in
 * test/browser/rendering.test.ts.
 */
import { abortAllDurableObjects, env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import { providerFactory } from "../../src/pool/object";
import { ORPHAN_GRACE_MS, type SessionRegistry } from "../../src/registry/object";
import { FaultProvider } from "../support/fault-provider";
import { call } from "../support/http";
import { faultPool } from "../support/pool";

const realFactory = { ...providerFactory };
afterEach(() => {
  providerFactory.create = realFactory.create;
  providerFactory.now = realFactory.now;
});

const registry = () => env.REGISTRY.get(env.REGISTRY.idFromName("registry"));

/** Gives the (singleton) registry the test's provider and clock. */
async function controlRegistry(provider: FaultProvider, clock: { now: number }) {
  await runInDurableObject(registry(), (object: SessionRegistry) => {
    object.useProvider(provider);
    object.clock = () => clock.now;
  });
}

describe("SessionRegistry", () => {
  it("closes live browsers nobody registered once past the grace, leaves registered and young ones, forgets dead registrations", async () => {
    const provider = new FaultProvider();
    const clock = { now: Date.now() };
    await controlRegistry(provider, clock);
    const before = await registry().stats();

    const tracked = provider.spawnForeign();
    await registry().track(tracked, "dev/some-pool");
    const gone = "fake-gone-session";
    await registry().track(gone, "dev/some-pool");
    const orphan = provider.spawnForeign();
    provider.live.get(orphan)!.startTime = clock.now - ORPHAN_GRACE_MS - 1;
    provider.live.get(tracked)!.startTime = clock.now - 10 * ORPHAN_GRACE_MS;
    const young = provider.spawnForeign();
    provider.live.get(young)!.startTime = clock.now;

    clock.now += 1;
    const report = await registry().sweep();
    expect(report).toMatchObject({ orphansClosed: 1, forgotten: 1, young: 1 });
    expect(provider.closed).toEqual([orphan]);
    expect(provider.live.has(tracked)).toBe(true);
    expect(provider.live.has(young)).toBe(true);
    const after = await registry().stats();
    expect(after.orphansClosedTotal - before.orphansClosedTotal).toBe(1);
    expect(after.lastSweep).toMatchObject({ orphansClosed: 1 });

    // The young one is looked at again after the grace; still unknown, it is an orphan then.
    clock.now += ORPHAN_GRACE_MS;
    expect(await runDurableObjectAlarm(registry())).toBe(true);
    expect(provider.closed).toContain(young);
    expect(provider.live.has(tracked)).toBe(true);
  });

  it("knows every browser a pool launches, so sweeping never closes a pool's browser", async () => {
    const provider = new FaultProvider();
    const pool = await faultPool({ maxSessions: 2 }, provider);
    await controlRegistry(provider, pool.clock);
    const acquired = await pool.acquire();
    if (!acquired.ok) throw new Error(acquired.failure.detail);
    await pool.settled();
    pool.clock.now += 10 * ORPHAN_GRACE_MS;
    provider.live.get(acquired.value.lease.sessionId!)!.startTime = pool.clock.now - 10 * ORPHAN_GRACE_MS;
    const report = await registry().sweep();
    expect(report.orphansClosed).toBe(0);
    expect(provider.live.has(acquired.value.lease.sessionId!)).toBe(true);
    // The pool recorded the acknowledgement: its alarm will not register it again.
    const unregistered = await runInDurableObject(pool.stub, (_o, state) =>
      state.storage.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM sessions WHERE registered = 0 AND session_id IS NOT NULL`).one().n,
    );
    expect(unregistered).toBe(0);
  });

  it("a browser whose launch was lost to a pool restart is closed as an orphan after the grace", async () => {
    const provider = new FaultProvider();
    const pool = await faultPool({ maxSessions: 1 }, provider);
    providerFactory.create = () => provider;
    providerFactory.now = () => pool.clock.now;
    provider.defaultPlan = { kind: "manual" };
    const pending = pool.acquire({ waitSeconds: 10 });
    const launch = await pool.nextLaunch();

    await abortAllDurableObjects();
    // The caller's call dies with the object (rejected, or answered with a failure).
    expect(await pending.then((r) => r.ok, () => false)).toBe(false);
    pool.reconnect();
    // The restarted pool recovered and asked the registry to watch for orphans.
    expect(await pool.counts()).toMatchObject({ launching: 0, waiting: 0 });
    await pool.settled();

    // The platform finishes the lost launch: a browser nobody will ever record.
    const lost = launch.succeed();
    expect(provider.live.has(lost)).toBe(true);
    provider.live.get(lost)!.startTime = pool.clock.now;

    pool.clock.now += ORPHAN_GRACE_MS + 1;
    expect(await runDurableObjectAlarm(registry())).toBe(true);
    expect(provider.closed).toContain(lost);
    expect((await registry().stats()).lastSweep).toMatchObject({ orphansClosed: 1 });
  });
});

describe("GET /v1/admin/registry", () => {
  it("answers the registry's stats to the admin token only", async () => {
    expect((await call("/v1/admin/registry", { key: null })).status).toBe(401);
    expect((await call("/v1/admin/registry", { key: "dev-key" })).body).toMatchObject({ status: 401, code: "unauthorized" });
    const stats = await call("/v1/admin/registry", { key: "dev-admin" });
    expect(stats.status).toBe(200);
    expect(stats.body).toEqual({ tracked: expect.any(Number), orphansClosedTotal: expect.any(Number), lastSweep: expect.toSatisfy((v) => v === null || typeof v === "object") });
  });
});
