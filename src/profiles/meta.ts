/**
 * How a profile is laid out in R2 (binding PROFILES): the key of its object
 * and the metadata kept beside its sealed body. This module is the only code
 * that names or encodes profile objects:
 *
 *   profiles/{tenant}/{profileId}   body: the state, sealed (crypto.ts)
 *                                   customMetadata: the profile's metadata
 *
 * Tenant names cannot contain "/", so `profiles/{tenant}/` holds exactly one
 * tenant's profiles. The metadata (times, status, size, retention, key
 * version, why it failed) is kept in clear, as R2 custom metadata (strings
 * only), so listing and expiring need no decryption: store.ts reads and
 * writes profiles with it, sweep.ts deletes expired ones by it. Pure: no R2
 * call is made here.
 */

/** Every profile object's key starts with this. */
export const PROFILES_PREFIX = "profiles/";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Steel's profile statuses: being saved (reserved, no state yet), saved, or the last save failed. */
export type ProfileStatus = "UPLOADING" | "READY" | "FAILED";

/** A profile as listed: everything but its state. Times are ISO 8601. */
export interface ProfileMeta {
  id: string;
  createdAt: string;
  updatedAt: string;
  status: ProfileStatus;
  /** The session (lease) whose browser the state was last saved from; null when saved through the API. */
  sourceSessionId: string | null;
  /** The state's size as JSON (what MAX_STATE_BYTES bounds). */
  bytes: number;
  /** When it is deleted: updatedAt plus its retention. */
  expiresAt: string;
  /** Its own retention in days; null: the tenant's profileRetentionDays. */
  retentionDays: number | null;
  /** The key version its state is sealed with. */
  keyVersion: string;
  /** Why the last save failed (status FAILED); null otherwise. */
  failure: string | null;
}

export function profileObjectKey(tenant: string, id: string): string {
  return `${PROFILES_PREFIX}${tenant}/${id}`;
}

export function tenantPrefix(tenant: string): string {
  return `${PROFILES_PREFIX}${tenant}/`;
}

/** Whether `id` can be a profile's (a UUID): anything else is never looked up. */
export function isProfileId(id: string): boolean {
  return UUID.test(id);
}

/** Whether a profile is past its retention at `now`. */
export function isExpired(meta: Pick<ProfileMeta, "expiresAt">, now: number): boolean {
  return Date.parse(meta.expiresAt) <= now;
}

/** The metadata of a listed or read object, or undefined if it is not a profile's (foreign or malformed metadata). */
export function metaOf(key: string, custom: Record<string, string> | undefined): ProfileMeta | undefined {
  const id = key.slice(key.lastIndexOf("/") + 1);
  if (!custom || !isProfileId(id) || Number.isNaN(Date.parse(custom.expiresAt ?? ""))) return undefined;
  const status = custom.status;
  if (status !== "UPLOADING" && status !== "READY" && status !== "FAILED") return undefined;
  return {
    id,
    createdAt: custom.createdAt ?? "",
    updatedAt: custom.updatedAt ?? "",
    status,
    sourceSessionId: custom.sourceSessionId || null,
    bytes: Number(custom.bytes ?? 0),
    expiresAt: custom.expiresAt!,
    retentionDays: custom.retentionDays ? Number(custom.retentionDays) : null,
    keyVersion: custom.keyVersion ?? "",
    failure: custom.failure || null,
  };
}

/** The custom metadata a profile's object is written with: what metaOf reads back. */
export function metadataOf(meta: ProfileMeta): Record<string, string> {
  return {
    createdAt: meta.createdAt,
    updatedAt: meta.updatedAt,
    status: meta.status,
    sourceSessionId: meta.sourceSessionId ?? "",
    bytes: String(meta.bytes),
    expiresAt: meta.expiresAt,
    retentionDays: meta.retentionDays === null ? "" : String(meta.retentionDays),
    keyVersion: meta.keyVersion,
    failure: meta.failure ?? "",
  };
}
