/**
 * Managed API keys: their format, and the one form in which they are stored.
 *
 * A key is `bsk_<tenant>.<secret>`: the tenant (base64url, like a connect
 * token's) tells the Worker which tenant object to ask, so authenticating a key
 * is one lookup in one object and no account-wide table is on the request path;
 * the secret is 256 random bits. The tenant object keeps only the key's SHA-256
 * (hex): the key is shown once, in the answer that creates or rotates it.
 */
import { sha256Hex } from "../digest";
import { tenantSecret, tokenTenant } from "../token";

export const KEY_PREFIX = "bsk_";

/** A fresh key of `tenant` and its digest, the only form the tenant object keeps. */
export function mintKey(tenant: string): { key: string; digest: string } {
  const key = `${KEY_PREFIX}${tenantSecret(tenant)}`;
  return { key, digest: sha256Hex(key) };
}

/** The tenant a well-formed managed key names; undefined for anything else (e.g. a key from API_KEYS). */
export function keyTenant(key: string): string | undefined {
  return key.startsWith(KEY_PREFIX) ? tokenTenant(key.slice(KEY_PREFIX.length)) : undefined;
}

/** What a listing shows of a key so people can tell keys apart: its start, never enough to use. */
export function keyHint(key: string): string {
  return `${key.slice(0, key.indexOf(".") + 5)}…`;
}

/** A key's id: names it in the admin API, in logs and as the owner of its leases. Never secret. */
export function newKeyId(): string {
  return `key_${[...crypto.getRandomValues(new Uint8Array(8))].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}
