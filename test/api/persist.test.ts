/**
 * persistProfile and profileId on the native acquire, with real Chromium and
 * Miniflare's R2: a lease's browser state is saved to its profile when the
 * lease ends (released, or expired: however it ends), and a lease naming the
 * profile starts with it. Another tenant cannot use the profile.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { RenderingProvider } from "../../src/browser/rendering";
import { call, DEV2_KEY, newPool, poolName } from "../support/http";
import { newTenant } from "../support/tenants";

const browsers = new RenderingProvider(env.BROWSER);

/** Asks until `done` holds, within `ms`: the profile is written by the pool's reset or close, after the release answered. */
async function until<T>(ask: () => Promise<T>, done: (value: T) => boolean, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms;
  for (let delay = 20; ; delay = Math.min(delay * 2, 250)) {
    const value = await ask();
    if (done(value)) return value;
    if (Date.now() + delay > deadline) throw new Error(`${what}: not within ${ms} ms (last: ${JSON.stringify(value)})`);
    await scheduler.wait(delay);
  }
}
const cookieNames = (state: { cookies: { name: string }[] }) => state.cookies.map((c) => c.name).sort();

describe("persistProfile and profileId on acquire", () => {
  it("saves the state at release into a new profile, and a later lease naming it starts with it", async () => {
    const pool = await newPool("persist", { maxSessions: 1 });
    const first = await call(`/v1/pools/${pool}/leases`, { method: "POST", body: { persistProfile: true } });
    expect(first.status, JSON.stringify(first.body)).toBe(201);
    const profileId: string = first.body.persistProfile;
    expect(profileId).toMatch(/^[0-9a-f-]{36}$/);
    expect((await call(`/v1/profiles/${profileId}`)).body.status).toBe("UPLOADING");

    // What the client did in the browser during the lease.
    await browsers.applyState(first.body.sessionId, {
      cookies: [{ name: "auth", value: "token-1", domain: "app.example", path: "/", expires: Date.now() / 1000 + 3600 }],
      localStorage: { "https://app.example": { folder: "inbox" } },
    });
    expect((await call(`/v1/pools/${pool}/leases/${first.body.id}`, { method: "DELETE" })).status).toBe(200);

    const saved = await until(async () => (await call(`/v1/profiles/${profileId}`)).body, (p) => p.status === "READY", 20_000, "the profile saved");
    expect(saved).toMatchObject({ id: profileId, sourceSessionId: first.body.id });
    const events = await call(`/v1/pools/${pool}/leases/${first.body.id}/events`);
    expect(events.body.events.map((e: { event: string }) => e.event)).toContain("profile_saved");

    // Another tenant cannot start from it.
    const foreign = await call(`/v1/pools/${pool}/leases`, { method: "POST", body: { profileId }, key: DEV2_KEY });
    expect(foreign.status).toBe(404);

    const second = await call(`/v1/pools/${pool}/leases`, { method: "POST", body: { profileId, waitSeconds: 30 } });
    expect(second.status, JSON.stringify(second.body)).toBe(201);
    const state = await call(`/v1/pools/${pool}/leases/${second.body.id}/context`);
    expect(cookieNames(state.body)).toEqual(["auth"]);
    expect(state.body.localStorage).toEqual({ "https://app.example": { folder: "inbox" } });
    await call(`/v1/pools/${pool}/leases/${second.body.id}`, { method: "DELETE" });
  });

  it("saves when the lease expires too (its browser is closed, not reused, after the save)", async () => {
    const pool = await newPool("persist-exp", { maxSessions: 1 });
    const lease = await call(`/v1/pools/${pool}/leases`, { method: "POST", body: { persistProfile: true, ttlSeconds: 2 } });
    expect(lease.status).toBe(201);
    const profileId: string = lease.body.persistProfile;
    await browsers.applyState(lease.body.sessionId, { cookies: [{ name: "late", value: "1", domain: "app.example", path: "/" }], localStorage: {} });
    const saved = await until(async () => (await call(`/v1/profiles/${profileId}`)).body, (p) => p.status === "READY", 30_000, "the profile saved at expiry");
    expect(saved.sourceSessionId).toBe(lease.body.id);
    expect((await call(`/v1/pools/${pool}/leases/${lease.body.id}`)).body.status).toBe("expired");
    const stored = await call(`/v1/profiles/${profileId}/context`);
    expect(cookieNames(stored.body)).toEqual(["late"]);
  });

  it("an Idempotency-Key replay answers the same lease and profile, and leaves no second profile behind", async () => {
    const { key } = await newTenant("persist-replay");
    const pool = poolName("persist-replay");
    const ask = { method: "POST", body: { persistProfile: true }, key, headers: { "idempotency-key": crypto.randomUUID() } } as const;
    const first = await call(`/v1/pools/${pool}/leases`, ask);
    expect(first.status, JSON.stringify(first.body)).toBe(201);
    const again = await call(`/v1/pools/${pool}/leases`, ask);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(again.body).toMatchObject({ id: first.body.id, persistProfile: first.body.persistProfile });
    const listed = await call(`/v1/profiles`, { key });
    expect(listed.body.profiles.map((p: { id: string }) => p.id)).toEqual([first.body.persistProfile]);
    await call(`/v1/pools/${pool}/leases/${first.body.id}`, { method: "DELETE", key });
  });

  it("answers 404 for a profile the tenant does not have, and takes no lease", async () => {
    const pool = await newPool("persist-404", { maxSessions: 1 });
    const reply = await call(`/v1/pools/${pool}/leases`, { method: "POST", body: { profileId: crypto.randomUUID() } });
    expect(reply.status).toBe(404);
    expect(reply.body.code).toBe("not_found");
    expect((await call(`/v1/pools/${pool}/leases`)).body.leases).toEqual([]);
  });
});
