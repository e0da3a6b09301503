/** Talking to the running broker from Node, as a customer's code does. */
import { inject } from "vitest";

export const brokerUrl = (): string => inject("brokerUrl");

/** TMPDIR of the broker this run started (its browsers' profiles live there); undefined for a BROKER_URL broker. */
export const brokerTmp = (): string | undefined => inject("brokerTmp") || undefined;

export async function api(path: string, init: { method?: string; body?: unknown; key?: string } = {}) {
  const response = await fetch(`${brokerUrl()}${path}`, {
    method: init.method ?? "GET",
    headers: {
      authorization: `Bearer ${init.key ?? "dev-key"}`,
      ...(init.body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

export interface Lease {
  id: string;
  sessionId: string;
  connectUrl: string;
  expiresAt: string;
}

export async function acquire(pool: string, body: Record<string, unknown> = {}, key?: string): Promise<Lease> {
  const created = await api(`/v1/pools/${pool}/leases`, { method: "POST", body: { waitSeconds: 30, ...body }, ...(key ? { key } : {}) });
  if (created.status !== 201) throw new Error(`acquire failed: ${created.status} ${JSON.stringify(created.body)}`);
  return created.body as Lease;
}

export const release = (pool: string, id: string, key?: string) =>
  api(`/v1/pools/${pool}/leases/${id}`, { method: "DELETE", ...(key ? { key } : {}) });

export function uniquePool(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 7)}`;
}

/** Resolves with the time an event fires, or rejects after `ms` (a bound, not a sleep: the event is what is awaited). */
export function within<T>(ms: number, what: string, subscribe: (done: (value: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
    subscribe((value) => {
      clearTimeout(timer);
      resolve(value);
    });
  });
}

/** The lease's connectUrl with another token. */
export function withToken(connectUrl: string, token: string): string {
  const url = new URL(connectUrl);
  url.searchParams.set("token", token);
  return url.toString();
}

export const HTML = (marker: string) =>
  `data:text/html,${encodeURIComponent(`<title>${marker}</title><h1 id="h">hello ${marker}</h1>`)}`;

export interface PoolCounts {
  launching: number;
  idle: number;
  leased: number;
  resetting: number;
  closing: number;
  waiting: number;
}

/**
 * Polls `GET /v1/pools/{pool}` until its counts satisfy `done`; resolves with
 * the counts and the time they did, or rejects after `ms` with the last counts
 * (a bounded wait for an event, not a sleep).
 */
export async function poolCountsUntil(pool: string, done: (counts: PoolCounts) => boolean, ms: number, what: string, key?: string) {
  const deadline = Date.now() + ms;
  for (;;) {
    const view = await api(`/v1/pools/${pool}`, key ? { key } : {});
    const counts = view.body?.counts as PoolCounts | undefined;
    if (view.status === 200 && counts && done(counts)) return { counts, at: Date.now() };
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${ms} ms (last: ${view.status} ${JSON.stringify(view.body?.counts ?? view.body)})`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
