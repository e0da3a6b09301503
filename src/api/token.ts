/**
 * Connect tokens: the unguessable part of a lease's `connectUrl`.
 *
 * A token is HMAC-SHA256(CONNECT_TOKEN_SECRET, "tenant/pool/leaseId"), so it
 * belongs to exactly one lease, nothing token-like is stored anywhere, and it
 * can be shown again on every read of the lease (DESIGN.md's lease carries
 * `connectUrl`). Rotating the secret invalidates every outstanding URL. Whether
 * the lease is still active is checked separately, at connect time.
 */
import { ApiError } from "./errors";

const keys = new Map<string, Promise<CryptoKey>>();

function hmacKey(secret: string): Promise<CryptoKey> {
  let key = keys.get(secret);
  if (!key) {
    key = crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
    keys.set(secret, key);
  }
  return key;
}

function requireSecret(secret: string | undefined): string {
  if (!secret || secret.length < 32) {
    console.error(JSON.stringify({ event: "config_error", detail: "CONNECT_TOKEN_SECRET is missing or shorter than 32 characters" }));
    throw new ApiError(503, "not_configured", "the broker is not configured to issue connect URLs");
  }
  return secret;
}

function base64url(bytes: ArrayBuffer): string {
  return btoa(String.fromCharCode(...new Uint8Array(bytes)))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
}

export async function connectToken(secret: string | undefined, tenant: string, pool: string, leaseId: string): Promise<string> {
  const key = await hmacKey(requireSecret(secret));
  return base64url(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(`${tenant}/${pool}/${leaseId}`)));
}

/** The WebSocket URL a CDP client (Puppeteer's browserWSEndpoint, Playwright's connectOverCDP) uses for a lease. */
export async function connectUrl(requestUrl: string, secret: string | undefined, tenant: string, pool: string, leaseId: string) {
  const origin = new URL(requestUrl);
  const scheme = origin.protocol === "https:" ? "wss:" : "ws:";
  const token = await connectToken(secret, tenant, pool, leaseId);
  return `${scheme}//${origin.host}/v1/pools/${pool}/leases/${leaseId}/cdp?token=${token}`;
}
