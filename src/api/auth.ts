/**
 * Bearer API keys → tenant. Keys come from the `API_KEYS` secret, a JSON object
 * mapping each key to its tenant (locally from .dev.vars: `dev-key` → `dev`,
 * `dev2-key` → `dev2`). Keys are compared by their SHA-256 digests in constant
 * time, and only a short digest prefix (never the key) is used as the lease owner.
 */
import type { MiddlewareHandler } from "hono";
import { sha256 } from "./digest";
import { ApiError } from "./errors";

export type AuthVariables = { tenant: string; owner: string };

interface KeyEntry {
  digest: Uint8Array;
  tenant: string;
}

let cached: { source: string; entries: Promise<KeyEntry[]> } | undefined;


function keyEntries(source: string | undefined): Promise<KeyEntry[]> {
  if (!source) return Promise.resolve([]);
  if (cached?.source !== source) {
    cached = {
      source,
      entries: (async () => {
        let parsed: unknown;
        try {
          parsed = JSON.parse(source);
        } catch {
          console.error(JSON.stringify({ event: "config_error", detail: "API_KEYS is not valid JSON" }));
          return [];
        }
        if (typeof parsed !== "object" || parsed === null) return [];
        const entries: KeyEntry[] = [];
        for (const [key, tenant] of Object.entries(parsed)) {
          if (typeof tenant === "string" && key.length > 0) entries.push({ digest: sha256(key), tenant });
        }
        return entries;
      })(),
    };
  }
  return cached.entries;
}

/** Whether `tenant` owns at least one configured API key (connect tokens name their tenant). */
export async function isKnownTenant(env: Env, tenant: string): Promise<boolean> {
  return (await keyEntries(env.API_KEYS)).some((entry) => entry.tenant === tenant);
}

export const unauthorized = (detail: string) =>
  new ApiError(401, "unauthorized", detail, { "WWW-Authenticate": 'Bearer realm="browser-session-broker"' });

export function requireApiKey(): MiddlewareHandler<{ Bindings: Env; Variables: AuthVariables }> {
  return async (c, next) => {
    const header = c.req.header("authorization") ?? "";
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) throw unauthorized("send 'Authorization: Bearer <api key>'");
    const digest = sha256(match[1]!);
    let tenant: string | undefined;
    for (const entry of await keyEntries(c.env.API_KEYS)) {
      // Check every entry, so timing does not reveal which one matched.
      if (crypto.subtle.timingSafeEqual(entry.digest, digest)) tenant ??= entry.tenant;
    }
    if (!tenant) throw unauthorized("the API key is not valid");
    c.set("tenant", tenant);
    c.set("owner", `key:${[...digest.slice(0, 6)].map((b) => b.toString(16).padStart(2, "0")).join("")}`);
    await next();
  };
}

/** The cookie /dashboard sets, so a browser can send the admin token without a header. */
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
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return undefined;
}

/**
 * The operator's token: `Authorization: Bearer <admin token>`, or, for reads
 * only (GET), the dashboard's cookie: a cookie rides along on cross-site
 * requests, so it must never authorise an action.
 */
export function requireAdmin(): MiddlewareHandler<{ Bindings: Env }> {
  return async (c, next) => {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header("authorization") ?? "");
    const readOnly = c.req.method === "GET" || c.req.method === "HEAD";
    const given = match?.[1] ?? (readOnly ? cookie(c.req.header("cookie"), ADMIN_COOKIE) : undefined);
    if (!given || !c.env.ADMIN_TOKEN) throw unauthorized("send 'Authorization: Bearer <admin token>'");
    if (!isAdminToken(c.env, given)) throw unauthorized("the admin token is not valid");
    await next();
  };
}
