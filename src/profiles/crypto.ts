/**
 * Profiles are encrypted at rest: a profile holds live logins (session
 * cookies), and R2 is storage the broker's operators, and anyone holding an
 * R2 token of the account, can read. Each profile's state (its JSON) is sealed
 * with AES-256-GCM under a key derived (HKDF-SHA-256) from the Worker secret
 * PROFILE_ENCRYPTION_KEY, with a fresh random 12-byte IV per write. The
 * additional authenticated data is `${tenant}/${profileId}`: a blob copied
 * under another tenant's or another profile's key fails to decrypt rather
 * than hand one tenant's logins to another.
 *
 * A sealed blob is the IV followed by the ciphertext (tag included). The key
 * version it was sealed with ("v1") is kept beside it (the object's metadata),
 * so a later key can be introduced without making older profiles unreadable.
 *
 * Without the secret, or with one too short to be a key (under 32
 * characters), nothing is sealed or opened: profiles are unavailable, never
 * stored in clear.
 */
import type { StoredState } from "../browser/state";

/** The key version profiles are sealed with now. */
export const KEY_VERSION = "v1";
/** The shortest secret accepted: 32 characters (at least 128 bits even from base64 or hex). */
export const MIN_SECRET_LENGTH = 32;
const IV_BYTES = 12;
/** HKDF's salt and, per version, its info: fixed, so the same secret always derives the same key. */
const SALT = new TextEncoder().encode("browser-session-broker/profiles");
const INFO: Record<string, Uint8Array> = { v1: new TextEncoder().encode("profile-state/v1") };

/** Why profiles cannot be sealed or opened: the secret is missing or too short, or a blob is not one this key sealed. */
export class ProfileKeyError extends Error {
  constructor(detail: string) {
    super(detail);
    this.name = "ProfileKeyError";
  }
}

/** Whether the Worker has a usable PROFILE_ENCRYPTION_KEY. */
export function hasProfileKey(env: Pick<Env, "PROFILE_ENCRYPTION_KEY">): boolean {
  const secret: unknown = env.PROFILE_ENCRYPTION_KEY;
  return typeof secret === "string" && secret.length >= MIN_SECRET_LENGTH;
}

/** The derived key, per isolate, for the secret it was derived from (a changed secret derives anew). */
let cached: { secret: string; version: string; key: Promise<CryptoKey> } | undefined;

function profileKey(env: Pick<Env, "PROFILE_ENCRYPTION_KEY">, version: string): Promise<CryptoKey> {
  if (!hasProfileKey(env)) {
    throw new ProfileKeyError(`PROFILE_ENCRYPTION_KEY is not set or shorter than ${MIN_SECRET_LENGTH} characters: profiles are unavailable`);
  }
  const info = INFO[version];
  if (!info) throw new ProfileKeyError(`the profile was sealed with key version '${version}', which this broker does not know`);
  const secret = env.PROFILE_ENCRYPTION_KEY;
  if (cached?.secret !== secret || cached.version !== version) {
    const key = crypto.subtle
      .importKey("raw", new TextEncoder().encode(secret), "HKDF", false, ["deriveKey"])
      .then((material) =>
        crypto.subtle.deriveKey({ name: "HKDF", hash: "SHA-256", salt: SALT, info }, material, { name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]),
      );
    cached = { secret, version, key };
  }
  return cached.key;
}

const aad = (tenant: string, profileId: string) => new TextEncoder().encode(`${tenant}/${profileId}`);

/** Seals `state` for `tenant`'s profile `profileId` with the current key version. */
export async function sealState(env: Pick<Env, "PROFILE_ENCRYPTION_KEY">, tenant: string, profileId: string, state: StoredState): Promise<{ blob: Uint8Array; keyVersion: string }> {
  const key = await profileKey(env, KEY_VERSION);
  const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
  const plain = new TextEncoder().encode(JSON.stringify(state));
  const sealed = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: aad(tenant, profileId) }, key, plain));
  const blob = new Uint8Array(IV_BYTES + sealed.byteLength);
  blob.set(iv);
  blob.set(sealed, IV_BYTES);
  return { blob, keyVersion: KEY_VERSION };
}

/** Opens a blob `sealState` made for the same tenant and profile; throws ProfileKeyError if it was not (another key, tenant or id, or altered). */
export async function openState(
  env: Pick<Env, "PROFILE_ENCRYPTION_KEY">,
  tenant: string,
  profileId: string,
  blob: Uint8Array,
  keyVersion: string,
): Promise<StoredState> {
  const key = await profileKey(env, keyVersion);
  if (blob.byteLength <= IV_BYTES) throw new ProfileKeyError(`profile ${profileId}: the stored blob is truncated`);
  let plain: ArrayBuffer;
  try {
    plain = await crypto.subtle.decrypt({ name: "AES-GCM", iv: blob.subarray(0, IV_BYTES), additionalData: aad(tenant, profileId) }, key, blob.subarray(IV_BYTES));
  } catch {
    throw new ProfileKeyError(`profile ${profileId} cannot be decrypted: it was sealed with another PROFILE_ENCRYPTION_KEY, for another tenant or profile, or altered`);
  }
  return JSON.parse(new TextDecoder().decode(plain)) as StoredState;
}
