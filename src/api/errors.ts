/**
 * The one error path of the HTTP API. Handlers throw `ApiError(status, code,
 * detail)`; `onError` turns it into RFC 9457 `application/problem+json` with a
 * stable machine `code` from the error catalogue (src/problems.ts), whose
 * `type` is the absolute URL of the code's entry in the catalogue this broker
 * serves (`https://<host>/docs/errors#<code>`). Anything else is a bug: it is
 * logged with its stack and answered as a bare 500 that shows no internals.
 */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import { type ErrorCode, problemType } from "../problems";

const TITLES: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  409: "Conflict",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  426: "Upgrade Required",
  429: "Too Many Requests",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
};

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    readonly detail: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(detail);
    this.name = "ApiError";
  }

  /** An error that tells the client when to come back (429, 503). */
  static retryable(status: number, code: ErrorCode, detail: string, retryAfterSeconds: number): ApiError {
    return new ApiError(status, code, detail, { "Retry-After": String(Math.max(1, Math.ceil(retryAfterSeconds))) });
  }
}

/** The problem+json answer for `error` to a request for `url` (its origin makes the `type`, its path the `instance`). */
export function problem(error: ApiError, url: string, instance?: string): Response {
  const body = {
    type: problemType(new URL(url).origin, error.code),
    title: TITLES[error.status] ?? "Error",
    status: error.status,
    detail: error.detail,
    code: error.code,
    ...(instance ? { instance } : {}),
  };
  return new Response(JSON.stringify(body), {
    status: error.status,
    headers: { "content-type": "application/problem+json", ...error.headers },
  });
}

export function onError(err: Error, c: Context): Response {
  if (err instanceof ApiError) return problem(err, c.req.url, new URL(c.req.url).pathname);
  if (err instanceof HTTPException && err.status < 500) {
    return problem(new ApiError(err.status, err.status === 413 ? "payload_too_large" : "invalid_request", err.message), c.req.url);
  }
  console.error(JSON.stringify({ event: "unhandled_error", path: new URL(c.req.url).pathname, error: err.message, stack: err.stack }));
  return problem(new ApiError(500, "internal_error", "an unexpected error occurred; it has been logged"), c.req.url);
}

export function notFound(c: Context): Response {
  return problem(new ApiError(404, "not_found", `no route for ${c.req.method} ${new URL(c.req.url).pathname}`), c.req.url);
}
