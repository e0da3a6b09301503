/**
 * Expired profiles deleted in bulk (src/profiles/sweep.ts): bounded passes
 * that continue where the last one stopped, a round at most every
 * SWEEP_INTERVAL_MS, run from the account registry's alarm. Time is the
 * profiles' stored expiresAt against a clock the test passes in.
 */
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import { PROFILES_PREFIX, profileObjectKey } from "../../src/profiles/store";
import { expireProfiles, expireProfilesSafely, SWEEP_INTERVAL_MS, sweepExpired } from "../../src/profiles/sweep";
import { logged } from "../support/logs";
import type { SessionRegistry } from "../../src/registry/object";
import { FaultProvider } from "../support/fault-provider";

const NOW = Date.parse("2030-06-01T00:00:00Z");

/** A stored profile (metadata only: the sweep reads no bodies) expiring at `expiresAt`. */
async function stored(tenant: string, expiresAt: number): Promise<string> {
  const key = profileObjectKey(tenant, crypto.randomUUID());
  const at = new Date(NOW - 86_400_000).toISOString();
  await env.PROFILES.put(key, "sealed", {
    customMetadata: { createdAt: at, updatedAt: at, status: "READY", bytes: "6", expiresAt: new Date(expiresAt).toISOString(), keyVersion: "v1" },
  });
  return key;
}

async function keys(): Promise<string[]> {
  return (await env.PROFILES.list({ prefix: PROFILES_PREFIX })).objects.map((o) => o.key).sort();
}

/** A sweep host over an in-memory meta table. */
function host(now: number, meta = new Map<string, string>()) {
  return { bucket: env.PROFILES, now, read: (key: string) => meta.get(key), write: (key: string, value: string) => void meta.set(key, value), meta };
}

// Every test starts from an empty bucket (the sweep looks at all tenants' profiles).
beforeEach(async () => {
  const all = await keys();
  if (all.length > 0) await env.PROFILES.delete(all);
});

describe("the profile sweep", () => {
  it("deletes expired profiles of every tenant, a bounded pass at a time, continuing after the last key it reached", async () => {
    const expired = [await stored("tenant-a", NOW - 1), await stored("tenant-a", NOW - 60_000), await stored("tenant-b", NOW)];
    const live = [await stored("tenant-a", NOW + 1), await stored("tenant-b", NOW + 86_400_000)];
    const first = await sweepExpired(env.PROFILES, NOW, undefined, 2);
    expect(first.scanned).toBe(2);
    expect(first.next).not.toBeNull();
    const second = await sweepExpired(env.PROFILES, NOW, first.next!, 2);
    expect(second.scanned).toBe(2);
    const third = await sweepExpired(env.PROFILES, NOW, second.next!, 2);
    expect(third).toMatchObject({ scanned: 1, next: null });
    expect(first.deleted + second.deleted + third.deleted).toBe(expired.length);
    expect(await keys()).toEqual(live.sort());
  });

  it("starts a round at most every SWEEP_INTERVAL_MS, and wants no wake-up once no profile is left", async () => {
    const live = await stored("tenant-c", NOW + 10 * SWEEP_INTERVAL_MS);
    const h = host(NOW);
    expect(await expireProfiles(h)).toBe(SWEEP_INTERVAL_MS);
    const late = await stored("tenant-c", NOW + 1_000);
    // Within the interval: no pass, so the profile that expired meanwhile is still there.
    expect(await expireProfiles(host(NOW + 2_000, h.meta))).toBe(SWEEP_INTERVAL_MS - 2_000);
    expect(await keys()).toEqual([late, live].sort());
    // The next round deletes it.
    expect(await expireProfiles(host(NOW + SWEEP_INTERVAL_MS, h.meta))).toBe(SWEEP_INTERVAL_MS);
    expect(await keys()).toEqual([live]);
    // With nothing left, nothing to wake for.
    await env.PROFILES.delete(live);
    expect(await expireProfiles(host(NOW + 2 * SWEEP_INTERVAL_MS, h.meta))).toBeNull();
  });
});

describe("the registry's alarm", () => {
  it("deletes expired profiles, and wakes again for the next round while profiles remain", async () => {
    const expired = await stored("tenant-d", NOW - 1);
    const live = await stored("tenant-e", NOW + 10 * SWEEP_INTERVAL_MS);
    // A registry of its own, on a fake platform with no browsers, at the test's time.
    const registry = env.REGISTRY.get(env.REGISTRY.idFromName("profile-sweep-test"));
    await runInDurableObject(registry, async (object: SessionRegistry, state) => {
      object.useProvider(new FaultProvider());
      object.clock = () => NOW;
      // Far enough ahead never to fire by itself: the test runs it.
      await state.storage.setAlarm(Date.now() + 60 * 60_000);
    });
    expect(await runDurableObjectAlarm(registry)).toBe(true);
    expect(await keys()).toEqual([live]);
    expect(await env.PROFILES.head(expired)).toBeNull();
    // No browsers to watch, but profiles: the next round is armed.
    const alarm = await runInDurableObject(registry, (_object, state) => state.storage.getAlarm());
    expect(alarm).toBe(NOW + SWEEP_INTERVAL_MS);
    await runInDurableObject(registry, (_object, state) => state.storage.deleteAlarm());
  });

  it("a deployment without the PROFILES binding has nothing to sweep: no wake-up, no failure logged", async () => {
    const meta = new Map<string, string>();
    let answer: number | null | undefined;
    const lines = await logged(async () => {
      answer = await expireProfilesSafely({ bucket: undefined, now: Date.now(), read: (k) => meta.get(k), write: (k, v) => void meta.set(k, v) });
    });
    expect(answer).toBeNull();
    expect(lines.filter((l) => String(l.event).startsWith("profile"))).toEqual([]);
  });
});
