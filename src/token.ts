/**
 * Connect tokens: the credential in a lease's `connectUrl`.
 *
 * A token is `<tenant>.<secret>`: the tenant (base64url) tells the Worker which
 * pool object to ask, since a CDP client sends no API key; the secret is 256
 * random bits. The Worker hands the token out once, in the response that
 * creates the lease, and the pool object keeps only its SHA-256, compared in
 * constant time at connect time. A token belongs to one lease: it is checked
 * against that lease's stored hash and nothing else.
 *
 * Managed API keys (src/tenant/keys.ts) are the same tenant-naming secret
 * behind a `bsk_` prefix.
 */
import { sha256Hex } from "./digest";

const TOKEN = /^([A-Za-z0-9_-]{1,200})\.([A-Za-z0-9_-]{43})$/;

function base64url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
}

function fromBase64url(text: string): string | undefined {
  try {
    const binary = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(Uint8Array.from(binary, (ch) => ch.charCodeAt(0)));
  } catch {
    return undefined;
  }
}

/** SHA-256 of the whole token, hex: the only form in which a token is stored. */
export function tokenHash(token: string): string {
  return sha256Hex(token);
}

/** A tenant's name as it appears in a token (base64url of its UTF-8). */
export function encodeTenant(tenant: string): string {
  return base64url(new TextEncoder().encode(tenant));
}

/** `<tenant>.<256 random bits>`, both base64url: a fresh secret that names its tenant. */
export function tenantSecret(tenant: string): string {
  return `${encodeTenant(tenant)}.${base64url(crypto.getRandomValues(new Uint8Array(32)))}`;
}

/** A fresh token for a lease of `tenant`, and its hash for the pool object. */
export function mintToken(tenant: string): { token: string; hash: string } {
  const token = tenantSecret(tenant);
  return { token, hash: tokenHash(token) };
}

/** The tenant a well-formed token (or tenant-naming secret) names; undefined if it is not one at all. */
export function tokenTenant(token: string): string | undefined {
  const match = TOKEN.exec(token);
  return match ? fromBase64url(match[1]!) : undefined;
}

/** The page a person opens to watch (and, if interactive, drive) a lease's browser live. */
export function viewerUrl(requestUrl: string, pool: string, leaseId: string, token: string): string {
  return `${new URL(requestUrl).origin}/v1/pools/${pool}/leases/${leaseId}/viewer?token=${token}`;
}

/** The WebSocket URL a CDP client (Puppeteer's browserWSEndpoint, Playwright's connectOverCDP) uses for a lease. */
export function connectUrl(requestUrl: string, pool: string, leaseId: string, token: string): string {
  const origin = new URL(requestUrl);
  const scheme = origin.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${origin.host}/v1/pools/${pool}/leases/${leaseId}/cdp?token=${token}`;
}
