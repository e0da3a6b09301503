/**
 * Pools of different tenants sharing one account: the capacity governor
 * (src/governor) holds them together within the account's limits, shares
 * the account by tenant weight, takes browsers back from a tenant above its
 * share for a starved one, gets back the permits of a pool that died, paces
 * launches, and never blocks a pool that cannot reach it.
 *
 * Each test has an account of its own (a governor object by name) and one
 * virtual clock for the governor and every pool, moved by `step`.
 */
import { env, evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ACCOUNT_BREAKER_THRESHOLD } from "../../src/governor/breaker";
import { PERMIT_TTL_MS } from "../../src/governor/object";
import { FALLBACK_RETRY_MS } from "../../src/pool/account";
import { WARM_RETRY_MS } from "../../src/pool/permits";
import type { PoolConfigPatch } from "../../src/pool/config";
import type { PoolObject } from "../../src/pool/object";
import { injectFaults } from "../api/stub-faults";
import { FaultProvider } from "../support/fault-provider";
import { faultPool, granted, testAccount, type TestPool } from "../support/pool";

type Account = Awaited<ReturnType<typeof testAccount>>;

/** Tenants are named per test, so their weights and quotas are the test's own. */
function tenantName(label: string): string {
  return `acct-${label}-${crypto.randomUUID().slice(0, 8)}`;
}

async function setWeight(tenant: string, weight: number): Promise<void> {
  const stub = env.TENANT.get(env.TENANT.idFromName(tenant));
  await stub.setQuota(tenant, { weight });
}

const QUIET: PoolConfigPatch = { connectWithinSeconds: 0, maxSessionUses: 0, maxSessionAgeSeconds: 0, admission: false };

async function poolIn(account: Account, tenant: string, config: PoolConfigPatch): Promise<TestPool> {
  return faultPool({ ...QUIET, ...config }, new FaultProvider(), { tenant, governor: account.governor, clock: account.clock });
}

/** Moves the shared clock, runs every pool's alarm, and lets the I/O it started (and the governor's pokes) finish. */
async function step(account: Account, pools: TestPool[], ms: number): Promise<void> {
  for (const pool of pools) {
    await pool.stub.checkInvariants();
    await pool.stub.permitsAnswered();
  }
  account.clock.now += ms;
  for (const pool of pools) await runDurableObjectAlarm(pool.stub);
  for (const pool of pools) await pool.effectsDone();
}

/** Browsers running on the (fake) platform, all pools together. */
const running = (pools: TestPool[]) => pools.reduce((sum, pool) => sum + pool.provider.live.size, 0);

afterEach(() => {
  vi.restoreAllMocks();
});

describe("an account shared by two tenants", () => {
  it("never holds more browsers than the account limit, sampled at every step, and shares it by weight within 10 %", async () => {
    const account = await testAccount();
    const LIMIT = 10;
    await account.stub.setLimits({ maxConcurrentSessions: LIMIT, launchesPerSecond: 1000 });
    const [light, heavy] = [tenantName("light"), tenantName("heavy")];
    await setWeight(light, 1);
    await setWeight(heavy, 4);
    const a = await poolIn(account, light, { maxSessions: 10, maxWaiters: 1000 });
    const b = await poolIn(account, heavy, { maxSessions: 10, maxWaiters: 1000 });
    const pools = [a, b];
    const samples: number[] = [];
    const sample = async () => {
      samples.push(running(pools));
      expect(running(pools)).toBeLessThanOrEqual(LIMIT);
      expect((await account.stub.describe()).usage.used).toBeLessThanOrEqual(LIMIT);
    };

    // The light tenant comes first and takes the whole account.
    const held: Record<string, string[]> = { a: [], b: [] };
    for (let i = 0; i < 10; i += 1) {
      held.a!.push(granted(await a.acquire({ waitSeconds: 600 })).id);
      await a.effectsDone();
      await sample();
    }
    // Then both keep asking for more than the account has: each lease released is asked for again.
    const waiting: Array<Promise<unknown>> = [];
    const ask = (pool: TestPool, who: "a" | "b") =>
      waiting.push(
        pool.acquire({ waitSeconds: 600 }).then((answer) => {
          if (answer.ok) held[who]!.push(answer.value.lease.id);
        }),
      );
    for (let i = 0; i < 10; i += 1) ask(b, "b");
    await b.effectsDone();
    await sample();
    for (let round = 0; round < 40; round += 1) {
      for (const [pool, who] of [[a, "a"], [b, "b"]] as const) {
        const lease = held[who]!.shift();
        if (!lease) continue;
        expect((await pool.stub.release(lease)).ok).toBe(true);
        ask(pool, who);
      }
      await step(account, pools, 1_000);
      await sample();
    }
    const shares = Object.fromEntries((await account.stub.describe()).tenants.map((t) => [t.tenant, t]));
    expect(shares[light]!.share).toBeCloseTo(2, 5);
    expect(shares[heavy]!.share).toBeCloseTo(8, 5);
    // Within 10 % of the account: one browser either way.
    expect(Math.abs(a.provider.live.size - 2)).toBeLessThanOrEqual(LIMIT * 0.1);
    expect(Math.abs(b.provider.live.size - 8)).toBeLessThanOrEqual(LIMIT * 0.1);
    expect(samples.length).toBeGreaterThan(40);
    for (const pool of pools) {
      await pool.stub.releaseAll();
      await pool.expectConsistent();
    }
  });

  it("gives a starved pool a browser from the other tenant's idle sessions", async () => {
    const account = await testAccount();
    await account.stub.setLimits({ maxConcurrentSessions: 2, launchesPerSecond: 1000 });
    const warm = await poolIn(account, tenantName("warm"), { maxSessions: 2, minIdle: 2 });
    await warm.effectsDone();
    expect(await warm.counts()).toMatchObject({ idle: 2 });
    const starved = await poolIn(account, tenantName("starved"), { maxSessions: 2 });

    // The account is full of the other tenant's idle browsers; this caller waits, and one of them is closed for it.
    const lease = granted(await starved.acquire({ waitSeconds: 30 }));
    expect(lease.status).toBe("active");
    await warm.effectsDone();
    expect(await warm.counts()).toMatchObject({ idle: 1 });
    expect(running([warm, starved])).toBe(2);
    // The warm pool does not launch its minIdle back beyond its share while the other holds its own.
    await step(account, [warm, starved], 5_000);
    expect(await warm.counts()).toMatchObject({ idle: 1, launching: 0 });
    expect(running([warm, starved])).toBe(2);
    await warm.expectConsistent();
    await starved.expectConsistent();
  });

  it("a warm pool above its share asks for its warm target again only after WARM_RETRY_MS, or when told room came free", async () => {
    const account = await testAccount();
    await account.stub.setLimits({ maxConcurrentSessions: 2, launchesPerSecond: 1000 });
    const other = await poolIn(account, tenantName("holder"), { maxSessions: 2 });
    granted(await other.acquire());
    const warm = await poolIn(account, tenantName("warm"), { maxSessions: 2, minIdle: 2 });
    await warm.effectsDone();
    // One warm browser within its share of 1; the second is refused.
    expect(await warm.counts()).toMatchObject({ idle: 1, launching: 0 });
    const asked = { kind: "governor" as const, name: account.governor, method: "acquire", times: 0 };
    const faults = injectFaults(asked);
    try {
      for (let second = 1; second < WARM_RETRY_MS / 1000; second += 1) await step(account, [warm, other], 1_000);
      expect(faults.calls(asked)).toBe(0);
      await step(account, [warm, other], 1_000);
      expect(faults.calls(asked)).toBe(1);
      // A caller's launch still asks at once.
      const callers = faults.calls(asked);
      granted(await warm.acquire());
      expect(await warm.acquire()).toMatchObject({ ok: false });
      expect(faults.calls(asked)).toBe(callers + 1);
    } finally {
      faults.restore();
    }
    await warm.expectConsistent();
  });

  it("gets back the permits of a pool that died, by their expiry", async () => {
    const account = await testAccount();
    await account.stub.setLimits({ maxConcurrentSessions: 2, launchesPerSecond: 1000 });
    const dead = await poolIn(account, tenantName("dead"), { maxSessions: 2 });
    granted(await dead.acquire());
    granted(await dead.acquire());
    await dead.effectsDone();
    expect((await account.stub.describe()).usage.used).toBe(2);
    // The pool's object loses everything without telling anyone: its storage is gone, it restarts
    // as a pool that does not exist, and it never lists its permits again.
    await runInDurableObject(dead.stub, async (_object: PoolObject, state) => {
      await state.storage.deleteAlarm();
      await state.storage.deleteAll();
    });
    await evictDurableObject(dead.stub);

    const other = await poolIn(account, tenantName("other"), { maxSessions: 2 });
    expect(await other.acquire()).toMatchObject({ ok: false, failure: { status: 503, code: "browser_unavailable" } });
    account.clock.now += PERMIT_TTL_MS + 1;
    expect((await account.stub.describe()).usage.used).toBe(0);
    granted(await other.acquire());
    granted(await other.acquire());
    await other.expectConsistent();
  });

  it("never launches faster than the account's launch rate", async () => {
    const account = await testAccount();
    const RATE = 2;
    await account.stub.setLimits({ maxConcurrentSessions: 100, launchesPerSecond: RATE });
    const pool = await poolIn(account, tenantName("burst"), { maxSessions: 20, maxWaiters: 100 });
    const start = account.clock.now;
    const answers = Array.from({ length: 20 }, () => pool.acquire({ waitSeconds: 60 }));
    await pool.effectsDone();
    for (let t = 0; t < 40; t += 1) {
      // The bucket holds max(1, rate) tokens and refills at the rate.
      const elapsed = (account.clock.now - start) / 1000;
      expect(pool.provider.launches).toBeLessThanOrEqual(RATE + Math.floor(RATE * elapsed));
      await step(account, [pool], 250);
    }
    // And it kept launching at that pace: 2 at once, then 2 a second for 10 s.
    expect(pool.provider.launches).toBeGreaterThanOrEqual(18);
    await pool.stub.releaseAll();
    await Promise.allSettled(answers);
    await pool.expectConsistent();
  });
});

describe("the warm path", () => {
  it("hands an idle session to a caller without asking the governor anything", async () => {
    const account = await testAccount();
    const pool = await poolIn(account, tenantName("warm-path"), { maxSessions: 2, minIdle: 1 });
    await pool.effectsDone();
    const asked = { kind: "governor" as const, name: account.governor, method: "acquire", times: 0 };
    const faults = injectFaults(asked);
    try {
      const lease = granted(await pool.acquire());
      expect(lease.status).toBe("active");
      // The grant itself asked nothing; the warm target's replacement launch, afterwards, is what asks.
      await pool.effectsDone();
      expect(faults.args(asked)).toEqual([[expect.objectContaining({ kind: "warm" })]]);
    } finally {
      faults.restore();
    }
  });
});

describe("the platform's limits", () => {
  it("a launch refused with 429 backs off for as long as the platform's limits() says, across the account, and adopts its concurrency", async () => {
    const account = await testAccount();
    await account.stub.setLimits({ maxConcurrentSessions: 100, launchesPerSecond: 1000 });
    const refused = await poolIn(account, tenantName("refused"), { maxSessions: 4 });
    const other = await poolIn(account, tenantName("other"), { maxSessions: 4 });
    refused.provider.plan = [{ kind: "limit", retryAfterSeconds: 5 }];
    refused.provider.platformLimits = { maxConcurrentSessions: 3, allowedBrowserAcquisitions: 0, timeUntilNextAllowedBrowserAcquisition: 12_000 };
    expect(await refused.acquire()).toMatchObject({ ok: false, failure: { status: 503, code: "browser_unavailable", retryAfter: 12 } });
    expect(refused.provider.limitsAsked).toBe(1);
    const described = await account.stub.describe();
    expect(described.limits.maxConcurrentSessions).toBe(3);
    expect(described.usage.blockedUntil).toBe(new Date(account.clock.now + 12_000).toISOString());
    // The other tenant's pool waits too: the pause is the account's, not the refused pool's.
    const launchesBefore = other.provider.launches;
    expect(await other.acquire()).toMatchObject({ ok: false, failure: { status: 503, code: "browser_unavailable" } });
    expect(other.provider.launches).toBe(launchesBefore);
    // Not 5 s (the error's own hint): 12 s.
    await step(account, [refused, other], 5_000);
    expect(await refused.acquire()).toMatchObject({ ok: false, failure: { status: 503 } });
    await step(account, [refused, other], 7_000);
    granted(await refused.acquire());
    granted(await other.acquire());
    await refused.expectConsistent();
    await other.expectConsistent();
  });
});

describe("the account's circuit breaker", () => {
  it("opens on failures across the account's pools: a pool's acquire that needs a launch is answered 503 at once, its idle sessions are still served", async () => {
    const account = await testAccount();
    await account.stub.setLimits({ maxConcurrentSessions: 100, launchesPerSecond: 1000 });
    // Each pool's own breaker is off, so only the account's decides.
    const failing = await poolIn(account, tenantName("failing"), { maxSessions: 4, breakerThreshold: 0 });
    const healthy = await poolIn(account, tenantName("healthy"), { maxSessions: 4, minIdle: 1, breakerThreshold: 0 });
    await healthy.effectsDone();
    failing.provider.defaultPlan = { kind: "fail" };
    for (let i = 0; i < ACCOUNT_BREAKER_THRESHOLD; i += 1) {
      expect(await failing.acquire()).toMatchObject({ ok: false, failure: { status: 502 } });
      await failing.effectsDone();
    }
    expect((await account.stub.describe()).breaker.state).toBe("open");
    const launchesBefore = healthy.provider.launches;
    // The healthy pool's idle session is served; a second caller, who needs a launch, is told at once.
    granted(await healthy.acquire());
    await healthy.effectsDone();
    expect(await healthy.acquire()).toMatchObject({ ok: false, failure: { status: 503, code: "browser_unavailable", retryAfter: 30 } });
    expect(healthy.provider.launches).toBe(launchesBefore);
    // After the cooldown one probe goes through; its success closes the breaker.
    await step(account, [failing, healthy], 30_000);
    granted(await healthy.acquire({ waitSeconds: 5 }));
    expect((await account.stub.describe()).breaker.state).toBe("closed");
    await healthy.expectConsistent();
    await failing.expectConsistent();
  });
});

describe("a pool that cannot reach the governor", () => {
  it("launches within its local budget, says so, and never hangs; the governor adopts those browsers when it answers again", async () => {
    const account = await testAccount();
    const pool = await poolIn(account, tenantName("cut-off"), { maxSessions: 4 });
    await runInDurableObject(pool.stub, (object: PoolObject) => {
      object.timeouts.governor = 100;
    });
    // Every call to this account's governor hangs.
    const faults = injectFaults(
      ...(["acquire", "settle", "release", "sync"] as const).map((method) => ({
        kind: "governor" as const,
        name: account.governor,
        method,
        times: 1_000,
        answer: () => new Promise(() => {}),
      })),
    );
    try {
      // The default budget, GOVERNOR_FALLBACK_SESSIONS, is 2 browsers.
      granted(await pool.acquire());
      granted(await pool.acquire());
      expect(await pool.acquire()).toMatchObject({ ok: false, failure: { status: 503, code: "browser_unavailable" } });
      const described = await pool.stub.describe();
      expect(described.ok && described.value.account.governor).toBe("unreachable");
      const metrics = await pool.stub.metrics();
      expect(metrics?.governorUnreachable).toBe(true);
      expect(metrics?.counters).toContainEqual({ name: "governor_fallback", labels: {}, value: 2 });
    } finally {
      faults.restore();
    }
    // Reachable again: the next launch asks it, and the next sync tells it of the two launched meanwhile.
    await step(account, [pool], FALLBACK_RETRY_MS);
    granted(await pool.acquire());
    await pool.effectsDone();
    await pool.stub.reconcileNow();
    await vi.waitFor(async () => expect((await account.stub.describe()).usage.used).toBe(3));
    const described = await pool.stub.describe();
    expect(described.ok && described.value.account.governor).toBe("ok");
    await pool.expectConsistent();
  });
});

describe("an account shared by two tenants, on real Chromium", () => {
  it("two tenants' pools of maxSessions 2 on an account of 2 never run more than 2 browsers, and the one that waits gets the other's", async () => {
    const governor = `test-account-${crypto.randomUUID()}`;
    await env.GOVERNOR.get(env.GOVERNOR.idFromName(governor)).setLimits({ maxConcurrentSessions: 2, launchesPerSecond: 1000 });
    const pools = await Promise.all(
      ["first", "second"].map(async (label) => {
        const tenant = tenantName(label);
        const name = `real-${label}`;
        const stub = env.POOL.get(env.POOL.idFromName(`${tenant}/${name}`));
        // Real Chromium through the BROWSER binding; only the account is the test's own.
        await runInDurableObject(stub, (object: PoolObject) => object.useGovernor(governor));
        expect((await stub.configure(tenant, name, { maxSessions: 2, connectWithinSeconds: 0 })).ok).toBe(true);
        const acquire = (waitSeconds: number) =>
          stub.acquire({ leaseId: crypto.randomUUID(), tenant, pool: name, owner: "test", waitSeconds });
        return { stub, acquire };
      }),
    );
    const [first, second] = pools as [(typeof pools)[number], (typeof pools)[number]];
    // Sampled throughout: the browsers both pools hold (launched and not yet closed).
    let most = 0;
    let sampling = true;
    const held = async (pool: (typeof pools)[number]) =>
      runInDurableObject(pool.stub, (_object: PoolObject, state) =>
        state.storage.sql
          .exec<{ n: number }>(`SELECT COUNT(*) AS n FROM sessions WHERE session_id IS NOT NULL AND state IN ('idle', 'leased', 'resetting', 'closing')`)
          .one().n,
      );
    const sampler = (async () => {
      while (sampling) {
        most = Math.max(most, (await held(pools[0]!)) + (await held(pools[1]!)));
        await scheduler.wait(20);
      }
    })();
    try {
      const leases = [granted(await first.acquire(30)), granted(await first.acquire(30))];
      const waiting = second.acquire(30);
      // The second tenant is below its share (1 of 2): the first gives a browser back when its lease ends.
      expect((await first.stub.release(leases[0]!.id)).ok).toBe(true);
      const lease = granted(await waiting);
      expect(lease.sessionId).not.toBe(leases[0]!.sessionId);
      const given = await runInDurableObject(first.stub, (_object: PoolObject, state) =>
        state.storage.sql.exec(`SELECT state, end_reason FROM sessions WHERE session_id = ?`, leases[0]!.sessionId).one(),
      );
      expect(given).toEqual({ state: "closed", end_reason: "shed" });
      // The browser it got is a real one, running.
      const { RenderingProvider } = await import("../../src/browser/rendering");
      expect(await new RenderingProvider(env.BROWSER).probe(lease.sessionId!)).toBe(true);
    } finally {
      sampling = false;
      await sampler;
      for (const pool of pools) {
        await pool.stub.releaseAll();
        await pool.stub.effectsDone();
      }
    }
    expect(most).toBeLessThanOrEqual(2);
    expect(most).toBe(2);
  });
});
