/**
 * Bearer API keys → tenant, and the per-key rate limit.
 *
 * Two kinds of key:
 * - managed keys (`bsk_<tenant>.<secret>`, created with the admin API): checked
 *   by the tenant's object on every request, so revocation takes effect with
 *   the next request; an operator may trade that for throughput with
 *   MANAGED_KEY_CACHE_MS (at most 1 s, off by default; docs/security.md);
 * - keys from the `API_KEYS` secret, a JSON object mapping each key to its
 *   tenant (locally from .dev.vars: `dev-key` → `dev`, `dev2-key` → `dev2`;
 *   in production, only if the operator sets the secret). Compared by their
 *   SHA-256 digests in constant time.
 *
 * Every authenticated request then counts against its key's rate limit: the
 * Rate Limiting binding where it is bound, else the tenant object's counter.
 * The key's id (never the key) is the owner of the leases it acquires.
 */
import type { MiddlewareHandler } from "hono";
import { keyTenant } from "../tenant/keys";
import type { RateRule } from "../tenant/object";
import { tenantCall } from "./calls";
import { sha256, sha256Hex } from "../digest";
import { ApiError } from "./errors";
import { TenantName } from "./schemas";
import { verifySession } from "./session";

export type AuthVariables = { tenant: string; owner: string };

interface KeyEntry {
  digest: Uint8Array;
  tenant: string;
}

let cached: { source: string; entries: KeyEntry[] } | undefined;

function keyEntries(source: string | undefined): KeyEntry[] {
  if (!source) return [];
  if (cached?.source !== source) {
    let entries: KeyEntry[] = [];
    try {
      const parsed: unknown = JSON.parse(source);
      if (typeof parsed === "object" && parsed !== null) {
        entries = Object.entries(parsed)
          .filter((entry): entry is [string, string] => typeof entry[1] === "string" && entry[0].length > 0)
          .map(([key, tenant]) => ({ digest: sha256(key), tenant }));
      }
    } catch {
      console.error(JSON.stringify({ event: "config_error", detail: "API_KEYS is not valid JSON" }));
    }
    cached = { source, entries };
  }
  return cached.entries;
}

/**
 * Whether `pool` is one of `tenant`'s pools: every pool claims its capacity
 * from its tenant's object, which lists it (API_KEYS tenants' pools too), so a
 * listed pool also means the tenant exists. Connect tokens name their tenant;
 * a made-up tenant or pool name is answered here, by a read of the tenant's
 * object that creates no storage, so on the CDP route no name reaches (or
 * instantiates) a pool object unless its tenant lists that pool.
 */
export async function isTenantPool(env: Env, tenant: string, pool: string): Promise<boolean> {
  const configured = keyEntries(env.API_KEYS).some((entry) => entry.tenant === tenant);
  if (!configured && !TenantName.safeParse(tenant).success) return false;
  return tenantCall(env, tenant, "hasPool", "repeatable", (stub) => stub.hasPool(pool));
}

/** The longest MANAGED_KEY_CACHE_MS may be: how long a revoked key may still pass, per Worker isolate. */
export const MAX_KEY_CACHE_MS = 1_000;
/** Managed keys checked in this isolate within the cache's window, by the key's digest (never the key): */
const checkedKeys = new Map<string, { tenant: string; keyId: string; until: number }>();
/** Bounded: at most this many keys per isolate (the oldest checked is forgotten first). */
const MAX_CACHED_KEYS = 1_000;

/** MANAGED_KEY_CACHE_MS as a number of ms within [0, MAX_KEY_CACHE_MS]; 0 (no cache) when unset or not a number. */
export function keyCacheMs(env: Env): number {
  const ms = Number(env.MANAGED_KEY_CACHE_MS ?? "0");
  return Number.isFinite(ms) && ms > 0 ? Math.min(ms, MAX_KEY_CACHE_MS) : 0;
}

/** The key a managed key's digest was found to be within the last `cacheMs`, if any. */
function cachedKey(digest: string, now: number): { tenant: string; keyId: string } | undefined {
  const hit = checkedKeys.get(digest);
  if (hit && hit.until > now) return hit;
  if (hit) checkedKeys.delete(digest);
  return undefined;
}

function cacheKey(digest: string, tenant: string, keyId: string, until: number): void {
  checkedKeys.delete(digest);
  checkedKeys.set(digest, { tenant, keyId, until });
  if (checkedKeys.size > MAX_CACHED_KEYS) checkedKeys.delete(checkedKeys.keys().next().value!);
}

export const unauthorized = (detail: string) =>
  new ApiError(401, "unauthorized", detail, { "WWW-Authenticate": 'Bearer realm="browser-session-broker"' });

/** The per-key limit (vars RATE_LIMIT_REQUESTS per RATE_LIMIT_PERIOD_SECONDS); null when turned off ("0"). */
export function rateRule(env: Env): RateRule | null {
  const limit = Number(env.RATE_LIMIT_REQUESTS ?? "1000");
  const period = Number(env.RATE_LIMIT_PERIOD_SECONDS ?? "10");
  if (!Number.isFinite(limit) || limit <= 0) return null;
  return { limit, periodMs: (period === 60 ? 60 : 10) * 1000 };
}

/** The key of a `steel-api-key` header (Steel's clients' way to send it), if it is one token. */
function steelKey(header: string | undefined): string | undefined {
  const key = header?.trim();
  return key && /^\S+$/.test(key) ? key : undefined;
}

/** `429 rate_limited`: `who` ("this API key", "this client address") made more requests than `limit` allows. */
export const rateLimited = (retryAfterSeconds: number, limit: RateRule, who = "this API key") =>
  ApiError.retryable(
    429,
    "rate_limited",
    `${who} made more than ${limit.limit} requests in ${limit.periodMs / 1000} s; slow down and retry after the Retry-After delay`,
    retryAfterSeconds,
  );

export function requireApiKey(): MiddlewareHandler<{ Bindings: Env; Variables: AuthVariables }> {
  return async (c, next) => {
    const header = c.req.header("authorization") ?? "";
    // Steel's clients (steel-sdk) send their key as `steel-api-key`; Authorization wins when both are sent.
    const key = /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1] ?? steelKey(c.req.header("steel-api-key"));
    if (!key) throw unauthorized("send 'Authorization: Bearer <api key>' (or 'steel-api-key: <api key>')");
    const rate = rateRule(c.env);
    const binding = c.env.RATE_LIMITER as RateLimit | undefined;
    // Without the binding, the tenant object counts: in the same call that checks a managed key.
    const fallback = rate && !binding ? rate : undefined;
    let tenant: string | undefined;
    let keyId: string;
    const managedTenant = keyTenant(key);
    if (managedTenant !== undefined) {
      if (!TenantName.safeParse(managedTenant).success) throw unauthorized("the API key is not valid");
      const digest = sha256Hex(key);
      // A key found valid within MANAGED_KEY_CACHE_MS passes without asking the tenant's object again, unless
      // that object also counts the request (no Rate Limiting binding): then it is asked every time.
      const cacheMs = fallback ? 0 : keyCacheMs(c.env);
      const now = Date.now();
      const hit = cacheMs > 0 ? cachedKey(digest, now) : undefined;
      if (hit) {
        keyId = hit.keyId;
      } else {
        // Repeatable: a second attempt at most counts the request twice against the key's fallback window.
        const result = await tenantCall(c.env, managedTenant, "authenticate", "repeatable", (stub) => stub.authenticate(digest, fallback));
        if (!result.ok) {
          if (result.reason === "rate_limited") throw rateLimited(result.retryAfterSeconds, rate!);
          throw unauthorized("the API key is not valid (or was revoked)");
        }
        keyId = result.keyId;
        // The window starts when the check was asked for: the object's answer is at most that old when it expires.
        if (cacheMs > 0) cacheKey(digest, managedTenant, keyId, now + cacheMs);
      }
      tenant = managedTenant;
    } else {
      const digest = sha256(key);
      for (const entry of keyEntries(c.env.API_KEYS)) {
        // Check every entry, so timing does not reveal which one matched.
        if (crypto.subtle.timingSafeEqual(entry.digest, digest)) tenant ??= entry.tenant;
      }
      if (!tenant) throw unauthorized("the API key is not valid");
      keyId = `key:${[...digest.slice(0, 6)].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
      if (fallback) {
        const id = keyId;
        const retryAfter = await tenantCall(c.env, tenant, "rateCheck", "repeatable", (stub) => stub.rateCheck(id, fallback));
        if (retryAfter !== null) throw rateLimited(retryAfter, fallback);
      }
    }
    if (rate && binding) {
      const { success } = await binding.limit({ key: keyId });
      // The binding does not say when its window ends: the period is the longest wait.
      if (!success) throw rateLimited(rate.periodMs / 1000, rate);
    }
    c.set("tenant", tenant);
    c.set("owner", keyId);
    await next();
  };
}

/** The cookie /dashboard sets: a signed, expiring session (session.ts), never the admin token itself. */
export const ADMIN_COOKIE = "broker_admin";

/** Whether `given` is the operator's token (ADMIN_TOKEN secret), compared by digest in constant time. */
export function isAdminToken(env: Env, given: string | undefined): boolean {
  const configured = env.ADMIN_TOKEN;
  if (!given || !configured) return false;
  return crypto.subtle.timingSafeEqual(sha256(given), sha256(configured));
}

function cookie(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? "").split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key !== name) continue;
    try {
      return decodeURIComponent(rest.join("="));
    } catch {
      return undefined; // a malformed %-escape is simply not a session
    }
  }
  return undefined;
}

/**
 * The operator: `Authorization: Bearer <admin token>`, or, for reads only
 * (GET, HEAD), the dashboard's session cookie, if its signature verifies under
 * the current ADMIN_TOKEN and it has not expired. A cookie rides along on
 * cross-site requests, so it never authorises an action.
 *
 * With `dashboardPost`, one route also lets the session cookie authorise a
 * POST, but only one the dashboard's own script makes: its Origin header is
 * this Worker's origin. A browser sends Origin with every POST and a page
 * cannot set it, so a form or script on another site (or on a sibling
 * subdomain, which SameSite=Strict lets the cookie reach) is still refused.
 */
export function requireAdmin(options: { dashboardPost?: boolean } = {}): MiddlewareHandler<{ Bindings: Env }> {
  return async (c, next) => {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header("authorization") ?? "");
    const readOnly = c.req.method === "GET" || c.req.method === "HEAD";
    const fromDashboard = options.dashboardPost === true && c.req.method === "POST" && c.req.header("origin") === new URL(c.req.url).origin;
    if (match) {
      if (!isAdminToken(c.env, match[1])) throw unauthorized("the admin token is not valid");
    } else {
      const session = readOnly || fromDashboard ? cookie(c.req.header("cookie"), ADMIN_COOKIE) : undefined;
      if (!session || !c.env.ADMIN_TOKEN) throw unauthorized("send 'Authorization: Bearer <admin token>'");
      if (!(await verifySession(c.env.ADMIN_TOKEN, session))) {
        throw unauthorized("the dashboard session is not valid or has expired; open /dashboard?token=<admin token> again");
      }
    }
    await next();
  };
}
