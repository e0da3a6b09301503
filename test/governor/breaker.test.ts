/**
 * The account's launch breaker and the platform's 429s, as the governor
 * applies them (src/governor/breaker.ts): a streak of failed launches opens
 * it; after the cooldown exactly one probe is granted; the probe's outcome
 * closes or reopens it; a 429 blocks every grant for its Retry-After, caps the
 * limit at the concurrency the platform reported, and never counts as a
 * failure. Each test has a governor of its own.
 */
import { describe, expect, it } from "vitest";
import { ACCOUNT_BREAKER_THRESHOLD, BREAKER_COOLDOWN_MS } from "../../src/governor/breaker";
import { PLATFORM_LIMIT_TTL_MS } from "../../src/governor/object";
import { testGovernor } from "./governor";

type Governor = Awaited<ReturnType<typeof testGovernor>>;

/** `count` launches granted and failed, each from its own pool. */
async function failLaunches(g: Governor, count: number) {
  for (let i = 0; i < count; i += 1) {
    const permit = await g.acquire("t", `p${i % 3}`);
    expect(permit.granted).toBe(true);
    await g.stub.settle("t", `p${i % 3}`, permit.permitId, { kind: "failed" });
  }
}

describe("the account breaker", () => {
  it("opens after a streak of failed launches: every acquire is refused with breaker_open until the cooldown ends", async () => {
    const g = await testGovernor({ maxConcurrentSessions: 50, launchesPerSecond: 1000 });
    await failLaunches(g, ACCOUNT_BREAKER_THRESHOLD - 1);
    expect((await g.stub.describe()).breaker).toEqual({ state: "closed", streak: ACCOUNT_BREAKER_THRESHOLD - 1, retryAfterSeconds: 0 });
    await failLaunches(g, 1);
    const refused = await g.acquire("other", "p");
    expect(refused).toMatchObject({ granted: false, reason: "breaker_open", retryAfterMs: BREAKER_COOLDOWN_MS, glance: { breaker: "open", used: 0 } });
    g.advance(BREAKER_COOLDOWN_MS - 1);
    expect(await g.acquire("other", "p", "warm")).toMatchObject({ granted: false, reason: "breaker_open", retryAfterMs: 1 });
  });

  it("a success resets the streak", async () => {
    const g = await testGovernor({ maxConcurrentSessions: 50, launchesPerSecond: 1000 });
    await failLaunches(g, ACCOUNT_BREAKER_THRESHOLD - 1);
    const ok = await g.acquire("t", "p");
    await g.stub.settle("t", "p", ok.permitId, { kind: "launched" });
    await failLaunches(g, ACCOUNT_BREAKER_THRESHOLD - 1);
    expect((await g.stub.describe()).breaker.state).toBe("closed");
  });

  it("half open after the cooldown: grants exactly one probe, and closes when the probe launches", async () => {
    const g = await testGovernor({ maxConcurrentSessions: 50, launchesPerSecond: 1000 });
    await failLaunches(g, ACCOUNT_BREAKER_THRESHOLD);
    g.advance(BREAKER_COOLDOWN_MS);
    expect((await g.stub.describe()).breaker.state).toBe("half_open");
    const probe = await g.acquire("a", "p");
    expect(probe.granted).toBe(true);
    for (const tenant of ["a", "b", "c"]) expect(await g.acquire(tenant, "q")).toMatchObject({ granted: false, reason: "breaker_open" });
    const glance = await g.stub.settle("a", "p", probe.permitId, { kind: "launched" });
    expect(glance.breaker).toBe("closed");
    expect((await g.acquire("b", "q")).granted).toBe(true);
    expect((await g.acquire("c", "q")).granted).toBe(true);
  });

  it("reopens for twice the cooldown when the probe fails", async () => {
    const g = await testGovernor({ maxConcurrentSessions: 50, launchesPerSecond: 1000 });
    await failLaunches(g, ACCOUNT_BREAKER_THRESHOLD);
    g.advance(BREAKER_COOLDOWN_MS);
    const probe = await g.acquire("a", "p");
    const glance = await g.stub.settle("a", "p", probe.permitId, { kind: "failed" });
    expect(glance.breaker).toBe("open");
    expect(await g.acquire("a", "p")).toMatchObject({ granted: false, reason: "breaker_open", retryAfterMs: 2 * BREAKER_COOLDOWN_MS });
    g.advance(2 * BREAKER_COOLDOWN_MS);
    expect((await g.acquire("a", "p")).granted).toBe(true);
  });

  it("lets another request probe when the probe's permit ends without an outcome", async () => {
    const g = await testGovernor({ maxConcurrentSessions: 50, launchesPerSecond: 1000 });
    await failLaunches(g, ACCOUNT_BREAKER_THRESHOLD);
    g.advance(BREAKER_COOLDOWN_MS);
    const probe = await g.acquire("a", "p");
    await g.stub.release("a", "p", [probe.permitId]);
    expect((await g.acquire("b", "q")).granted).toBe(true);
    expect((await g.acquire("c", "r")).granted).toBe(false);
  });
});

describe("the platform's 429", () => {
  it("blocks every grant for its Retry-After (platform_limited) and adopts the concurrency the platform reported", async () => {
    const g = await testGovernor({ maxConcurrentSessions: 10, launchesPerSecond: 1000 });
    const held = await g.acquire("t", "p");
    const limited = await g.acquire("t", "p");
    const glance = await g.stub.settle("t", "p", limited.permitId, { kind: "limited", retryAfterMs: 5_000, platform: { maxConcurrentSessions: 3 } });
    expect(glance).toMatchObject({ limit: 3, used: 1, headroom: 2 });
    expect(await g.acquire("u", "q")).toMatchObject({ granted: false, reason: "platform_limited", retryAfterMs: 5_000 });
    g.advance(4_999);
    expect(await g.acquire("u", "q", "warm")).toMatchObject({ granted: false, reason: "platform_limited", retryAfterMs: 1 });
    g.advance(1);
    expect((await g.acquire("u", "q")).granted).toBe(true);
    expect((await g.acquire("u", "q")).granted).toBe(true);
    expect(await g.acquire("u", "q")).toMatchObject({ granted: false, reason: "account_full" });
    const view = await g.stub.describe();
    expect(view.limits.maxConcurrentSessions).toBe(3);
    expect(view.configured.maxConcurrentSessions).toBe(Number(100_000));
    expect(view.overrides.maxConcurrentSessions).toBe(10);
    expect(view.platform).toMatchObject({ maxConcurrentSessions: 3 });
    // The platform's figure is kept an hour; then the operator's limit is back.
    g.advance(PLATFORM_LIMIT_TTL_MS);
    expect((await g.stub.describe()).limits.maxConcurrentSessions).toBe(10);
    await g.stub.release("t", "p", [held.permitId]);
  });

  it("never counts toward the breaker", async () => {
    const g = await testGovernor({ maxConcurrentSessions: 50, launchesPerSecond: 1000 });
    for (let i = 0; i < ACCOUNT_BREAKER_THRESHOLD + 2; i += 1) {
      const permit = await g.acquire("t", "p");
      expect(permit.granted).toBe(true);
      await g.stub.settle("t", "p", permit.permitId, { kind: "limited", retryAfterMs: 100 });
      g.advance(100);
    }
    expect((await g.stub.describe()).breaker).toMatchObject({ state: "closed", streak: 0 });
  });
});
