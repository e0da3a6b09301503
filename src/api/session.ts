/**
 * The dashboard's session: what its cookie holds instead of the admin token.
 *
 * A session is `<expiry>.<signature>`: the expiry in Unix seconds (decimal),
 * and HMAC-SHA256 over that decimal text, base64url without padding, under the
 * key SHA-256("dashboard-session:" + ADMIN_TOKEN). So the cookie never holds
 * the admin token (a copied cookie is worth 12 h of reads, not the token), it
 * cannot be extended or forged without the token, and rotating ADMIN_TOKEN
 * ends every session at once. Nothing is stored: verifying is recomputing.
 */

/** How long a dashboard session lasts (the cookie's Max-Age). */
export const SESSION_SECONDS = 12 * 3600;

const SESSION = /^(\d{1,12})\.([A-Za-z0-9_-]{43})$/;
const encoder = new TextEncoder();

/** The HMAC key of the current ADMIN_TOKEN, derived once per isolate and token. */
let cached: { adminToken: string; key: Promise<CryptoKey> } | undefined;

function sessionKey(adminToken: string): Promise<CryptoKey> {
  if (cached?.adminToken !== adminToken) {
    const key = crypto.subtle
      .digest("SHA-256", encoder.encode(`dashboard-session:${adminToken}`))
      .then((material) => crypto.subtle.importKey("raw", material, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]));
    cached = { adminToken, key };
  }
  return cached.key;
}

function base64url(bytes: ArrayBuffer): string {
  return btoa(String.fromCharCode(...new Uint8Array(bytes)))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
}

async function signature(adminToken: string, expiresAt: number): Promise<string> {
  return base64url(await crypto.subtle.sign("HMAC", await sessionKey(adminToken), encoder.encode(String(expiresAt))));
}

/** A session value that expires `SESSION_SECONDS` after `nowMs`. */
export async function issueSession(adminToken: string, nowMs: number = Date.now()): Promise<string> {
  const expiresAt = Math.floor(nowMs / 1000) + SESSION_SECONDS;
  return `${expiresAt}.${await signature(adminToken, expiresAt)}`;
}

/**
 * Whether `value` is a session signed under `adminToken` that has not expired
 * at `nowMs` (and does not claim to last longer than a session can). The
 * signatures are compared in constant time.
 */
export async function verifySession(adminToken: string, value: string | undefined, nowMs: number = Date.now()): Promise<boolean> {
  if (!value || !adminToken) return false;
  const match = SESSION.exec(value);
  if (!match) return false;
  const expiresAt = Number(match[1]);
  const expected = encoder.encode(await signature(adminToken, expiresAt));
  const given = encoder.encode(match[2]!);
  const signed = expected.byteLength === given.byteLength && crypto.subtle.timingSafeEqual(expected, given);
  const now = nowMs / 1000;
  return signed && expiresAt > now && expiresAt <= now + SESSION_SECONDS + 60;
}
