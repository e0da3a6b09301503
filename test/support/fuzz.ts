/**
 * Shared pieces of the property-based hostile-input tests (fast-check): the
 * check every refusal must pass (a 4xx application/problem+json with a code and
 * a detail, never a 5xx) and generators of bad input. Used by
 * test/api/fuzz.test.ts (tenant API) and test/api/fuzz-admin.test.ts (admin API).
 */
import { SELF } from "cloudflare:test";
import fc from "fast-check";
import { expect } from "vitest";

/** Runs per property: enough to cover every generator branch, small enough for `npm test`. */
export const FUZZ_RUNS = 60;

export interface HostileRequest {
  body?: string;
  contentType?: string;
  /** The bearer credential; null sends no Authorization header. */
  key?: string | null;
  headers?: Record<string, string>;
  /** The exact status the refusal must have (any 4xx if absent). */
  status?: number;
  /** Further checks on the refusal's response (its body already read). */
  inspect?: (response: Response, what: string) => void;
}

/** Sends the request and checks it is refused as problem+json with a 4xx (`init.status`, if given). */
export async function expectProblem(method: string, path: string, init: HostileRequest = {}): Promise<void> {
  const key = init.key === undefined ? "dev-key" : init.key;
  const headers: Record<string, string> = { ...(key === null ? {} : { authorization: `Bearer ${key}` }), ...init.headers };
  if (init.contentType !== undefined) headers["content-type"] = init.contentType;
  const response = await SELF.fetch(`https://broker.test${path}`, { method, headers, ...(init.body === undefined ? {} : { body: init.body }) });
  const text = await response.text();
  const what = `${method} ${path.slice(0, 300)} ${JSON.stringify(headers).slice(0, 200)} ${init.body?.slice(0, 200) ?? ""} → ${response.status} ${text.slice(0, 200)}`;
  expect(response.status, what).toBeGreaterThanOrEqual(400);
  expect(response.status, what).toBeLessThan(500);
  expect(response.headers.get("content-type"), what).toMatch(/^application\/problem\+json/);
  const body = JSON.parse(text) as { code?: unknown; detail?: unknown; status?: unknown };
  expect(typeof body.code, what).toBe("string");
  expect(typeof body.detail, what).toBe("string");
  expect(body.status, what).toBe(response.status);
  if (init.status !== undefined) expect(response.status, what).toBe(init.status);
  init.inspect?.(response, what);
}

/** A value of the wrong kind, or out of range, for an integer field in seconds. */
export const badSeconds = fc.oneof(
  fc.string(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.integer({ max: -1 }),
  fc.integer({ min: 100_000 }),
  fc.double({ noInteger: true, noNaN: true, min: 0.001, max: 59.5 }),
  fc.constantFrom(Number.MAX_SAFE_INTEGER, 1e300, -0.5),
);

/** A field name none of `known` (nor `__proto__`, which JSON.parse treats as an own key but zod may not). */
export const unknownFieldOf = (...known: string[]) =>
  fc.string({ minLength: 1, maxLength: 20 }).filter((k) => ![...known, "__proto__"].includes(k));

/** Text that is not JSON, or JSON that is not an object. */
export const malformedJson = fc.oneof(
  fc.constantFrom("{", "[", '{"ttlSeconds":', "nul", "{'a':1}", '{"a":1,}', "\u0000", "{}}", '"just a string"', "[1,2]", "42", "true"),
  fc.string({ minLength: 1, maxLength: 50 }).filter((s) => {
    try {
      const v = JSON.parse(s);
      return v === null || typeof v !== "object" || Array.isArray(v);
    } catch {
      return s.trim() !== "";
    }
  }),
);

export const oddContentType = fc.constantFrom("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml", "json", "application/jsonx", "");

const POOL_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;

export const badPoolName = fc.oneof(
  fc.constantFrom("-leading", "UPPER", "a".repeat(64), "under_score", "dot.name", "%2e%2e", "..", "a%2Fb", "%00", "spa%20ce", "é"),
  fc.string({ minLength: 1, maxLength: 12 }).filter((s) => !POOL_NAME.test(s)).map(encodeURIComponent),
);

export const badLeaseId = fc.oneof(
  fc.constantFrom("not-a-uuid", "00000000-0000-0000-0000-00000000000g", "%2e%2e", "1"),
  fc.string({ unit: fc.constantFrom(..."0123456789abcdef-".split("")), minLength: 1, maxLength: 40 }),
);
