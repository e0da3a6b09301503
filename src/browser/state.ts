/**
 * A browser's saved state, as the broker carries it between leases: cookies
 * (CDP's `Network.Cookie`/`CookieParam` fields, the shape Steel's
 * `sessionContext.cookies` uses) and localStorage per origin. It is what
 * `context` on acquire and Steel's `sessionContext` apply before a lease is
 * granted, what `GET …/context` reads from a live browser, and what a profile
 * keeps (encrypted) between sessions.
 *
 * Steel's context can also carry sessionStorage and IndexedDB. The broker does
 * not restore those (sessionStorage belongs to a tab the next client never
 * sees; IndexedDB has no faithful CDP write path), so a non-empty one is
 * refused with 400 rather than dropped.
 */
import { z } from "zod";

/** The most bytes a state may take as JSON: a request carrying one, or a profile keeping one. */
export const MAX_STATE_BYTES = 512 * 1024;
/** The most cookies, and origins with localStorage, one state may hold. */
export const MAX_STATE_COOKIES = 2_000;
export const MAX_STATE_ORIGINS = 200;

export const Cookie = z
  .object({
    name: z.string().min(1).max(4096),
    value: z.string().max(8192),
    domain: z.string().max(255).optional(),
    path: z.string().max(1024).optional(),
    url: z.url().optional(),
    expires: z.number().optional().describe("seconds since the epoch; absent or -1 for a session cookie"),
    httpOnly: z.boolean().optional(),
    secure: z.boolean().optional(),
    session: z.boolean().optional(),
    sameSite: z.enum(["Strict", "Lax", "None"]).optional(),
    priority: z.enum(["Low", "Medium", "High"]).optional(),
    sameParty: z.boolean().optional(),
    sourceScheme: z.enum(["Unset", "NonSecure", "Secure"]).optional(),
    sourcePort: z.number().int().optional(),
    size: z.number().int().optional(),
    partitionKey: z.unknown().optional(),
  })
  .loose()
  .refine((cookie) => cookie.domain !== undefined || cookie.url !== undefined, "a cookie needs a domain or a url");

/** An origin: scheme, host and port, nothing else (`https://example.com`). */
export const Origin = z
  .string()
  .max(2048)
  .refine((value) => {
    try {
      const url = new URL(value);
      return (url.protocol === "http:" || url.protocol === "https:") && url.origin === value.replace(/\/$/, "");
    } catch {
      return false;
    }
  }, "localStorage keys are origins, such as https://example.com");

const Items = z.record(z.string(), z.string());

/** Steel's sessionContext (and the native `context`), as accepted. */
export const BrowserState = z
  .object({
    cookies: z.array(Cookie).max(MAX_STATE_COOKIES).optional(),
    localStorage: z
      .record(Origin, Items)
      .refine((origins) => Object.keys(origins).length <= MAX_STATE_ORIGINS, `at most ${MAX_STATE_ORIGINS} origins`)
      .optional(),
    sessionStorage: z
      .record(z.string(), z.unknown())
      .refine((v) => Object.keys(v).length === 0, "sessionStorage is not restored by this broker (it belongs to a tab the next client never sees): send {}")
      .optional(),
    indexedDB: z
      .record(z.string(), z.unknown())
      .refine((v) => Object.keys(v).length === 0, "IndexedDB is not restored by this broker: send {}")
      .optional(),
  })
  .strict();

export type CookieState = z.output<typeof Cookie>;

/** A state as the broker keeps and answers it. */
export interface StoredState {
  cookies: CookieState[];
  /** origin → key → value */
  localStorage: Record<string, Record<string, string>>;
}

/** The accepted form, normalised (absent parts empty). */
export function normalState(input: z.output<typeof BrowserState> | undefined): StoredState {
  const localStorage: Record<string, Record<string, string>> = {};
  for (const [origin, items] of Object.entries(input?.localStorage ?? {})) localStorage[origin.replace(/\/$/, "")] = items;
  return { cookies: input?.cookies ?? [], localStorage };
}

export function isEmptyState(state: StoredState): boolean {
  return state.cookies.length === 0 && Object.keys(state.localStorage).length === 0;
}

/** Its size as JSON, in bytes: what MAX_STATE_BYTES bounds. */
export function stateBytes(state: StoredState): number {
  return new TextEncoder().encode(JSON.stringify(state)).byteLength;
}
