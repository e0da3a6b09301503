/**
 * Steel's Profiles API (src/api/profiles.ts) through the real Worker, with the
 * profiles kept in Miniflare's R2: create, list, get, update, read back the
 * state, delete; another tenant sees none of it; the size limit; Steel's
 * user-data-dir uploads refused by name; retention from the tenant's quota
 * and the profile's own, and an expired profile gone.
 */
import { env, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { MAX_STATE_BYTES } from "../../src/browser/state";
import { profileObjectKey } from "../../src/profiles/store";
import { call } from "../support/http";
import { ADMIN, newTenant } from "../support/tenants";

const DAY_MS = 86_400_000;

const context = {
  cookies: [{ name: "sid", value: "cookie-value-1", domain: "example.com", path: "/", httpOnly: true, secure: true }],
  localStorage: { "https://example.com": { theme: "dark" } },
};

const post = (key: string, body: unknown) => call("/v1/profiles", { method: "POST", body, key });
const patch = (key: string, id: string, body: unknown) => call(`/v1/profiles/${id}`, { method: "PATCH", body, key });

/** Rewrites a profile's stored expiry, as if its retention had passed (R2's metadata, not the clock, says when). */
async function expire(tenant: string, id: string): Promise<void> {
  const key = profileObjectKey(tenant, id);
  const object = await env.PROFILES.get(key);
  expect(object).not.toBeNull();
  const body = await object!.arrayBuffer();
  await env.PROFILES.put(key, body, { customMetadata: { ...object!.customMetadata, expiresAt: new Date(Date.now() - 1_000).toISOString() } });
}

describe("/v1/profiles", () => {
  it("creates a profile from a sessionContext, lists it, gets it in Steel's shape, reads its state back, updates and deletes it", async () => {
    const { tenant, key } = await newTenant("prof-crud");
    const created = await post(key, { sessionContext: context });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const profile = created.body;
    expect(created.headers.get("location")).toBe(`/v1/profiles/${profile.id}`);
    expect(profile).toMatchObject({
      status: "READY",
      sourceSessionId: null,
      credentialsConfig: null,
      dimensions: null,
      extensionIds: null,
      fingerprint: null,
      useProxyConfig: null,
      userAgent: null,
      retentionDays: null,
      failureReason: null,
    });
    expect(profile.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(profile.bytes).toBe(new TextEncoder().encode(JSON.stringify(context)).byteLength);
    // The profile object never carries the state.
    expect(JSON.stringify(profile)).not.toContain("cookie-value-1");

    const listed = await call("/v1/profiles", { key });
    expect(listed.body).toEqual({ count: 1, profiles: [profile] });
    expect((await call(`/v1/profiles/${profile.id}`, { key })).body).toEqual(profile);
    expect((await call(`/v1/profiles/${profile.id}/context`, { key })).body).toEqual(context);

    const replaced = { cookies: [], localStorage: { "https://example.org": { lang: "fr" } } };
    const updated = await patch(key, profile.id, { sessionContext: replaced });
    expect(updated.status).toBe(200);
    expect(updated.body).toMatchObject({ id: profile.id, createdAt: profile.createdAt, status: "READY" });
    expect(Date.parse(updated.body.updatedAt)).toBeGreaterThanOrEqual(Date.parse(profile.updatedAt));
    expect((await call(`/v1/profiles/${profile.id}/context`, { key })).body).toEqual(replaced);

    const deleted = await call(`/v1/profiles/${profile.id}`, { method: "DELETE", key });
    expect(deleted.status).toBe(204);
    expect((await call(`/v1/profiles/${profile.id}`, { key })).status).toBe(404);
    expect((await call(`/v1/profiles/${profile.id}`, { method: "DELETE", key })).status).toBe(404);
    expect((await call("/v1/profiles", { key })).body).toEqual({ count: 0, profiles: [] });
    expect(await env.PROFILES.head(profileObjectKey(tenant, profile.id))).toBeNull();
  });

  it("creates an empty profile from an empty body or {}", async () => {
    const { key } = await newTenant("prof-empty");
    const first = await call("/v1/profiles", { method: "POST", key });
    const second = await post(key, {});
    expect([first.status, second.status]).toEqual([201, 201]);
    expect((await call(`/v1/profiles/${first.body.id}/context`, { key })).body).toEqual({ cookies: [], localStorage: {} });
    expect(second.body.bytes).toBe(first.body.bytes);
    const listed = await call("/v1/profiles", { key });
    expect(listed.body.profiles.map((p: { id: string }) => p.id).sort()).toEqual([first.body.id, second.body.id].sort());
  });

  it("answers another tenant's profile with 404 everywhere, and leaves it untouched", async () => {
    const owner = await newTenant("prof-owner");
    const other = await newTenant("prof-other");
    const { id } = (await post(owner.key, { sessionContext: context })).body;
    expect((await call(`/v1/profiles/${id}`, { key: other.key })).status).toBe(404);
    expect((await call(`/v1/profiles/${id}/context`, { key: other.key })).status).toBe(404);
    expect((await patch(other.key, id, { sessionContext: { cookies: [] } })).status).toBe(404);
    expect((await call(`/v1/profiles/${id}`, { method: "DELETE", key: other.key })).status).toBe(404);
    expect((await call("/v1/profiles", { key: other.key })).body).toEqual({ count: 0, profiles: [] });
    // The owner's is as it was; nothing was created under the other tenant.
    expect((await call(`/v1/profiles/${id}/context`, { key: owner.key })).body).toEqual(context);
    expect(await env.PROFILES.head(profileObjectKey(other.tenant, id))).toBeNull();
  });

  it("refuses a state over MAX_STATE_BYTES with 413, writing nothing", async () => {
    const { key } = await newTenant("prof-size");
    const big = { localStorage: { "https://example.com": { blob: "x".repeat(MAX_STATE_BYTES) } } };
    const refused = await post(key, { sessionContext: big });
    expect(refused.status).toBe(413);
    expect(refused.body.code).toBe("payload_too_large");
    expect((await call("/v1/profiles", { key })).body.count).toBe(0);

    const { id } = (await post(key, { sessionContext: context })).body;
    const refusedUpdate = await patch(key, id, { sessionContext: { localStorage: { "https://example.com": { blob: "x".repeat(MAX_STATE_BYTES - 10) } } } });
    expect(refusedUpdate.status).toBe(413);
    expect(refusedUpdate.body.detail).toContain(String(MAX_STATE_BYTES));
    const after = await call(`/v1/profiles/${id}`, { key });
    expect(after.body.status).toBe("READY");
    expect((await call(`/v1/profiles/${id}/context`, { key })).body).toEqual(context);
  });

  it("refuses Steel's user-data-dir upload (multipart) with 400 naming userDataDir and the other fields sent", async () => {
    const { key } = await newTenant("prof-upload");
    const form = new FormData();
    form.append("userDataDir", new Blob([new Uint8Array([0x50, 0x4b, 3, 4])]), "profile.zip");
    form.append("proxyUrl", "http://proxy.example:8080");
    form.append("userAgent", "Mozilla/5.0");
    const reply = await SELF.fetch("https://broker.test/v1/profiles", { method: "POST", headers: { authorization: `Bearer ${key}` }, body: form });
    expect(reply.status).toBe(400);
    const problem = (await reply.json()) as { code: string; detail: string };
    expect(problem.code).toBe("invalid_request");
    expect(problem.detail).toContain("body.userDataDir");
    expect(problem.detail).toContain("persistProfile");
    expect(problem.detail).toContain("sessionContext");
    expect(problem.detail).toContain("body.proxyUrl");
    expect(problem.detail).toContain("body.userAgent");
    expect(problem.detail).not.toContain("body.dimensions");
    expect((await call("/v1/profiles", { key })).body.count).toBe(0);

    // The same fields as JSON are named too.
    for (const field of ["userDataDir", "proxyUrl", "dimensions", "userAgent"]) {
      const json = await post(key, { [field]: field === "dimensions" ? { width: 1, height: 1 } : "x" });
      expect({ field, status: json.status, named: json.body.detail.includes(`body.${field}`) }).toEqual({ field, status: 400, named: true });
    }
  });

  it("keeps a profile the tenant's profileRetentionDays, or its own retentionDays (at most the quota's)", async () => {
    const { tenant, key } = await newTenant("prof-retain");
    expect((await call(`/v1/admin/tenants/${tenant}`, { method: "PUT", body: { profileRetentionDays: 10 }, key: ADMIN })).status).toBe(200);
    const byQuota = (await post(key, {})).body;
    expect(Date.parse(byQuota.expiresAt) - Date.parse(byQuota.updatedAt)).toBe(10 * DAY_MS);

    const own = (await post(key, { retentionDays: 3 })).body;
    expect(own.retentionDays).toBe(3);
    expect(Date.parse(own.expiresAt) - Date.parse(own.updatedAt)).toBe(3 * DAY_MS);

    const over = await post(key, { retentionDays: 11 });
    expect(over.status).toBe(400);
    expect(over.body.detail).toContain("body.retentionDays");

    // Lowered below a profile's own retention, the quota caps it from the profile's next write.
    expect((await call(`/v1/admin/tenants/${tenant}`, { method: "PUT", body: { profileRetentionDays: 2 }, key: ADMIN })).status).toBe(200);
    const rewritten = (await patch(key, own.id, { sessionContext: context })).body;
    expect(rewritten.retentionDays).toBe(3);
    expect(Date.parse(rewritten.expiresAt) - Date.parse(rewritten.updatedAt)).toBe(2 * DAY_MS);

    // Retention alone can be changed, keeping the state; null returns to the tenant's.
    const back = await patch(key, own.id, { retentionDays: null });
    expect(back.body.retentionDays).toBeNull();
    expect(Date.parse(back.body.expiresAt) - Date.parse(back.body.updatedAt)).toBe(2 * DAY_MS);
    expect((await call(`/v1/profiles/${own.id}/context`, { key })).body).toEqual(context);
  });

  it("treats a profile past its expiresAt as absent, and deletes it", async () => {
    const { tenant, key } = await newTenant("prof-expired");
    const gone = (await post(key, { sessionContext: context })).body;
    const kept = (await post(key, {})).body;
    await expire(tenant, gone.id);
    expect((await call(`/v1/profiles/${gone.id}`, { key })).status).toBe(404);
    expect(await env.PROFILES.head(profileObjectKey(tenant, gone.id))).toBeNull();

    // The listing skips (and deletes) expired ones as well.
    await expire(tenant, kept.id);
    expect((await call("/v1/profiles", { key })).body).toEqual({ count: 0, profiles: [] });
    expect(await env.PROFILES.head(profileObjectKey(tenant, kept.id))).toBeNull();
  });

  it("validates ids: a non-UUID is 400 naming path.id", async () => {
    const reply = await call("/v1/profiles/not-a-uuid");
    expect(reply.status).toBe(400);
    expect(reply.body.detail).toContain("path.id");
  });
});
