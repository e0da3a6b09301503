/**
 * What a Durable Object answers the Worker with: a value, or a `Failure` the
 * Worker turns into problem+json (its status, stable code, detail and
 * Retry-After). Shared by the objects and the HTTP layer, so neither imports
 * the other for it. Every `code` is one of the error catalogue's (src/problems.ts).
 */
import type { ErrorCode } from "./problems";

/** A request an object answers with an error instead of a value. */
export interface Failure {
  status: 400 | 401 | 403 | 404 | 409 | 429 | 502 | 503;
  code: ErrorCode;
  detail: string;
  retryAfter?: number;
}

export type Result<T> = { ok: true; value: T } | { ok: false; failure: Failure };

export function fail<T>(failure: Failure): Result<T> {
  return { ok: false, failure };
}
