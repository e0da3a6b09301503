/**
 * Turning input and pool answers into values or `ApiError`s, shared by every
 * route: a validation failure names the field (e.g. `body.ttlSeconds`) and why;
 * a pool object's failure keeps its status, code and Retry-After.
 */
import type { z } from "zod";
import type { Result } from "../result";
import { ApiError } from "./errors";

export function parse<S extends z.ZodType>(schema: S, value: unknown, where: string): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const details = result.error.issues.slice(0, 5).map((issue) => {
    const field = [where, ...issue.path.map(String)].join(".");
    return `${field}: ${issue.message}`;
  });
  throw new ApiError(400, "invalid_request", details.join("; "));
}

export function unwrap<T>(result: Result<T>): T {
  if (result.ok) return result.value;
  const { status, code, detail, retryAfter } = result.failure;
  throw new ApiError(status, code, detail, retryAfter ? { "Retry-After": String(retryAfter) } : {});
}
