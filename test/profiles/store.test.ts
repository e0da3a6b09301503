/**
 * The profiles' store (src/profiles/store.ts) as the broker's lease lifecycle
 * calls it, and their encryption at rest (src/profiles/crypto.ts): against
 * Miniflare's R2, with the clock passed in.
 */
import { env } from "cloudflare:test";
import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { profiles, refuseUploads } from "../../src/api/profiles";
import type { AuthVariables } from "../../src/api/auth";
import { onError } from "../../src/api/errors";
import { MAX_STATE_BYTES, type StoredState } from "../../src/browser/state";
import { openState, ProfileKeyError, sealState } from "../../src/profiles/crypto";
import {
  createProfile,
  listProfiles,
  loadProfile,
  markProfileFailed,
  MAX_PROFILES_PER_TENANT,
  ProfileError,
  profileObjectKey,
  reserveProfile,
  saveProfile,
} from "../../src/profiles/store";
import { tenantName } from "../support/tenants";

const DAY_MS = 86_400_000;
const COOKIE_VALUE = "c00kie-secret-4d7f0e";
const STORAGE_VALUE = "local-storage-secret-91be3a";

const state: StoredState = {
  cookies: [{ name: "session", value: COOKIE_VALUE, domain: "example.com", path: "/" }],
  localStorage: { "https://example.com": { token: STORAGE_VALUE } },
};

const tooBig: StoredState = { cookies: [], localStorage: { "https://example.com": { blob: "x".repeat(MAX_STATE_BYTES) } } };

/** The Worker's env without a usable profiles key. */
const keyless = (value: string | undefined) => ({ ...env, PROFILE_ENCRYPTION_KEY: value }) as Env;

async function thrown(work: Promise<unknown>): Promise<unknown> {
  try {
    await work;
  } catch (error) {
    return error;
  }
  throw new Error("expected a rejection");
}

describe("the profiles' store", () => {
  it("reserves an empty UPLOADING profile, saves a state to it (READY), and loads it back", async () => {
    const tenant = tenantName("st-life");
    const now = Date.parse("2030-01-01T00:00:00Z");
    const reserved = await reserveProfile(env, tenant, { sourceSessionId: "lease-1" }, { now, quotaDays: 30 });
    expect(reserved).toMatchObject({ status: "UPLOADING", sourceSessionId: "lease-1", retentionDays: null, keyVersion: "v1", failure: null });
    expect((await loadProfile(env, tenant, reserved.id, now))?.state).toEqual({ cookies: [], localStorage: {} });

    const later = now + 60_000;
    const saved = await saveProfile(env, tenant, reserved.id, state, { sourceSessionId: "lease-2" }, { now: later, quotaDays: 30 });
    expect(saved).toMatchObject({ id: reserved.id, status: "READY", sourceSessionId: "lease-2", createdAt: reserved.createdAt, updatedAt: new Date(later).toISOString() });
    expect(saved.expiresAt).toBe(new Date(later + 30 * DAY_MS).toISOString());
    expect(await loadProfile(env, tenant, reserved.id, later)).toEqual({ meta: saved, state });
    // Another tenant loads nothing under the same id.
    expect(await loadProfile(env, tenantName("st-other"), reserved.id, later)).toBeUndefined();
  });

  it("takes the retention from the tenant's quota when the caller has not read it", async () => {
    const tenant = tenantName("st-quota");
    const now = Date.now();
    const profile = await createProfile(env, tenant, { state }, { now });
    expect(Date.parse(profile.expiresAt) - now).toBe(30 * DAY_MS);
  });

  it("saves a state over MAX_STATE_BYTES nowhere: the profile keeps its state, is FAILED with the reason, and the call throws", async () => {
    const tenant = tenantName("st-big");
    const now = Date.now();
    const profile = await createProfile(env, tenant, { state }, { now, quotaDays: 30 });
    const error = await thrown(saveProfile(env, tenant, profile.id, tooBig, { sourceSessionId: "lease-3" }, { now, quotaDays: 30 }));
    expect(error).toBeInstanceOf(Error);
    expect(String(error)).toContain(String(MAX_STATE_BYTES));
    const after = await loadProfile(env, tenant, profile.id, now);
    expect(after?.meta.status).toBe("FAILED");
    expect(after?.meta.failure).toContain(String(MAX_STATE_BYTES));
    expect(after?.state).toEqual(state);

    // A later save that fits makes it READY again.
    const saved = await saveProfile(env, tenant, profile.id, state, { sourceSessionId: "lease-4" }, { now, quotaDays: 30 });
    expect(saved).toMatchObject({ status: "READY", failure: null });
  });

  it("marks a profile FAILED keeping its state, and never creates one that is gone", async () => {
    const tenant = tenantName("st-failed");
    const now = Date.now();
    const profile = await createProfile(env, tenant, { state }, { now, quotaDays: 30 });
    const failed = await markProfileFailed(env, tenant, profile.id, "the browser was gone", { now, quotaDays: 30 });
    expect(failed).toMatchObject({ status: "FAILED", failure: "the browser was gone", bytes: profile.bytes });
    expect((await loadProfile(env, tenant, profile.id, now))?.state).toEqual(state);

    const absent = crypto.randomUUID();
    expect(await markProfileFailed(env, tenant, absent, "whatever", { now, quotaDays: 30 })).toBeUndefined();
    expect(await env.PROFILES.head(profileObjectKey(tenant, absent))).toBeNull();
  });

  it("lists a tenant's profiles newest first", async () => {
    const tenant = tenantName("st-order");
    const now = Date.now();
    const older = await createProfile(env, tenant, {}, { now, quotaDays: 30 });
    const newer = await createProfile(env, tenant, {}, { now: now + 1_000, quotaDays: 30 });
    expect((await listProfiles(env, tenant, now + 2_000)).map((p) => p.id)).toEqual([newer.id, older.id]);
  });

  it(`refuses a tenant's profile beyond ${MAX_PROFILES_PER_TENANT} with 409 profile_limit_reached`, async () => {
    const tenant = tenantName("st-limit");
    const now = Date.now();
    const expiresAt = new Date(now + DAY_MS).toISOString();
    // Stand-ins: objects with a profile's metadata (a listing reads no bodies).
    const ids = Array.from({ length: MAX_PROFILES_PER_TENANT }, () => crypto.randomUUID());
    for (let i = 0; i < ids.length; i += 100) {
      await Promise.all(
        ids.slice(i, i + 100).map((id) =>
          env.PROFILES.put(profileObjectKey(tenant, id), "x", {
            customMetadata: { createdAt: new Date(now).toISOString(), updatedAt: new Date(now).toISOString(), status: "READY", bytes: "1", expiresAt, keyVersion: "v1" },
          }),
        ),
      );
    }
    expect((await listProfiles(env, tenant, now)).length).toBe(MAX_PROFILES_PER_TENANT);
    for (const work of [createProfile(env, tenant, { state }, { now, quotaDays: 30 }), reserveProfile(env, tenant, { sourceSessionId: null }, { now, quotaDays: 30 })]) {
      const error = await thrown(work);
      expect(error).toBeInstanceOf(ProfileError);
      expect((error as ProfileError).failure).toMatchObject({ status: 409, code: "profile_limit_reached" });
    }
    // An expired one does not count: it makes room again.
    const first = await env.PROFILES.head(profileObjectKey(tenant, ids[0]!));
    await env.PROFILES.put(profileObjectKey(tenant, ids[0]!), "x", { customMetadata: { ...first!.customMetadata, expiresAt: new Date(now - 1).toISOString() } });
    expect((await createProfile(env, tenant, { state }, { now, quotaDays: 30 })).status).toBe("READY");
  });
});

describe("profiles at rest", () => {
  it("are stored encrypted: neither the cookie nor the localStorage value is in the R2 object", async () => {
    const tenant = tenantName("st-rest");
    const profile = await createProfile(env, tenant, { state }, { quotaDays: 30 });
    const object = await env.PROFILES.get(profileObjectKey(tenant, profile.id));
    const raw = new Uint8Array(await object!.arrayBuffer());
    const text = new TextDecoder("latin1").decode(raw);
    expect(text).not.toContain(COOKIE_VALUE);
    expect(text).not.toContain(STORAGE_VALUE);
    expect(text).not.toContain("example.com");
    expect(JSON.stringify(object!.customMetadata)).not.toContain(COOKIE_VALUE);
    // IV (12 bytes) + the JSON's length + the GCM tag (16 bytes).
    expect(raw.byteLength).toBe(12 + profile.bytes + 16);
    expect(await openState(env, tenant, profile.id, raw, "v1")).toEqual(state);
  });

  it("decrypt only for the tenant and profile they were sealed for", async () => {
    const tenant = tenantName("st-aad");
    const id = crypto.randomUUID();
    const { blob } = await sealState(env, tenant, id, state);
    expect(await openState(env, tenant, id, blob, "v1")).toEqual(state);
    await expect(openState(env, tenantName("st-thief"), id, blob, "v1")).rejects.toBeInstanceOf(ProfileKeyError);
    await expect(openState(env, tenant, crypto.randomUUID(), blob, "v1")).rejects.toBeInstanceOf(ProfileKeyError);
    await expect(openState(keyless("another-secret-of-at-least-32-characters!"), tenant, id, blob, "v1")).rejects.toBeInstanceOf(ProfileKeyError);

    // A blob copied under another tenant's key is not that tenant's profile: it does not open there.
    const profile = await createProfile(env, tenant, { state }, { quotaDays: 30 });
    const object = await env.PROFILES.get(profileObjectKey(tenant, profile.id));
    const thief = tenantName("st-thief");
    await env.PROFILES.put(profileObjectKey(thief, profile.id), await object!.arrayBuffer(), { customMetadata: object!.customMetadata });
    const error = await thrown(loadProfile(env, thief, profile.id));
    expect((error as ProfileError).failure).toMatchObject({ status: 503, code: "profiles_unavailable" });
  });

  it("are unavailable without PROFILE_ENCRYPTION_KEY (or with one under 32 characters): nothing is stored in clear", async () => {
    const tenant = tenantName("st-keyless");
    for (const secret of [undefined, "", "too-short-a-secret"]) {
      const error = await thrown(createProfile(keyless(secret), tenant, { state }, { quotaDays: 30 }));
      expect(error).toBeInstanceOf(ProfileError);
      expect((error as ProfileError).failure).toMatchObject({ status: 503, code: "profiles_unavailable" });
      expect(((await thrown(loadProfile(keyless(secret), tenant, crypto.randomUUID()))) as ProfileError).failure.code).toBe("profiles_unavailable");
    }
    expect((await env.PROFILES.list({ prefix: `profiles/${tenant}/` })).objects).toEqual([]);
  });

  it("answer every route of the API with 503 profiles_unavailable and Retry-After when the key is missing", async () => {
    const app = new Hono<{ Bindings: Env; Variables: AuthVariables }>();
    app.use("*", async (c, next) => {
      c.set("tenant", "keyless");
      c.set("owner", "test");
      await next();
    });
    app.route("/v1", profiles);
    app.onError(onError);
    const id = crypto.randomUUID();
    for (const [method, path] of [
      ["GET", "/v1/profiles"],
      ["POST", "/v1/profiles"],
      ["GET", `/v1/profiles/${id}`],
      ["PATCH", `/v1/profiles/${id}`],
      ["GET", `/v1/profiles/${id}/context`],
      ["DELETE", `/v1/profiles/${id}`],
    ] as const) {
      const reply = await app.request(`https://broker.test${path}`, { method }, keyless(undefined));
      const body = (await reply.json()) as { code: string };
      expect({ method, path, status: reply.status, code: body.code, retryAfter: reply.headers.get("retry-after") }).toEqual({
        method,
        path,
        status: 503,
        code: "profiles_unavailable",
        retryAfter: "60",
      });
    }
  });
});

describe("refuseUploads", () => {
  it("refuses an archive upload from its content type, before any body limit reads it", async () => {
    const app = new Hono();
    app.use("/v1/profiles", refuseUploads);
    app.post("/v1/profiles", (c) => c.text("reached"));
    app.onError(onError);
    // Declared larger than any state body: named without reading the form.
    const reply = await app.request("https://broker.test/v1/profiles", {
      method: "POST",
      headers: { "content-type": "multipart/form-data; boundary=x", "content-length": String(50 * 1024 * 1024) },
      body: "--x--",
    });
    expect(reply.status).toBe(400);
    expect(((await reply.json()) as { detail: string }).detail).toContain("body.userDataDir");
    const json = await app.request("https://broker.test/v1/profiles", { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect(await json.text()).toBe("reached");
  });
});
