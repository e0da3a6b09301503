/**
 * Profiles: a tenant's named saved browser state (cookies, localStorage per
 * origin), kept between sessions in R2 (binding PROFILES), in Steel's terms.
 * This module creates, saves, reads, lists and deletes them; how each is laid
 * out in R2 (its object's key, the metadata beside its sealed body) is
 * meta.ts's.
 *
 * A profile id is only ever looked up under its caller's tenant: another
 * tenant's profile is simply absent.
 *
 * A profile is kept `retentionDays` after its last write: its own (set by the
 * tenant, never more than the tenant's quota) or else the tenant's quota
 * `profileRetentionDays`. One past its `expiresAt` is absent to every read,
 * which deletes it; the account registry's alarm also deletes expired ones in
 * bulk (sweep.ts).
 *
 * Writes are whole-object puts: the last of two concurrent writes to one
 * profile wins, and MAX_PROFILES_PER_TENANT is checked by listing before a
 * create, so concurrent creates may pass it by as many as race.
 *
 * Every R2 call and every call to the tenant object has a deadline.
 */
import { type StoredState, MAX_STATE_BYTES, stateBytes } from "../browser/state";
import { message, withDeadline } from "../deadline";
import { log } from "../log";
import type { Failure } from "../result";
import { tenantOf } from "../stubs";
import { DEFAULT_PROFILE_RETENTION_DAYS } from "../tenant/quota";
import { hasProfileKey, MIN_SECRET_LENGTH, openState, ProfileKeyError, sealState } from "./crypto";
import { isExpired, isProfileId, metadataOf, metaOf, type ProfileMeta, profileObjectKey, tenantPrefix } from "./meta";

// Importers of these from here predate meta.ts.
export { isExpired, metaOf, PROFILES_PREFIX, type ProfileMeta, profileObjectKey, type ProfileStatus, tenantPrefix } from "./meta";

/**
 * The most profiles one tenant may keep: a create beyond it is refused (409
 * profile_limit_reached), and a listing shows at most this many. It bounds
 * what one tenant's listing costs (one R2 list page of 1,000 keys, or a few).
 */
export const MAX_PROFILES_PER_TENANT = 1_000;
/** How long one R2 call may take. */
export const R2_TIMEOUT_MS = 10_000;
/** How long reading the tenant's retention from its object may take; past it the default applies. */
const TENANT_TIMEOUT_MS = 5_000;
/** Keys R2 lists per page (its maximum); a listing reads at most MAX_LIST_PAGES of them. */
const LIST_PAGE = 1_000;
const MAX_LIST_PAGES = 10;
/** A failure reason is cut to this (R2 keeps at most 2 KiB of custom metadata per object). */
const MAX_REASON_CHARS = 500;
/** Retry-After of `503 profiles_unavailable`: the operator has a secret to set. */
export const UNAVAILABLE_RETRY_AFTER_SECONDS = 60;
const DAY_MS = 86_400_000;

/** A profile operation the caller can be told about: a status, a catalogue code, a detail (src/result.ts). */
export class ProfileError extends Error {
  constructor(readonly failure: Failure) {
    super(failure.detail);
    this.name = "ProfileError";
  }
}

/** The options every write takes: `now` (epoch ms) for tests; `quotaDays` when the caller has read the tenant's quota already. */
export interface WriteOptions {
  now?: number;
  quotaDays?: number;
}

/** The tenant's profileRetentionDays; its default if the tenant object does not answer in time (logged). */
export async function quotaRetentionDays(env: Env, tenant: string): Promise<number> {
  return withDeadline(tenantOf(env, tenant).profileRetentionDays(), TENANT_TIMEOUT_MS, "the tenant's profile retention").catch((error) => {
    log("profile_retention_unknown", { tenant, error: message(error), days: DEFAULT_PROFILE_RETENTION_DAYS });
    return DEFAULT_PROFILE_RETENTION_DAYS;
  });
}

function requireKey(env: Env): void {
  if (!hasProfileKey(env)) {
    throw new ProfileError({
      status: 503,
      code: "profiles_unavailable",
      detail: `profiles are unavailable: the broker's PROFILE_ENCRYPTION_KEY secret is not set (or shorter than ${MIN_SECRET_LENGTH} characters), and profiles are never stored unencrypted`,
      retryAfter: UNAVAILABLE_RETRY_AFTER_SECONDS,
    });
  }
}

/** A profile's sealed body as it stands, with its metadata; undefined if absent, malformed, or expired (then deleted). */
async function readObject(env: Env, tenant: string, id: string, now: number): Promise<{ meta: ProfileMeta; blob: Uint8Array } | undefined> {
  if (!isProfileId(id)) return undefined;
  const key = profileObjectKey(tenant, id);
  const object = await withDeadline(env.PROFILES.get(key), R2_TIMEOUT_MS, `R2 get ${key}`);
  if (!object) return undefined;
  const blob = new Uint8Array(await withDeadline(object.arrayBuffer(), R2_TIMEOUT_MS, `R2 read ${key}`));
  const meta = metaOf(key, object.customMetadata);
  if (!meta) return undefined;
  if (isExpired(meta, now)) {
    await forget(env, key, meta);
    return undefined;
  }
  return { meta, blob };
}

/** Deletes an expired profile found by a read. A failed delete is logged: the read still answers absent, and the sweep deletes it later. */
async function forget(env: Env, key: string, meta: ProfileMeta): Promise<void> {
  try {
    await withDeadline(env.PROFILES.delete(key), R2_TIMEOUT_MS, `R2 delete ${key}`);
    log("profile_expired", { key, expiresAt: meta.expiresAt });
  } catch (error) {
    log("profile_expire_failed", { key, error: message(error) });
  }
}

async function writeObject(env: Env, tenant: string, meta: ProfileMeta, blob: Uint8Array): Promise<ProfileMeta> {
  const key = profileObjectKey(tenant, meta.id);
  await withDeadline(
    env.PROFILES.put(key, blob, { customMetadata: metadataOf(meta), httpMetadata: { contentType: "application/octet-stream" } }),
    R2_TIMEOUT_MS,
    `R2 put ${key}`,
  );
  return meta;
}

/** The metadata of a write at `now`: times, retention and expiry from the profile's own retention (at most the quota's) or the quota's. */
async function stamp(
  env: Env,
  tenant: string,
  base: Pick<ProfileMeta, "id" | "status" | "sourceSessionId" | "bytes" | "retentionDays" | "keyVersion" | "failure"> & { createdAt?: string },
  options: WriteOptions,
): Promise<ProfileMeta> {
  const now = options.now ?? Date.now();
  const quota = options.quotaDays ?? (await quotaRetentionDays(env, tenant));
  const days = Math.min(base.retentionDays ?? quota, quota);
  const updatedAt = new Date(now).toISOString();
  return { ...base, createdAt: base.createdAt ?? updatedAt, updatedAt, expiresAt: new Date(now + days * DAY_MS).toISOString() };
}

/** Refuses a new profile when the tenant keeps MAX_PROFILES_PER_TENANT already. */
async function checkRoom(env: Env, tenant: string, now: number): Promise<void> {
  const kept = (await listProfiles(env, tenant, now)).length;
  if (kept >= MAX_PROFILES_PER_TENANT) {
    throw new ProfileError({
      status: 409,
      code: "profile_limit_reached",
      detail: `a tenant may keep at most ${MAX_PROFILES_PER_TENANT} profiles (it has ${kept}): delete one first`,
    });
  }
}

const EMPTY: StoredState = { cookies: [], localStorage: {} };

function tooLarge(id: string, bytes: number): string {
  return `profile ${id}: the state takes ${bytes} bytes as JSON, more than the ${MAX_STATE_BYTES} a profile may keep`;
}

/**
 * A new profile of `tenant` holding `state` (empty unless given), READY; with
 * `status: "UPLOADING"` it is a reservation whose state a session will save.
 * Throws ProfileError (409 profile_limit_reached, 503 profiles_unavailable),
 * or an Error if the state is over MAX_STATE_BYTES (nothing written).
 */
export async function createProfile(
  env: Env,
  tenant: string,
  input: { state?: StoredState; status?: "UPLOADING" | "READY"; sourceSessionId?: string | null; retentionDays?: number | null },
  options: WriteOptions = {},
): Promise<ProfileMeta> {
  requireKey(env);
  const now = options.now ?? Date.now();
  const state = input.state ?? EMPTY;
  const id = crypto.randomUUID();
  const bytes = stateBytes(state);
  if (bytes > MAX_STATE_BYTES) throw new Error(tooLarge(id, bytes));
  await checkRoom(env, tenant, now);
  const { blob, keyVersion } = await sealState(env, tenant, id, state);
  const meta = await stamp(
    env,
    tenant,
    { id, status: input.status ?? "READY", sourceSessionId: input.sourceSessionId ?? null, bytes, retentionDays: input.retentionDays ?? null, keyVersion, failure: null },
    { ...options, now },
  );
  return writeObject(env, tenant, meta, blob);
}

/** A new profile, status UPLOADING and empty, for a session that asked persistProfile without a profileId: its state is saved when the session ends. */
export function reserveProfile(env: Env, tenant: string, input: { sourceSessionId: string | null }, options: WriteOptions = {}): Promise<ProfileMeta> {
  return createProfile(env, tenant, { status: "UPLOADING", sourceSessionId: input.sourceSessionId }, options);
}

/**
 * Saves `state` as profile `id` of `tenant` (creating it if absent, within
 * MAX_PROFILES_PER_TENANT): status READY, expiry from now. `retentionDays`
 * sets the profile's own retention (null: back to the tenant's); absent, it
 * keeps what it had. A state over MAX_STATE_BYTES is not saved: the profile
 * keeps its previous state, is marked FAILED with the reason, and this throws.
 */
export async function saveProfile(
  env: Env,
  tenant: string,
  id: string,
  state: StoredState,
  input: { sourceSessionId: string | null; retentionDays?: number | null },
  options: WriteOptions = {},
): Promise<ProfileMeta> {
  requireKey(env);
  if (!isProfileId(id)) throw new Error(`profile ids are UUIDs: '${id}' is not`);
  const now = options.now ?? Date.now();
  const bytes = stateBytes(state);
  const existing = await readObject(env, tenant, id, now);
  if (bytes > MAX_STATE_BYTES) {
    const reason = tooLarge(id, bytes);
    await markProfileFailed(env, tenant, id, reason, { ...options, now, create: true });
    throw new Error(reason);
  }
  if (!existing) await checkRoom(env, tenant, now);
  const { blob, keyVersion } = await sealState(env, tenant, id, state);
  const retentionDays = input.retentionDays === undefined ? (existing?.meta.retentionDays ?? null) : input.retentionDays;
  const meta = await stamp(
    env,
    tenant,
    { id, createdAt: existing?.meta.createdAt, status: "READY", sourceSessionId: input.sourceSessionId, bytes, retentionDays, keyVersion, failure: null },
    { ...options, now },
  );
  return writeObject(env, tenant, meta, blob);
}

/**
 * Marks profile `id` FAILED with `reason` (the save a session was to make did
 * not happen), keeping the state it has. Absent (deleted meanwhile, or
 * expired), it stays absent unless `create` (then it is created empty).
 */
export async function markProfileFailed(
  env: Env,
  tenant: string,
  id: string,
  reason: string,
  options: WriteOptions & { create?: boolean } = {},
): Promise<ProfileMeta | undefined> {
  const now = options.now ?? Date.now();
  const existing = await readObject(env, tenant, id, now);
  const failure = reason.slice(0, MAX_REASON_CHARS);
  if (existing) {
    const meta = await stamp(env, tenant, { ...existing.meta, status: "FAILED", failure }, { ...options, now });
    return writeObject(env, tenant, meta, existing.blob);
  }
  if (!options.create) return undefined;
  requireKey(env);
  await checkRoom(env, tenant, now);
  const { blob, keyVersion } = await sealState(env, tenant, id, EMPTY);
  const meta = await stamp(env, tenant, { id, status: "FAILED", sourceSessionId: null, bytes: stateBytes(EMPTY), retentionDays: null, keyVersion, failure }, { ...options, now });
  return writeObject(env, tenant, meta, blob);
}

/** Sets profile `id`'s own retention (null: the tenant's) and its expiry from now, keeping its state; undefined if absent. */
export async function retainProfile(env: Env, tenant: string, id: string, retentionDays: number | null, options: WriteOptions = {}): Promise<ProfileMeta | undefined> {
  const now = options.now ?? Date.now();
  const existing = await readObject(env, tenant, id, now);
  if (!existing) return undefined;
  const meta = await stamp(env, tenant, { ...existing.meta, retentionDays }, { ...options, now });
  return writeObject(env, tenant, meta, existing.blob);
}

/** Profile `id` of `tenant` without its state; undefined if absent, another tenant's, or expired (then deleted). */
export async function getProfile(env: Env, tenant: string, id: string, now = Date.now()): Promise<ProfileMeta | undefined> {
  if (!isProfileId(id)) return undefined;
  const key = profileObjectKey(tenant, id);
  const object = await withDeadline(env.PROFILES.head(key), R2_TIMEOUT_MS, `R2 head ${key}`);
  const meta = object ? metaOf(key, object.customMetadata) : undefined;
  if (!meta) return undefined;
  if (isExpired(meta, now)) {
    await forget(env, key, meta);
    return undefined;
  }
  return meta;
}

/**
 * Profile `id` of `tenant` with its state, decrypted; undefined if absent,
 * another tenant's, or expired (then deleted). Throws ProfileError 503
 * profiles_unavailable without the secret, or if the state cannot be
 * decrypted with it.
 */
export async function loadProfile(env: Env, tenant: string, id: string, now = Date.now()): Promise<{ meta: ProfileMeta; state: StoredState } | undefined> {
  requireKey(env);
  const found = await readObject(env, tenant, id, now);
  if (!found) return undefined;
  try {
    return { meta: found.meta, state: await openState(env, tenant, id, found.blob, found.meta.keyVersion) };
  } catch (error) {
    if (!(error instanceof ProfileKeyError)) throw error;
    log("profile_unreadable", { tenant, profile: id, error: error.message });
    throw new ProfileError({ status: 503, code: "profiles_unavailable", detail: error.message, retryAfter: UNAVAILABLE_RETRY_AFTER_SECONDS });
  }
}

/** Deletes profile `id` of `tenant`; false if there was none (an expired one is deleted, and was none). */
export async function deleteProfile(env: Env, tenant: string, id: string, now = Date.now()): Promise<boolean> {
  if (!(await getProfile(env, tenant, id, now))) return false;
  const key = profileObjectKey(tenant, id);
  await withDeadline(env.PROFILES.delete(key), R2_TIMEOUT_MS, `R2 delete ${key}`);
  return true;
}

/**
 * The tenant's profiles, newest first, at most MAX_PROFILES_PER_TENANT (read
 * from at most MAX_LIST_PAGES pages). Expired ones found are deleted, not listed.
 */
export async function listProfiles(env: Env, tenant: string, now = Date.now()): Promise<ProfileMeta[]> {
  const prefix = tenantPrefix(tenant);
  const profiles: ProfileMeta[] = [];
  const expired: string[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < MAX_LIST_PAGES && profiles.length < MAX_PROFILES_PER_TENANT; page += 1) {
    const listed = await withDeadline(
      env.PROFILES.list({ prefix, limit: LIST_PAGE, include: ["customMetadata"], ...(cursor ? { cursor } : {}) }),
      R2_TIMEOUT_MS,
      `R2 list ${prefix}`,
    );
    for (const object of listed.objects) {
      const meta = metaOf(object.key, object.customMetadata);
      if (!meta) continue;
      if (isExpired(meta, now)) expired.push(object.key);
      else if (profiles.length < MAX_PROFILES_PER_TENANT) profiles.push(meta);
    }
    if (!listed.truncated) break;
    cursor = listed.cursor;
  }
  if (expired.length > 0) {
    await withDeadline(env.PROFILES.delete(expired), R2_TIMEOUT_MS, `R2 delete under ${prefix}`).then(
      () => log("profiles_expired", { tenant, count: expired.length }),
      (error) => log("profile_expire_failed", { tenant, count: expired.length, error: message(error) }),
    );
  }
  return profiles.sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : a.id < b.id ? 1 : -1));
}
