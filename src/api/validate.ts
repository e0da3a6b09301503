/**
 * Turning input and pool answers into values or `ApiError`s, shared by every
 * route: a body that is not JSON is refused before it is read as such; a
 * validation failure names the field (e.g. `body.ttlSeconds`) and why; a pool
 * object's failure keeps its status, code and Retry-After.
 */
import type { Context } from "hono";
import type { z } from "zod";
import type { Result } from "../result";
import { ApiError } from "./errors";

/** Reads a JSON body. An empty body is `{}`; anything else must say it is JSON. */
export async function readJson(c: Context): Promise<unknown> {
  const text = await c.req.text();
  if (text.trim() === "") return {};
  const type = c.req.header("content-type") ?? "";
  if (!/^application\/([\w.+-]+\+)?json\s*(;.*)?$/i.test(type)) {
    throw new ApiError(415, "unsupported_media_type", "send the body as JSON with 'content-type: application/json'");
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError(400, "invalid_request", "body: not valid JSON");
  }
}

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
