/**
 * The load engine shared by `npm run load` and `npm run chaos`: N concurrent
 * clients acquire, sometimes renew, and release leases on one pool; a share
 * of them vanish mid-request (their request is aborted and they never
 * release). Afterwards `audit` accounts for every lease: each one a client saw
 * (and each one the pool created) is ended with a reason, no session was ever
 * held by two leases at once (by the pool's own grantedAt/endedAt), the pool
 * drains to zero leased and zero waiting within TTL + 2 s, and full capacity
 * can be leased again.
 *
 * Clients and the audit call the broker through the customers' client
 * (client/index.ts, built to client/dist by setup).
 */
import { BrokerClient, BrokerError } from "../../client/dist/index.js";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export function percentile(values, q) {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/**
 * One simulated customer's BrokerClient, wrapped to report each call as
 * `{ status, body, ms }` for the statistics. Retries are off: a 429 or 503 is
 * an outcome to count, and a retry after Retry-After would hide it inside a
 * longer "acquire". Its fetch notes each answer's status (the client returns
 * only the body of a success) and the text of an answer that is not JSON.
 * One per customer, because a customer makes one call at a time.
 */
export function customer(url, key = "dev-key") {
  let answer;
  const broker = new BrokerClient({
    baseUrl: url,
    apiKey: key,
    retries: 0,
    fetch: async (input, init) => {
      const response = await fetch(input, init);
      const json = response.headers.get("content-type")?.includes("json");
      answer = { status: response.status, nonJson: json ? undefined : (await response.clone().text()).slice(0, 200) };
      return response;
    },
  });
  const timed = async (call) => {
    const started = performance.now();
    answer = undefined;
    try {
      const body = await call(broker);
      return { status: answer.status, body, ms: performance.now() - started };
    } catch (error) {
      // A network error, an abort, or a success whose body is not JSON: the caller counts it.
      if (!(error instanceof BrokerError)) throw error;
      const body = answer?.nonJson === undefined ? { code: error.code, detail: error.detail } : { nonJson: answer.nonJson };
      return { status: error.status, body, ms: performance.now() - started };
    }
  };
  return {
    acquire: (pool, options) => timed((b) => b.acquire(pool, options)),
    renew: (pool, id, options) => timed((b) => b.renew(pool, id, options)),
    release: (pool, id) => timed((b) => b.release(pool, id)),
  };
}

/**
 * @param {{ url: string, pool: string, clients: number, durationMs: number, vanishShare: number,
 *   ttlSeconds: number, waitSeconds: number, renewShare?: number, holdMs?: [number, number],
 *   onProgress?: (s: object) => void }} o
 */
export async function runLoad(o) {
  const stats = { ops: 0, inflight: 0, byOp: new Map(), outcomes: new Map(), seen: new Set(), vanished: 0, errors: 0, errorKinds: new Map() };
  const record = (op, status, ms) => {
    stats.ops += 1;
    const key = `${op} ${status}`;
    stats.outcomes.set(key, (stats.outcomes.get(key) ?? 0) + 1);
    if (!stats.byOp.has(op)) stats.byOp.set(op, []);
    stats.byOp.get(op).push(ms);
  };
  const deadline = Date.now() + o.durationMs;
  const [holdMin, holdMax] = o.holdMs ?? [20, 200];
  const started = Date.now();
  const progress = setInterval(() => o.onProgress?.({ elapsedMs: Date.now() - started, ...summary(stats) }), 1000);

  const client = async (index) => {
    const api = customer(o.url);
    while (Date.now() < deadline) {
      const vanish = Math.random() < o.vanishShare;
      const controller = new AbortController();
      if (vanish) setTimeout(() => controller.abort(), Math.random() * 300);
      stats.inflight += 1;
      let acquired;
      try {
        acquired = await api.acquire(o.pool, {
          ttlSeconds: o.ttlSeconds,
          waitSeconds: o.waitSeconds,
          labels: { client: String(index) },
          signal: controller.signal,
        });
      } catch (error) {
        stats.inflight -= 1;
        if (vanish) {
          stats.vanished += 1;
          continue; // this customer is gone (never releases); another takes its place
        }
        stats.errors += 1;
        const kind = String(error?.cause?.code ?? error?.cause?.message ?? error?.message ?? error);
        stats.errorKinds.set(kind, (stats.errorKinds.get(kind) ?? 0) + 1);
        record("acquire", "network_error", 0);
        continue;
      }
      stats.inflight -= 1;
      record("acquire", acquired.status, acquired.ms);
      if (acquired.body?.nonJson) stats.errorKinds.set(`${acquired.status} ${acquired.body.nonJson}`, (stats.errorKinds.get(`${acquired.status} ${acquired.body.nonJson}`) ?? 0) + 1);
      if (acquired.status === 201) stats.seen.add(acquired.body.id);
      if (acquired.status !== 201) {
        await sleep(20 + Math.random() * 80);
        continue;
      }
      if (vanish) {
        // Vanishes after the grant: its lease is held until it expires.
        stats.vanished += 1;
        continue;
      }
      await sleep(holdMin + Math.random() * (holdMax - holdMin));
      // The broker may be down (chaos): a failed renew or release is recorded and the lease left to expire.
      const attempt = async (op, call) => {
        try {
          const reply = await call();
          record(op, reply.status, reply.ms);
        } catch (error) {
          stats.errors += 1;
          const kind = String(error?.cause?.code ?? error?.message ?? error);
          stats.errorKinds.set(kind, (stats.errorKinds.get(kind) ?? 0) + 1);
          record(op, "network_error", 0);
        }
      };
      if (Math.random() < (o.renewShare ?? 0.2)) {
        await attempt("renew", () => api.renew(o.pool, acquired.body.id, { ttlSeconds: o.ttlSeconds }));
      }
      await attempt("release", () => api.release(o.pool, acquired.body.id));
    }
  };
  await Promise.all(Array.from({ length: o.clients }, (_, i) => client(i)));
  clearInterval(progress);
  return { ...summary(stats), seen: stats.seen, byOp: stats.byOp, outcomes: stats.outcomes, errorKinds: stats.errorKinds, elapsedMs: Date.now() - started };
}

function summary(stats) {
  return { ops: stats.ops, inflight: stats.inflight, vanished: stats.vanished, errors: stats.errors, granted: stats.seen.size };
}

/** Every lease of the pool, newest first, through the list endpoint's pages. */
export async function allLeases(api, pool) {
  const leases = [];
  let cursor;
  do {
    const page = await api.listLeases(pool, { limit: 100, ...(cursor ? { cursor } : {}) });
    leases.push(...page.leases);
    cursor = page.nextCursor;
  } while (cursor);
  return leases;
}

/**
 * The leak audit. Waits (bounded by TTL + 2 s from `loadEndedAt`) for the pool
 * to drain, then checks every lease and re-leases full capacity.
 * `capacityBackMs` is when the last of those re-leases was granted, after
 * `loadEndedAt` (null unless all were); with `capacityWithinMs` the audit also
 * checks that it came within that bound.
 * @returns {Promise<{ pass: boolean, checks: { name: string, ok: boolean, detail: string }[], drainMs: number | null,
 *   capacityBackMs: number | null, leases: number }>}
 */
export async function audit({ url, pool, seen, ttlSeconds, maxSessions, loadEndedAt, waitForCapacitySeconds = 30, capacityWithinMs }) {
  // Reads only, no retries: an error answer is an audit failure, not something to wait out.
  const api = new BrokerClient({ baseUrl: url, apiKey: "dev-key", retries: 0 });
  const checks = [];
  const check = (name, ok, detail = "") => checks.push({ name, ok, detail });
  const limit = loadEndedAt + ttlSeconds * 1000 + 2000;
  let drained = null;
  let view;
  for (;;) {
    view = await api.getPool(pool);
    if (view.counts.leased === 0 && view.counts.waiting === 0) {
      drained = Date.now();
      break;
    }
    if (Date.now() > limit + 5000) break;
    await sleep(100);
  }
  const drainMs = drained === null ? null : drained - loadEndedAt;
  check(
    "drained to 0 leased / 0 waiting within TTL + 2 s",
    drained !== null && drained <= limit,
    drained === null ? `still ${JSON.stringify(view.counts)}` : `${drainMs} ms after the load ended (limit ${ttlSeconds * 1000 + 2000} ms)`,
  );
  check("pool consistent (invariants)", view.consistent === true, view.violations?.join("; ") ?? "");

  const leases = await allLeases(api, pool);
  const byId = new Map(leases.map((l) => [l.id, l]));
  const missing = [...seen].filter((id) => !byId.has(id));
  check("every lease a client saw exists", missing.length === 0, missing.length ? `${missing.length} missing, e.g. ${missing[0]}` : `${seen.size} seen`);
  const open = leases.filter((l) => l.status === "active" || l.status === "waiting");
  check("every lease ended, with a reason", open.length === 0 && leases.every((l) => open.includes(l) || l.endReason), open.length ? `${open.length} still ${open[0].status}` : `${leases.length} leases`);

  // No session held by two leases at once, by the pool's own timestamps.
  const bySession = new Map();
  for (const lease of leases) {
    if (!lease.sessionId || !lease.grantedAt) continue;
    if (!bySession.has(lease.sessionId)) bySession.set(lease.sessionId, []);
    bySession.get(lease.sessionId).push([Date.parse(lease.grantedAt), Date.parse(lease.endedAt ?? lease.expiresAt)]);
  }
  let overlaps = 0;
  for (const spans of bySession.values()) {
    spans.sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < spans.length; i += 1) if (spans[i][0] < spans[i - 1][1]) overlaps += 1;
  }
  check("no session leased twice at once", overlaps === 0, `${bySession.size} sessions, ${overlaps} overlaps`);

  // Full capacity is usable again (a launch may still fail under injected faults: retried).
  const regain = async () => {
    const acquirer = customer(url);
    for (let attempt = 0; attempt < 10; attempt += 1) {
      const reply = await acquirer.acquire(pool, { ttlSeconds: 30, waitSeconds: waitForCapacitySeconds });
      if (reply.status === 201 || reply.status === 429 || reply.status < 500) return { ...reply, at: Date.now() };
      await sleep(200);
    }
    return { status: 503 };
  };
  const regained = await Promise.all(Array.from({ length: maxSessions }, regain));
  const ok = regained.filter((r) => r.status === 201);
  check("full capacity can be leased again", ok.length === maxSessions, `${ok.length}/${maxSessions} granted`);
  const capacityBackMs = ok.length === maxSessions ? Math.max(...ok.map((r) => r.at)) - loadEndedAt : null;
  if (capacityWithinMs !== undefined) {
    check(
      `full capacity leased again within ${capacityWithinMs} ms`,
      capacityBackMs !== null && capacityBackMs <= capacityWithinMs,
      capacityBackMs === null ? "never" : `${capacityBackMs} ms after the load ended`,
    );
  }
  await api.releaseAll(pool);
  return { pass: checks.every((c) => c.ok), checks, drainMs, capacityBackMs, leases: leases.length };
}

export function latencyTable(byOp) {
  const rows = ["| operation | count | p50 ms | p95 ms | p99 ms |", "|---|---|---|---|---|"];
  for (const [op, values] of byOp) {
    const fmt = (q) => (percentile(values, q) ?? 0).toFixed(1);
    rows.push(`| ${op} | ${values.length} | ${fmt(0.5)} | ${fmt(0.95)} | ${fmt(0.99)} |`);
  }
  return rows.join("\n");
}

export function outcomeTable(outcomes) {
  const rows = ["| operation and status | count |", "|---|---|"];
  for (const [key, count] of [...outcomes].sort()) rows.push(`| ${key} | ${count} |`);
  return rows.join("\n");
}
