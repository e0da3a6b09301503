/**
 * The benchmark's in-workerd half, started by bench/run.mjs next to the broker
 * in one Miniflare (one workerd process). Clients run here, not in Node, so a
 * figure is the Worker and Durable Object's cost, not Node's HTTP client's.
 *
 * One script, two Miniflare workers:
 *   - "baseline": `POST /op` → one RPC to the Baseline Durable Object, which
 *     does one SQLite write and returns. The floor a broker request stands on.
 *   - "driver": the clients. They reach the broker and the baseline through
 *     service bindings, i.e. through each Worker's own fetch handler (the
 *     broker's whole HTTP path: routing, API key, validation, RPC, JSON).
 *
 * Driver routes (JSON in, JSON out):
 *   POST /run     loops for a time window; an op is acquire + release on the
 *                 broker, or two /op requests on the baseline (the same number
 *                 of Worker → DO round trips). Extra loops beyond `concurrency`
 *                 keep `waiters` callers queued during the window.
 *   POST /seed    `count` acquire + release pairs (grows a pool's history).
 *   POST /launch  raw cold launches through the BROWSER binding, timed:
 *                 `puppeteer.launch` and `puppeteer.acquire`, each then closed.
 *   POST /acquire one broker acquire, timed, then released.
 */
import puppeteer from "@cloudflare/puppeteer";
import { DurableObject } from "cloudflare:workers";

interface Env {
  BASELINE_DO: DurableObjectNamespace<Baseline>;
  BROKER: Fetcher;
  BASELINE: Fetcher;
  BROWSER: Fetcher;
}

const API_KEY = "bench-key";

export class Baseline extends DurableObject<Env> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.storage.sql.exec(`CREATE TABLE IF NOT EXISTS writes (id INTEGER PRIMARY KEY, at INTEGER NOT NULL)`);
  }

  write(): number {
    return this.ctx.storage.sql.exec(`INSERT INTO writes (at) VALUES (?)`, Date.now()).rowsWritten;
  }
}

/**
 * What one op is. "broker": acquire + release; "baseline": two /op requests.
 * The probes split the broker's cost, each two requests per op like the others:
 * "healthz" the Worker's routing alone (no key, no object), "get" a read of one
 * lease (key check, RPC, one SELECT, no write), "renew" a write transition on a
 * lease (key check, body validation, RPC, transaction, journal, alarm check).
 * "getManaged" is "get" with a managed key (`apiKey`), checked by the tenant's
 * object on every request (an RPC more than a key from API_KEYS).
 */
type Target = "broker" | "baseline" | "healthz" | "get" | "getManaged" | "renew";

interface RunSpec {
  target: Target;
  pool: string;
  concurrency: number;
  waiters: number;
  durationMs: number;
  warmupMs: number;
  /** The key the broker's requests carry (default: the API_KEYS key). */
  apiKey?: string;
}

interface Stats {
  ops: number;
  windowMs: number;
  opsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  errors: Record<string, number>;
  queuedAtStart?: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

class Broker {
  constructor(
    private readonly env: Env,
    private readonly apiKey = API_KEY,
  ) {}

  private call(method: string, path: string, body?: unknown): Promise<Response> {
    return this.env.BROKER.fetch(`https://broker${path}`, {
      method,
      headers: { authorization: `Bearer ${this.apiKey}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  }

  /** Acquire; resolves with the lease id, or throws an Error named by the answer's code. */
  async acquire(pool: string, waitSeconds: number): Promise<string> {
    const response = await this.call("POST", `/v1/pools/${pool}/leases`, { waitSeconds, ttlSeconds: 300 });
    const body = (await response.json()) as { id?: string; code?: string };
    if (response.status !== 201 || !body.id) throw new Error(`acquire ${response.status} ${body.code ?? ""}`.trim());
    return body.id;
  }

  /** Any request that must answer 2xx; the body is discarded. */
  async ok(method: string, path: string, body?: unknown): Promise<void> {
    const response = await this.call(method, path, body);
    await response.body?.cancel();
    if (!response.ok) throw new Error(`${method} ${path.replace(/[0-9a-f-]{36}/, "{id}")} ${response.status}`);
  }

  async release(pool: string, id: string): Promise<void> {
    const response = await this.call("DELETE", `/v1/pools/${pool}/leases/${id}`);
    await response.body?.cancel();
    if (!response.ok) throw new Error(`release ${response.status}`);
  }

  async waiting(pool: string): Promise<number> {
    const response = await this.call("GET", `/v1/pools/${pool}`);
    const body = (await response.json()) as { counts?: { waiting: number } };
    return body.counts?.waiting ?? 0;
  }
}

async function baselineOp(env: Env): Promise<void> {
  for (let i = 0; i < 2; i += 1) {
    const response = await env.BASELINE.fetch("https://baseline/op", { method: "POST" });
    await response.body?.cancel();
    if (!response.ok) throw new Error(`baseline ${response.status}`);
  }
}

/**
 * The loops themselves move the run through its phases, reading the clock
 * after each request: workerd runs timers only when no other work is ready,
 * and in-process service-binding calls keep it busy, so a timer-driven window
 * would not close while the loops spin.
 */
async function run(env: Env, spec: RunSpec): Promise<Stats> {
  const broker = new Broker(env, spec.apiKey);
  const latencies: number[] = [];
  const errors: Record<string, number> = {};
  let ops = 0;
  let phase: "filling" | "warmup" | "window" | "stopping" = "filling";
  let warmupEnd = 0;
  let windowStart = 0;
  let windowEnd = 0;
  let windowMs = 0;
  let inAcquire = 0;
  let queuedAtStart: Promise<number> | undefined;
  const advance = (now: number) => {
    // Filling: until the extra loops are queued (all but the ones being served).
    if (phase === "filling" && inAcquire >= spec.waiters) {
      phase = "warmup";
      warmupEnd = now + spec.warmupMs;
    }
    if (phase === "warmup" && now >= warmupEnd) {
      phase = "window";
      windowStart = now;
      windowEnd = now + spec.durationMs;
      if (spec.waiters > 0) queuedAtStart = broker.waiting(spec.pool);
    }
    if (phase === "window" && now >= windowEnd) {
      phase = "stopping";
      windowMs = now - windowStart;
    }
  };
  const op = await makeOp(env, broker, spec, (delta) => (inAcquire += delta));
  const loop = async () => {
    while (phase !== "stopping") {
      const started = performance.now();
      advance(Date.now());
      try {
        await op();
        const ended = performance.now();
        if (phase === "window" && Date.now() <= windowEnd) {
          ops += 1;
          latencies.push(ended - started);
        }
      } catch (error) {
        const key = error instanceof Error ? error.message : String(error);
        errors[key] = (errors[key] ?? 0) + 1;
      }
      advance(Date.now());
    }
  };
  try {
    await Promise.all(Array.from({ length: spec.concurrency + spec.waiters }, loop));
  } finally {
    await op.cleanup?.();
  }
  latencies.sort((a, b) => a - b);
  return {
    ops,
    windowMs,
    opsPerSecond: (ops * 1000) / windowMs,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    errors,
    ...(queuedAtStart === undefined ? {} : { queuedAtStart: await queuedAtStart }),
  };
}

type Op = (() => Promise<void>) & { cleanup?: () => Promise<void> };

async function makeOp(env: Env, broker: Broker, spec: RunSpec, acquiring: (delta: number) => void): Promise<Op> {
  const twice = (request: () => Promise<void>): Op => async () => {
    await request();
    await request();
  };
  switch (spec.target) {
    case "baseline":
      return () => baselineOp(env);
    case "broker":
      return async () => {
        acquiring(1);
        let id: string;
        try {
          id = await broker.acquire(spec.pool, 60);
        } finally {
          acquiring(-1);
        }
        await broker.release(spec.pool, id);
      };
    case "healthz":
      return twice(() => broker.ok("GET", "/healthz"));
    case "get":
    case "getManaged":
    case "renew": {
      const id = await broker.acquire(spec.pool, 60);
      const path = `/v1/pools/${spec.pool}/leases/${id}`;
      const op: Op =
        spec.target !== "renew" ? twice(() => broker.ok("GET", path)) : twice(() => broker.ok("POST", `${path}/renew`, { ttlSeconds: 300 }));
      op.cleanup = () => broker.release(spec.pool, id);
      return op;
    }
  }
}

async function seed(env: Env, pool: string, count: number, concurrency: number): Promise<{ done: number }> {
  const broker = new Broker(env);
  let next = 0;
  const loop = async () => {
    while (next < count) {
      next += 1;
      const id = await broker.acquire(pool, 60);
      await broker.release(pool, id);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
  return { done: next };
}

/**
 * Closes a browser the raw way and waits until it has ended (its detail is 404
 * or has an endTime; the list drops it before Chromium has exited), so the next
 * timed launch does not share the CPU with a browser still shutting down.
 */
async function closeRaw(env: Env, sessionId: string): Promise<void> {
  const response = await env.BROWSER.fetch(`https://fake.host/v1/devtools/browser/${sessionId}`, { method: "DELETE" });
  await response.body?.cancel();
  for (let i = 0; i < 100; i += 1) {
    const detail = await env.BROWSER.fetch(`https://fake.host/v1/devtools/session/${sessionId}`);
    if (detail.status === 404) {
      await detail.body?.cancel();
      return;
    }
    const body = (detail.ok ? await detail.json().catch(() => null) : await detail.body?.cancel()) as { endTime?: number } | null | undefined;
    if (body?.endTime) return;
    await scheduler.wait(50);
  }
}

async function rawLaunch(env: Env, kind: "launch" | "acquire"): Promise<{ ms: number }> {
  const started = Date.now();
  let sessionId: string;
  if (kind === "launch") {
    const browser = await puppeteer.launch(env.BROWSER, { keep_alive: 60_000 });
    sessionId = browser.sessionId();
    const ms = Date.now() - started;
    await browser.close();
    await closeRaw(env, sessionId);
    return { ms };
  }
  sessionId = (await puppeteer.acquire(env.BROWSER, { keep_alive: 60_000 })).sessionId;
  const ms = Date.now() - started;
  await closeRaw(env, sessionId);
  return { ms };
}

async function timedAcquire(env: Env, pool: string): Promise<{ ms: number }> {
  const broker = new Broker(env);
  const started = Date.now();
  const id = await broker.acquire(pool, 30);
  const ms = Date.now() - started;
  await broker.release(pool, id);
  return { ms };
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    try {
      if (url.pathname === "/op") {
        const stub = env.BASELINE_DO.get(env.BASELINE_DO.idFromName("baseline"));
        return new Response(String(await stub.write()));
      }
      const body = request.method === "POST" ? ((await request.json()) as Record<string, unknown>) : {};
      switch (url.pathname) {
        case "/run":
          return Response.json(await run(env, body as unknown as RunSpec));
        case "/seed":
          return Response.json(await seed(env, String(body.pool), Number(body.count), Number(body.concurrency ?? 50)));
        case "/launch":
          return Response.json(await rawLaunch(env, body.kind === "acquire" ? "acquire" : "launch"));
        case "/acquire":
          return Response.json(await timedAcquire(env, String(body.pool)));
        default:
          return new Response("not found", { status: 404 });
      }
    } catch (error) {
      return Response.json({ error: error instanceof Error ? error.message : String(error) }, { status: 500 });
    }
  },
};
