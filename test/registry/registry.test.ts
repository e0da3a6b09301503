/**
 * The account's session registry (docs/registry.md): it never destroys on an
 * unconfirmed observation (a list that omits, is empty, or hangs judges
 * nothing), and never closes a browser the broker did not launch (only a
 * lost launch's browser, unless ORPHAN_POLICY is "all"); a deleted pool's
 * live browsers are closed. Fault provider here (the platform's clock and
 * list are under the test's control); real Chromium in
 * test/browser/rendering.test.ts.
 */
import { env, evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { providerFactory } from "../../src/browser/factory";
import { ABANDONED_SWEEP_DELAY_MS, type SessionRegistry } from "../../src/registry/object";
import {
  LAUNCH_SKEW_MS,
  LIST_TIMEOUT_MS,
  ORPHAN_GRACE_MS,
  orphanPolicy,
  type OrphanPolicy,
  STALE_REGISTRATION_MS,
  SWEEP_INTERVAL_MS,
} from "../../src/registry/sweep";
import { FaultProvider } from "../support/fault-provider";
import { call } from "../support/http";
import { logged } from "../support/logs";
import { faultPool } from "../support/pool";

const realFactory = { ...providerFactory };
afterEach(() => {
  providerFactory.create = realFactory.create;
  providerFactory.now = realFactory.now;
});

const registry = () => env.REGISTRY.get(env.REGISTRY.idFromName("registry"));

// Each test starts from a registry that tracks nothing and has no alarm (the
// singleton keeps its storage across the tests of this file).
beforeEach(async () => {
  await runInDurableObject(registry(), async (object: SessionRegistry, state) => {
    state.storage.sql.exec(`DELETE FROM sessions`);
    state.storage.sql.exec(`DELETE FROM lost_launches`);
    state.storage.sql.exec(`DELETE FROM meta WHERE key = 'watch_until'`);
    object.graceMs = ORPHAN_GRACE_MS;
    object.listTimeoutMs = LIST_TIMEOUT_MS;
    object.policy = orphanPolicy(env.ORPHAN_POLICY);
    await state.storage.deleteAlarm();
  });
});

/**
 * Gives the (singleton) registry the test's provider and clock. The clock
 * starts an hour ahead of real time, so alarms the registry sets never fire by
 * themselves during the test: the test runs them (runDurableObjectAlarm).
 */
async function controlRegistry(provider: FaultProvider, clock = { now: Date.now() + 60 * 60_000 }, policy?: OrphanPolicy) {
  await runInDurableObject(registry(), (object: SessionRegistry) => {
    object.useProvider(provider);
    object.clock = () => clock.now;
    if (policy) object.policy = policy;
  });
  return clock;
}

/** A browser on the fake platform, started at `startTime`, with or without a client connected. */
function browser(provider: FaultProvider, startTime: number, connected = false): string {
  const sessionId = provider.spawnForeign();
  Object.assign(provider.live.get(sessionId)!, { startTime, connected });
  return sessionId;
}

const registered = (sessionId: string) =>
  runInDurableObject(registry(), (_o, state) => state.storage.sql.exec(`SELECT 1 FROM sessions WHERE session_id = ?`, sessionId).toArray().length === 1);
const alarmAt = () => runInDurableObject(registry(), (_o, state) => state.storage.getAlarm());

describe("SessionRegistry", () => {
  it("sees an empty list once, then a short grace: no registered (leased) browser is closed", async () => {
    const provider = new FaultProvider();
    const clock = await controlRegistry(provider);
    const leased = [browser(provider, clock.now - 10 * ORPHAN_GRACE_MS), browser(provider, clock.now - 1_000)];
    for (const sessionId of leased) await registry().track(sessionId, "dev/leasing-pool");

    provider.listPlan = ["empty"];
    clock.now += 1;
    expect(await registry().sweep()).toMatchObject({ untrusted: true, live: 0, forgotten: 0, orphansClosed: 0, tracked: 2 });

    // The strictest policy, a grace of a second, well past it: an unknown browser would be closed now.
    await runInDurableObject(registry(), (object: SessionRegistry) => {
      object.graceMs = 1_000;
      object.policy = "all";
    });
    clock.now += 60_000;
    expect(await registry().sweep()).toMatchObject({ untrusted: false, live: 2, forgotten: 0, orphansClosed: 0, foreign: 0, tracked: 2 });
    expect(provider.closed).toEqual([]);
    for (const sessionId of leased) expect(await registered(sessionId)).toBe(true);
  });

  it("leaves a foreign session older than the grace alone by default", async () => {
    const provider = new FaultProvider();
    const clock = await controlRegistry(provider);
    // Another Worker's browser, launched and left unconnected, long past the grace.
    const foreign = browser(provider, clock.now - 10 * ORPHAN_GRACE_MS);
    const report = await registry().sweep();
    expect(report).toMatchObject({ policy: "launches", foreign: 1, orphansClosed: 0 });
    expect(provider.closed).toEqual([]);
    expect(provider.live.has(foreign)).toBe(true);
  });

  it("closes it when ORPHAN_POLICY is all", async () => {
    const provider = new FaultProvider();
    const clock = await controlRegistry(provider, undefined, "all");
    const before = await registry().stats();
    // Connected or not: on an account dedicated to the broker, any unknown browser past the grace is an orphan.
    const unknown = browser(provider, clock.now - ORPHAN_GRACE_MS - 1, true);
    const report = await registry().sweep();
    expect(report).toMatchObject({ policy: "all", foreign: 0, orphansClosed: 1 });
    expect(provider.closed).toEqual([unknown]);
    expect((await registry().stats()).orphansClosedTotal - before.orphansClosedTotal).toBe(1);
  });

  it("takes its orphan policy from the ORPHAN_POLICY var: launches unless all or off", () => {
    expect(env.ORPHAN_POLICY).toBe("launches");
    expect(orphanPolicy(env.ORPHAN_POLICY)).toBe("launches");
    expect(orphanPolicy(undefined)).toBe("launches");
    expect(orphanPolicy("all")).toBe("all");
    expect(orphanPolicy("off")).toBe("off");
    expect(orphanPolicy("everything")).toBe("launches");
  });

  it("closes the unconnected browser a lost launch left, once past the grace, and only one per window", async () => {
    const provider = new FaultProvider();
    const clock = await controlRegistry(provider);
    const t0 = clock.now;
    const window = { startedAt: t0, endedAt: t0 + 30_000 };
    // Nearest the window's start, but a client holds it: a foreign Worker's puppeteer.launch().
    const connected = browser(provider, t0 + 1_000, true);
    const lost = browser(provider, t0 + 2_000);
    const secondInWindow = browser(provider, t0 + 20_000);
    const outside = browser(provider, window.endedAt + LAUNCH_SKEW_MS + 1_000);
    await registry().lostLaunches("dev/lossy-pool", [window]);

    clock.now = window.endedAt + LAUNCH_SKEW_MS + 1_000;
    expect(await registry().sweep()).toMatchObject({ young: 4, orphansClosed: 0 });
    expect(provider.closed).toEqual([]);

    clock.now += ORPHAN_GRACE_MS;
    expect(await registry().sweep()).toMatchObject({ orphansClosed: 1, foreign: 3, young: 0 });
    expect(provider.closed).toEqual([lost]);

    // The same window reported again (a retried call) claims nothing more.
    await registry().lostLaunches("dev/lossy-pool", [window]);
    clock.now += SWEEP_INTERVAL_MS;
    expect(await registry().sweep()).toMatchObject({ orphansClosed: 0, foreign: 3 });
    expect(provider.closed).toEqual([lost]);
    for (const sessionId of [connected, secondInWindow, outside]) expect(provider.live.has(sessionId)).toBe(true);
  });

  it("forgets a registration only when its pool reports it closed", async () => {
    const provider = new FaultProvider();
    const clock = await controlRegistry(provider);
    const other = browser(provider, clock.now - 1_000);
    await registry().track(other, "dev/some-pool");
    // One browser the platform stops listing (lagging or partial), one the list never shows.
    const omitted = browser(provider, clock.now - 1_000);
    await registry().track(omitted, "dev/some-pool");
    const unlisted = "fake-never-listed";
    await registry().track(unlisted, "dev/some-pool");

    provider.listPlan = [`omit:${omitted}`, `omit:${omitted}`, `omit:${omitted}`];
    for (let sweep = 0; sweep < 3; sweep += 1) {
      clock.now += SWEEP_INTERVAL_MS;
      expect(await registry().sweep()).toMatchObject({ missed: 2, forgotten: 0, untrusted: false });
    }
    expect(await registered(omitted)).toBe(true);
    expect(await registered(unlisted)).toBe(true);

    await registry().forget(unlisted);
    await registry().forget(unlisted);
    expect(await registered(unlisted)).toBe(false);
    expect(await registered(omitted)).toBe(true);
  });

  it("drops a registration its pool never reported closed only once older than 24 h and absent from two trusted sweeps", async () => {
    const provider = new FaultProvider();
    const clock = await controlRegistry(provider);
    browser(provider, clock.now);
    const stale = "fake-closed-but-never-reported";
    await registry().track(stale, "dev/some-pool");

    clock.now += STALE_REGISTRATION_MS;
    expect(await registry().sweep()).toMatchObject({ missed: 1, forgotten: 0 });
    expect(await registered(stale)).toBe(true);
    clock.now += SWEEP_INTERVAL_MS;
    expect(await registry().sweep()).toMatchObject({ missed: 1, forgotten: 1 });
    expect(await registered(stale)).toBe(false);
  });

  it("a list that never answers: the sweep reports it within its deadline and the next sweep is still armed", async () => {
    const provider = new FaultProvider();
    await controlRegistry(provider);
    const sessionId = browser(provider, Date.now());
    await registry().track(sessionId, "dev/some-pool");
    await runInDurableObject(registry(), async (object: SessionRegistry, state) => {
      object.listTimeoutMs = 200;
      await state.storage.deleteAlarm();
    });
    provider.listPlan = ["hang"];

    const started = Date.now();
    await runInDurableObject(registry(), (object: SessionRegistry) => object.alarm());
    expect(Date.now() - started).toBeLessThan(LIST_TIMEOUT_MS);
    expect((await registry().stats()).lastSweep).toMatchObject({ listFailed: true, live: 0, forgotten: 0 });
    expect(await alarmAt()).not.toBeNull();

    // The next sweep, with a list that answers, runs.
    expect(await runDurableObjectAlarm(registry())).toBe(true);
    expect((await registry().stats()).lastSweep).toMatchObject({ listFailed: false, live: 1 });
    expect(await registered(sessionId)).toBe(true);
  });

  it("an alarm the storage refuses to set is logged, fails nothing, and is set by the next call", async () => {
    const provider = new FaultProvider();
    await controlRegistry(provider);
    const refused = await runInDurableObject(registry(), (_o, state) => {
      const storage = state.storage as { setAlarm: DurableObjectStorage["setAlarm"] };
      const setAlarm = storage.setAlarm;
      storage.setAlarm = () => {
        storage.setAlarm = setAlarm;
        return Promise.reject(new Error("injected storage failure"));
      };
      return true;
    });
    expect(refused).toBe(true);
    const lines = await logged(() => registry().track("fake-registered-without-alarm", "dev/some-pool"));
    expect(lines).toContainEqual(expect.objectContaining({ event: "registry_arm_failed", error: "injected storage failure" }));
    expect(await registered("fake-registered-without-alarm")).toBe(true);
    expect(await alarmAt()).toBeNull();
    await registry().track("fake-registered-next", "dev/some-pool");
    expect(await alarmAt()).not.toBeNull();
  });

  it("closes a deleted pool's live browsers at the next sweep, and no other pool's", async () => {
    const provider = new FaultProvider();
    const clock = await controlRegistry(provider);
    const doomed = [browser(provider, clock.now - 1_000), browser(provider, clock.now - 1_000, true)];
    for (const sessionId of doomed) await registry().track(sessionId, "dev/deleted-pool");
    const kept = browser(provider, clock.now - 1_000);
    await registry().track(kept, "dev/kept-pool");

    await registry().untrackPool("dev", "deleted-pool");
    expect(await alarmAt()).toBeLessThanOrEqual(clock.now + ABANDONED_SWEEP_DELAY_MS);
    clock.now += ABANDONED_SWEEP_DELAY_MS;
    expect(await runDurableObjectAlarm(registry())).toBe(true);

    expect((await registry().stats()).lastSweep).toMatchObject({ abandonedClosed: 2, orphansClosed: 0 });
    expect(provider.closed.sort()).toEqual([...doomed].sort());
    expect(provider.live.has(kept)).toBe(true);
    for (const sessionId of doomed) expect(await registered(sessionId)).toBe(false);
    expect(await registered(kept)).toBe(true);
  });

  it("forgets a deleted pool's registration once absent from two trusted sweeps", async () => {
    const provider = new FaultProvider();
    const clock = await controlRegistry(provider);
    browser(provider, clock.now);
    const gone = "fake-closed-by-the-deleted-pool";
    await registry().track(gone, "dev/deleted-pool");
    await registry().untrackPool("dev", "deleted-pool");

    clock.now += 1;
    expect(await registry().sweep()).toMatchObject({ missed: 1, forgotten: 0 });
    clock.now += SWEEP_INTERVAL_MS;
    expect(await registry().sweep()).toMatchObject({ missed: 1, forgotten: 1 });
    expect(await registered(gone)).toBe(false);
    expect(provider.closed).toEqual([]);
  });

  it("a pool that comes back after an interrupted deletion keeps its browsers", async () => {
    const provider = new FaultProvider();
    const clock = await controlRegistry(provider);
    const createdAt = clock.now - 60_000;
    const sessionId = browser(provider, clock.now - 1_000);
    await registry().track(sessionId, "dev/back-pool");
    await registry().untrackPool("dev", "back-pool");
    // The deletion failed after unregistering; the pool's alarm registers it again, as created.
    await registry().trackPool("dev", "back-pool", createdAt);

    clock.now += ABANDONED_SWEEP_DELAY_MS;
    expect(await registry().sweep()).toMatchObject({ abandonedClosed: 0 });
    expect(provider.closed).toEqual([]);
    expect(await registered(sessionId)).toBe(true);
  });

  it("upgrades storage an earlier version wrote: its registrations are kept and judged by these rules", async () => {
    // The registry as the version before lost launches and abandonment left it.
    await runInDurableObject(registry(), (_o, state) => {
      state.storage.sql.exec(`DROP TABLE sessions`);
      state.storage.sql.exec(`DROP TABLE lost_launches`);
      state.storage.sql.exec(`CREATE TABLE sessions (session_id TEXT PRIMARY KEY, pool TEXT NOT NULL, registered_at INTEGER NOT NULL)`);
      state.storage.sql.exec(`INSERT INTO sessions (session_id, pool, registered_at) VALUES ('fake-from-before', 'dev/old-pool', 0)`);
    });
    await evictDurableObject(registry());
    const provider = new FaultProvider();
    const clock = await controlRegistry(provider);
    browser(provider, clock.now);
    expect(await registry().sweep()).toMatchObject({ tracked: 1, missed: 1, forgotten: 0 });
    await registry().lostLaunches("dev/old-pool", [{ startedAt: clock.now, endedAt: clock.now }]);
    await registry().untrackPool("dev", "old-pool");
    expect(await registry().sweep()).toMatchObject({ tracked: 1, abandonedClosed: 0 });
  });

  it("knows every browser a pool launches, so sweeping never closes a pool's browser", async () => {
    const provider = new FaultProvider();
    const pool = await faultPool({ maxSessions: 2 }, provider);
    // The strictest policy: any browser the registry did not know would be closed.
    await controlRegistry(provider, pool.clock, "all");
    const acquired = await pool.acquire();
    if (!acquired.ok) throw new Error(acquired.failure.detail);
    await pool.effectsDone();
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
