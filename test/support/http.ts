/**
 * A small client for the Worker under test: calls go through the real Worker
 * (auth, validation, routing) into real pool objects in workerd.
 */
import { SELF } from "cloudflare:test";
import { expect } from "vitest";

export const DEV_KEY = "dev-key";
export const DEV2_KEY = "dev2-key";

export interface CallOptions {
  method?: string;
  body?: unknown;
  key?: string | null;
  headers?: Record<string, string>;
  rawBody?: string;
}

export interface Reply<T = any> {
  status: number;
  headers: Headers;
  body: T;
}

export async function call<T = any>(path: string, options: CallOptions = {}): Promise<Reply<T>> {
  const headers: Record<string, string> = { ...options.headers };
  const key = options.key === undefined ? DEV_KEY : options.key;
  if (key !== null) headers.authorization = `Bearer ${key}`;
  let body: string | undefined = options.rawBody;
  if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    headers["content-type"] ??= "application/json";
  }
  const response = await SELF.fetch(`https://broker.test${path}`, { method: options.method ?? "GET", headers, body });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON; tests assert on the text
  }
  return { status: response.status, headers: response.headers, body: parsed as T };
}

/** A fresh pool name per test, so tests never share state. */
let counter = 0;
export function poolName(prefix = "p"): string {
  counter += 1;
  return `${prefix}-${counter}-${Math.random().toString(36).slice(2, 8)}`;
}

/** Creates a fresh pool with `config` (PUT) and returns its name; the test fails if the broker refuses. */
export async function newPool(prefix: string, config: Record<string, unknown> = {}, key?: string): Promise<string> {
  const name = poolName(prefix);
  const reply = await call(`/v1/pools/${name}`, { method: "PUT", body: config, ...(key ? { key } : {}) });
  expect(reply.status, JSON.stringify(reply.body)).toBe(200);
  return name;
}
