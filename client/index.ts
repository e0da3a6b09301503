/**
 * A typed client for the browser session broker, for customers' code (Node 18+,
 * Workers, Deno, browsers: it needs only `fetch`).
 *
 *   const broker = new BrokerClient({ baseUrl: "https://broker.example.com", apiKey });
 *   await broker.withLease("scrapers", async (lease) => {
 *     const browser = await puppeteer.connect({ browserWSEndpoint: lease.connectUrl });
 *     …
 *   });
 *
 * - Retries, at most `retries` times per call, each after the answer's
 *   Retry-After or else an exponential backoff (0.5 s, 1 s, 2 s, …), plus up to
 *   25 % jitter, capped by `maxRetryDelayMs`:
 *   - a 429 (rate limited, pool exhausted), for every call;
 *   - a 503 or a network error (fetch rejected, other than by an abort), only
 *     for calls that are safe to repeat: reads (GET), `acquire` and `release`.
 *     `acquire` always sends an Idempotency-Key (yours, or a fresh one per
 *     call) and keeps it across its retries, so a retry whose first attempt
 *     did reach the broker returns that lease, never a second one; `release`
 *     is idempotent. Other writes (`renew`, `releaseAll`, `configurePool`,
 *     `deletePool`) may have happened when the answer was lost, so they throw
 *     instead and the caller decides.
 *   Other errors throw `BrokerError` with the problem's `status`, `code` and
 *   `detail`; a network error that is not retried throws as fetch threw it.
 * - Every call takes an AbortSignal; an abort also ends a retry wait at once
 *   and is never retried.
 * - `withLease` always releases the lease, whether `fn` returns or throws.
 * - Pools: `configurePool` (creates one), `getPool`, `listPools`, `deletePool`;
 *   `listLeases`, `releaseAll` (this key's leases); `tenant()` (quota, usage, rate limit).
 */

export type LeaseStatus = "waiting" | "active" | "released" | "expired" | "failed";

export interface Lease {
  id: string;
  pool: string;
  status: LeaseStatus;
  sessionId: string | null;
  createdAt: string;
  grantedAt?: string;
  expiresAt: string | null;
  endedAt?: string;
  endReason?: string;
  labels: Record<string, string>;
  /** Only on the lease returned by acquire: the CDP WebSocket URL (Puppeteer's browserWSEndpoint, Playwright's connectOverCDP). */
  connectUrl?: string;
}

export interface AcquiredLease extends Lease {
  connectUrl: string;
}

export interface AcquireOptions {
  ttlSeconds?: number;
  waitSeconds?: number;
  labels?: Record<string, string>;
  /** Reuse to make a retried acquire return the same lease (default: a fresh key per call). */
  idempotencyKey?: string;
  signal?: AbortSignal;
}

/** A pool's settings (`PUT /v1/pools/{pool}` takes any subset). */
export interface PoolConfig {
  maxSessions: number;
  minIdle: number;
  maxWaiters: number;
  defaultTtlSeconds: number;
  maxTtlSeconds: number;
  reuse: boolean;
  launchTimeoutSeconds: number;
  idleTimeoutSeconds: number;
  /** A lease no client connects to within this many seconds of its grant ends (endReason not_connected); 0 = never. */
  connectWithinSeconds: number;
  /** A browser that served this many leases is closed instead of reused; 0 = no limit. */
  maxSessionUses: number;
  /** A browser this old (seconds since launch) is closed instead of reused; 0 = no limit. */
  maxSessionAgeSeconds: number;
}

export interface Pool {
  pool: string;
  config: PoolConfig;
  counts: { launching: number; idle: number; leased: number; resetting: number; closing: number; waiting: number };
  capacity: { max: number; inUse: number; available: number };
  draining: boolean;
  consistent: boolean;
  violations: string[];
  /** When the full invariant check behind `consistent` last ran. */
  checkedAt: string | null;
  createdAt: string;
  lastReconciledAt: string | null;
}

export interface PoolSummary {
  pool: string;
  createdAt: string;
  counts: Pool["counts"] | null;
  capacity: Pool["capacity"] | null;
  consistent: boolean | null;
}

/** What `GET /v1/tenant` tells a tenant about itself. */
export interface TenantInfo {
  tenant: string;
  quota: { maxPools: number; maxSessions: number };
  usage: { pools: number; sessions: number };
  rateLimit: { requests: number; periodSeconds: number } | null;
}

export interface Page {
  limit?: number;
  cursor?: string;
  signal?: AbortSignal;
}

export interface RetryInfo {
  attempt: number;
  /** The answer's status; 0 for a network error (fetch rejected). */
  status: number;
  /** The problem's code; "network_error" for a network error. */
  code: string;
  delayMs: number;
  /** The network error, when `status` is 0. */
  error?: unknown;
}

export interface BrokerClientOptions {
  baseUrl: string;
  apiKey: string;
  /** Retries per call of a 429, or of a 503 or network error where the call is safe to repeat (default 3). */
  retries?: number;
  /** Longest wait before a retry, whatever Retry-After says (default 30 s). */
  maxRetryDelayMs?: number;
  /** The fetch to use (default: the global one). */
  fetch?: (input: string, init: RequestInit) => Promise<Response>;
  /** Called before each retry wait. */
  onRetry?: (info: RetryInfo) => void;
  /** Source of jitter in [0, 1) (default Math.random). */
  random?: () => number;
}

/** An error answer of the broker (application/problem+json). */
export class BrokerError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly detail: string,
    readonly retryAfterSeconds?: number,
  ) {
    super(`${status} ${code}: ${detail}`);
    this.name = "BrokerError";
  }
}

/** The first backoff when the broker gave no Retry-After (a network error); doubled for each further attempt. */
const BACKOFF_MS = 500;

export class BrokerClient {
  private readonly baseUrl: string;
  private readonly retries: number;
  private readonly maxRetryDelayMs: number;
  private readonly doFetch: (input: string, init: RequestInit) => Promise<Response>;
  private readonly random: () => number;

  constructor(private readonly options: BrokerClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.retries = options.retries ?? 3;
    this.maxRetryDelayMs = options.maxRetryDelayMs ?? 30_000;
    this.doFetch = options.fetch ?? ((input, init) => fetch(input, init));
    this.random = options.random ?? Math.random;
  }

  async acquire(pool: string, options: AcquireOptions = {}): Promise<AcquiredLease> {
    const { signal, idempotencyKey, ...body } = options;
    // One key for every attempt of this call: a retry after a lost answer gets the same lease.
    const key = idempotencyKey ?? crypto.randomUUID();
    return this.call<AcquiredLease>("POST", `/v1/pools/${encodeURIComponent(pool)}/leases`, {
      body,
      headers: { "idempotency-key": key },
      repeatable: true,
      ...(signal ? { signal } : {}),
    });
  }

  /** For job loops: releases lease `id` and acquires the next in the same pool, in one request (retried safely: one Idempotency-Key for every attempt). */
  async next(pool: string, id: string, options: AcquireOptions = {}): Promise<AcquiredLease> {
    const { signal, idempotencyKey, ...body } = options;
    const key = idempotencyKey ?? crypto.randomUUID();
    return this.call<AcquiredLease>("POST", `/v1/pools/${encodeURIComponent(pool)}/leases/${encodeURIComponent(id)}/next`, {
      body,
      headers: { "idempotency-key": key },
      repeatable: true,
      ...(signal ? { signal } : {}),
    });
  }

  getLease(pool: string, id: string, options: { signal?: AbortSignal } = {}): Promise<Lease> {
    return this.call("GET", `/v1/pools/${encodeURIComponent(pool)}/leases/${encodeURIComponent(id)}`, options);
  }

  renew(pool: string, id: string, options: { ttlSeconds?: number; signal?: AbortSignal } = {}): Promise<Lease> {
    const { signal, ...body } = options;
    return this.call("POST", `/v1/pools/${encodeURIComponent(pool)}/leases/${encodeURIComponent(id)}/renew`, { body, ...(signal ? { signal } : {}) });
  }

  /** Ends the lease (idempotent). */
  release(pool: string, id: string, options: { signal?: AbortSignal } = {}): Promise<Lease> {
    return this.call("DELETE", `/v1/pools/${encodeURIComponent(pool)}/leases/${encodeURIComponent(id)}`, { ...options, repeatable: true });
  }

  /** The pool's leases, newest first; pass `nextCursor` back as `cursor` for the next page. */
  listLeases(
    pool: string,
    options: Omit<Page, "cursor"> & { status?: LeaseStatus; cursor?: number } = {},
  ): Promise<{ leases: Lease[]; nextCursor: number | null }> {
    const { signal, ...query } = options;
    return this.call("GET", `/v1/pools/${encodeURIComponent(pool)}/leases${search(query)}`, signal ? { signal } : {});
  }

  /** Ends every active lease this API key holds in the pool. */
  releaseAll(pool: string, options: { signal?: AbortSignal } = {}): Promise<{ released: number }> {
    return this.call("DELETE", `/v1/pools/${encodeURIComponent(pool)}/leases`, options);
  }

  /** The pool's config, counts, capacity and health. */
  getPool(pool: string, options: { signal?: AbortSignal } = {}): Promise<Pool> {
    return this.call("GET", `/v1/pools/${encodeURIComponent(pool)}`, options);
  }

  /** Creates the pool or changes its config (any subset of fields); 403 quota_exceeded past the tenant's quota. */
  configurePool(pool: string, config: Partial<PoolConfig>, options: { signal?: AbortSignal } = {}): Promise<Pool> {
    return this.call("PUT", `/v1/pools/${encodeURIComponent(pool)}`, { body: config, ...options });
  }

  /** Deletes the pool (409 pool_busy while a lease is active or waiting). */
  deletePool(pool: string, options: { signal?: AbortSignal } = {}): Promise<{ pool: string; deleted: true; closedSessions: number }> {
    return this.call("DELETE", `/v1/pools/${encodeURIComponent(pool)}`, options);
  }

  /** The tenant's pools by name, a page at a time. */
  listPools(options: Page = {}): Promise<{ pools: PoolSummary[]; nextCursor: string | null }> {
    const { signal, ...query } = options;
    return this.call("GET", `/v1/pools${search(query)}`, signal ? { signal } : {});
  }

  /** The tenant's quota, usage and the rate limit its keys are held to. */
  tenant(options: { signal?: AbortSignal } = {}): Promise<TenantInfo> {
    return this.call("GET", "/v1/tenant", options);
  }

  /**
   * Acquires a lease, runs `fn` with it, and always releases it. `fn`'s result
   * or error is what this returns or throws; a failed release is reported to
   * `onReleaseError` (the lease's TTL ends it anyway).
   */
  async withLease<T>(
    pool: string,
    fn: (lease: AcquiredLease) => Promise<T>,
    options: AcquireOptions & { onReleaseError?: (error: unknown) => void } = {},
  ): Promise<T> {
    const { onReleaseError, ...acquireOptions } = options;
    const lease = await this.acquire(pool, acquireOptions);
    try {
      return await fn(lease);
    } finally {
      try {
        await this.release(pool, lease.id);
      } catch (error) {
        onReleaseError?.(error);
      }
    }
  }

  /**
   * One call, with its retries. `repeatable` (default: GET) says the call is
   * safe to make again when its answer was lost: then a 503 or a network error
   * is retried too; a 429 always is.
   */
  private async call<T>(
    method: string,
    path: string,
    options: { body?: unknown; headers?: Record<string, string>; signal?: AbortSignal; repeatable?: boolean } = {},
  ): Promise<T> {
    const repeatable = options.repeatable ?? method === "GET";
    for (let attempt = 1; ; attempt += 1) {
      options.signal?.throwIfAborted();
      let response: Response;
      try {
        response = await this.doFetch(`${this.baseUrl}${path}`, {
          method,
          headers: {
            authorization: `Bearer ${this.options.apiKey}`,
            ...(options.body === undefined ? {} : { "content-type": "application/json" }),
            ...options.headers,
          },
          ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
          ...(options.signal ? { signal: options.signal } : {}),
        });
      } catch (error) {
        // An abort is the caller's decision: never retried. Anything else is a network error.
        if (options.signal?.aborted || isAbort(error) || !repeatable || attempt > this.retries) throw error;
        const delayMs = this.delay(attempt);
        this.options.onRetry?.({ attempt, status: 0, code: "network_error", delayMs, error });
        await sleep(delayMs, options.signal);
        continue;
      }
      if (response.ok) return (await response.json()) as T;
      const error = await problem(response);
      const retryable = error.status === 429 || (error.status === 503 && repeatable);
      if (!retryable || attempt > this.retries) throw error;
      const delayMs = this.delay(attempt, error.retryAfterSeconds);
      this.options.onRetry?.({ attempt, status: error.status, code: error.code, delayMs });
      await sleep(delayMs, options.signal);
    }
  }

  /** The wait before retry `attempt`: Retry-After if given, else exponential backoff; plus up to 25 % jitter; capped. */
  private delay(attempt: number, retryAfterSeconds?: number): number {
    const base = retryAfterSeconds !== undefined ? retryAfterSeconds * 1000 : BACKOFF_MS * 2 ** (attempt - 1);
    return Math.min(this.maxRetryDelayMs, Math.round(base * (1 + 0.25 * this.random())));
  }
}

function isAbort(error: unknown): boolean {
  const name = (error as { name?: unknown } | null)?.name;
  return name === "AbortError" || name === "TimeoutError";
}

async function problem(response: Response): Promise<BrokerError> {
  const retryAfter = Number(response.headers.get("retry-after"));
  let body: { code?: string; detail?: string } = {};
  try {
    body = (await response.json()) as typeof body;
  } catch {
    // not a problem document
  }
  return new BrokerError(
    response.status,
    body.code ?? "http_error",
    body.detail ?? response.statusText,
    Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : undefined,
  );
}

function search(query: Record<string, string | number | undefined>): string {
  const entries = Object.entries(query).filter((entry): entry is [string, string | number] => entry[1] !== undefined);
  return entries.length === 0 ? "" : `?${new URLSearchParams(entries.map(([k, v]) => [k, String(v)])).toString()}`;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
