/**
 * The HTTP API (DESIGN.md, "HTTP API (v1)"). The Worker is stateless: it
 * authenticates the key, validates input with the zod schemas, picks the pool
 * object `idFromName(tenant + "/" + pool)` and calls it over RPC. Every
 * decision about sessions and leases is the pool object's.
 */
import { Hono, type Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { AcquireView, PoolResult } from "../pool/object";
import { ADMIN_COOKIE, isAdminToken, rateRule, requireAdmin, requireApiKey, type AuthVariables, unauthorized } from "./auth";
import { DASHBOARD_HTML, dashboardData } from "./dashboard";
import { ApiError, notFound, onError } from "./errors";
import { openApiDocument } from "./openapi";
import { renderReference } from "./reference";
import {
  AcquireBody,
  CreateKeyBody,
  IdempotencyKey,
  KeyId,
  LeaseId,
  ListQuery,
  MAX_BODY_BYTES,
  PoolConfigBody,
  PoolListQuery,
  PoolName,
  QuotaBody,
  RenewBody,
  RotateKeyBody,
  TenantName,
} from "./schemas";
import { cdpHandler } from "./cdp";
import { poolOf, registryOf, tenantOf } from "./stubs";
import { allPools, renderMetrics } from "./metrics";
import { sha256Hex } from "./digest";
import { connectUrl, mintToken } from "./token";
import { parse, unwrap } from "./validate";

type AppEnv = { Bindings: Env; Variables: AuthVariables };
type Ctx = Context<AppEnv>;

/** Reads a JSON body. An empty body is `{}`; anything else must say it is JSON. */
async function readJson(c: Ctx): Promise<unknown> {
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

function poolStub(c: Ctx, pool: string) {
  return poolOf(c.env, c.get("tenant"), pool);
}


/** Stable JSON (sorted keys), so the same request always has the same fingerprint. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

function fingerprint(value: unknown): string {
  return sha256Hex(canonical(value));
}

/** Bodies over MAX_BODY_BYTES answer 413 before anything reads them. */
const limitBody = bodyLimit({
  maxSize: MAX_BODY_BYTES,
  onError: () => {
    throw new ApiError(413, "payload_too_large", `request bodies are limited to ${MAX_BODY_BYTES} bytes`);
  },
});

const v1 = new Hono<AppEnv>();
v1.use("*", requireApiKey());
v1.use("*", limitBody);

v1.post("/pools/:pool/leases", async (c) => {
  const pool = parse(PoolName, c.req.param("pool"), "path.pool");
  const body = parse(AcquireBody, await readJson(c), "body");
  const header = c.req.header("idempotency-key");
  const idempotencyKey = header === undefined ? undefined : parse(IdempotencyKey, header, "header.Idempotency-Key");
  const stub = poolStub(c, pool);
  const leaseId = crypto.randomUUID();
  // Minted here, shown once in this response; the pool object keeps only its hash.
  const token = mintToken(c.get("tenant"));
  // A caller that disconnects while queued gives up its place (best effort:
  // the waiter's deadline and the lease TTL are what guarantee it).
  const signal = c.req.raw.signal as AbortSignal | undefined;
  const onAbort = () => c.executionCtx.waitUntil(stub.cancel(leaseId).catch(() => false));
  signal?.addEventListener("abort", onAbort, { once: true });
  let result: PoolResult<AcquireView>;
  try {
    result = await stub.acquire({
      leaseId,
      tenant: c.get("tenant"),
      pool,
      owner: c.get("owner"),
      tokenHash: token.hash,
      ...body,
      ...(idempotencyKey ? { idempotencyKey, fingerprint: fingerprint(body) } : {}),
    });
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
  const { lease, replayed } = unwrap(result);
  c.header("Location", `/v1/pools/${pool}/leases/${lease.id}`);
  if (replayed) c.header("Idempotent-Replayed", "true");
  return c.json({ ...lease, connectUrl: connectUrl(c.req.url, pool, lease.id, token.token) }, 201);
});

v1.get("/pools/:pool/leases", async (c) => {
  const pool = parse(PoolName, c.req.param("pool"), "path.pool");
  const query = parse(ListQuery, c.req.query(), "query");
  const page = unwrap(await poolStub(c, pool).listLeases(query));
  return c.json(page);
});

v1.delete("/pools/:pool/leases", async (c) => {
  const pool = parse(PoolName, c.req.param("pool"), "path.pool");
  // The caller's leases: those acquired with the same API key.
  return c.json(unwrap(await poolStub(c, pool).releaseAll(c.get("owner"))));
});

v1.get("/pools/:pool/leases/:id", async (c) => {
  const pool = parse(PoolName, c.req.param("pool"), "path.pool");
  const id = parse(LeaseId, c.req.param("id"), "path.id");
  return c.json(unwrap(await poolStub(c, pool).getLease(id)));
});

v1.get("/pools/:pool/leases/:id/events", async (c) => {
  const pool = parse(PoolName, c.req.param("pool"), "path.pool");
  const id = parse(LeaseId, c.req.param("id"), "path.id");
  return c.json(unwrap(await poolStub(c, pool).leaseEvents(id)));
});

v1.post("/pools/:pool/leases/:id/renew", async (c) => {
  const pool = parse(PoolName, c.req.param("pool"), "path.pool");
  const id = parse(LeaseId, c.req.param("id"), "path.id");
  const body = parse(RenewBody, await readJson(c), "body");
  return c.json(unwrap(await poolStub(c, pool).renew(id, body.ttlSeconds)));
});

v1.delete("/pools/:pool/leases/:id", async (c) => {
  const pool = parse(PoolName, c.req.param("pool"), "path.pool");
  const id = parse(LeaseId, c.req.param("id"), "path.id");
  return c.json(unwrap(await poolStub(c, pool).release(id)));
});

/** One page of pools from the registry, each with its current counts and health (asked of the pool objects in parallel). */
async function poolSummaries(c: Ctx, tenant: string | undefined) {
  const query = parse(PoolListQuery, c.req.query(), "query");
  const registry = registryOf(c.env);
  const page = await registry.listPools({ ...(tenant === undefined ? {} : { tenant }), ...query });
  const pools = await Promise.all(
    page.pools.map(async (entry) => {
      const described = await poolOf(c.env, entry.tenant, entry.pool).describe();
      const base = { ...(tenant === undefined ? { tenant: entry.tenant } : {}), pool: entry.pool, createdAt: entry.createdAt };
      if (!described.ok) return { ...base, counts: null, capacity: null, consistent: null };
      const { counts, capacity, consistent } = described.value;
      return { ...base, counts, capacity, consistent };
    }),
  );
  return { pools, nextCursor: page.nextCursor };
}

// The caller's own tenant: its quota and usage, and the rate limit its keys are held to.
v1.get("/tenant", async (c) => {
  const { tenant, quota, usage } = await tenantOf(c.env, c.get("tenant")).describe(c.get("tenant"));
  const rate = rateRule(c.env);
  return c.json({ tenant, quota, usage, rateLimit: rate ? { requests: rate.limit, periodSeconds: rate.periodMs / 1000 } : null });
});

v1.get("/pools", async (c) => c.json(await poolSummaries(c, c.get("tenant"))));

v1.get("/pools/:pool", async (c) => {
  const pool = parse(PoolName, c.req.param("pool"), "path.pool");
  return c.json(unwrap(await poolStub(c, pool).describe()));
});

v1.delete("/pools/:pool", async (c) => {
  const pool = parse(PoolName, c.req.param("pool"), "path.pool");
  return c.json(unwrap(await poolStub(c, pool).deletePool(c.get("tenant"), pool)));
});

v1.put("/pools/:pool", async (c) => {
  const pool = parse(PoolName, c.req.param("pool"), "path.pool");
  const patch = parse(PoolConfigBody, await readJson(c), "body");
  return c.json(unwrap(await poolStub(c, pool).configure(c.get("tenant"), pool, patch)));
});

export const app = new Hono<AppEnv>();
app.onError(onError);
app.notFound(notFound);
app.get("/healthz", (c) => c.json({ status: "ok" }));
app.get("/openapi.json", (c) => c.json(openApiDocument()));
app.get("/docs", (c) => {
  c.header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'");
  return c.html(renderReference(openApiDocument() as Record<string, unknown>));
});
// The CDP socket authenticates with the lease's connect token, not an API key
// (WebSocket clients cannot be relied on to send headers), so it is routed
// before the API-key middleware of the other /v1 routes.
app.get("/v1/pools/:pool/leases/:id/cdp", cdpHandler);
// Operators: the account's session registry (orphaned browsers found and closed).
app.get("/v1/admin/registry", requireAdmin(), async (c) => {
  const registry = registryOf(c.env);
  return c.json(await registry.stats());
});
// Operators: Prometheus scrapes every pool's gauges, counters and histograms.
app.get("/metrics", requireAdmin(), async (c) => {
  const registry = registryOf(c.env);
  const { pools, truncated } = await allPools(registry);
  const metrics = await Promise.all(pools.map((p) => poolOf(c.env, p.tenant, p.pool).metrics()));
  return c.body(renderMetrics(metrics.filter((m) => m !== undefined), truncated), 200, {
    "content-type": "text/plain; version=0.0.4; charset=utf-8",
  });
});
// Operators' actions on any tenant's pool (admin token). The pool must exist.
const admin = new Hono<AppEnv>();
admin.use("*", requireAdmin());
admin.use("*", limitBody);
function adminStub(c: Ctx) {
  const tenant = parse(TenantName, c.req.param("tenant"), "path.tenant");
  const pool = parse(PoolName, c.req.param("pool"), "path.pool");
  return poolOf(c.env, tenant, pool);
}
admin.get("/pools/:tenant/:pool", async (c) => c.json(unwrap(await adminStub(c).describe())));
admin.put("/pools/:tenant/:pool", async (c) => {
  const stub = adminStub(c);
  return c.json(unwrap(await stub.reconfigure(parse(PoolConfigBody, await readJson(c), "body"))));
});
admin.delete("/pools/:tenant/:pool", async (c) => {
  const stub = adminStub(c);
  return c.json(unwrap(await stub.deletePool(c.req.param("tenant"), c.req.param("pool"))));
});
admin.post("/pools/:tenant/:pool/drain", async (c) => c.json(unwrap(await adminStub(c).drain())));
admin.post("/pools/:tenant/:pool/resume", async (c) => c.json(unwrap(await adminStub(c).resume())));
admin.post("/pools/:tenant/:pool/purge-idle", async (c) => c.json(unwrap(await adminStub(c).purgeIdle())));
admin.delete("/pools/:tenant/:pool/leases/:id", async (c) => {
  const stub = adminStub(c);
  return c.json(unwrap(await stub.forceRelease(parse(LeaseId, c.req.param("id"), "path.id"))));
});
admin.get("/pools/:tenant/:pool/leases/:id/events", async (c) => {
  const stub = adminStub(c);
  return c.json(unwrap(await stub.leaseEvents(parse(LeaseId, c.req.param("id"), "path.id"))));
});

// Operators: tenants' quotas and managed API keys (a key is shown once, when created or rotated).
function tenantParam(c: Ctx): string {
  return parse(TenantName, c.req.param("tenant"), "path.tenant");
}
function tenantStub(c: Ctx) {
  return tenantOf(c.env, tenantParam(c));
}
admin.get("/tenants", async (c) => {
  const query = parse(PoolListQuery, c.req.query(), "query");
  const page = await registryOf(c.env).listTenants(query);
  const tenants = await Promise.all(page.tenants.map((tenant) => tenantOf(c.env, tenant).describe(tenant)));
  return c.json({ tenants, nextCursor: page.nextCursor });
});
admin.get("/tenants/:tenant", async (c) => c.json(await tenantStub(c).describe(tenantParam(c))));
admin.put("/tenants/:tenant", async (c) => {
  const patch = parse(QuotaBody, await readJson(c), "body");
  return c.json(await tenantStub(c).setQuota(tenantParam(c), patch));
});
admin.get("/tenants/:tenant/keys", async (c) => c.json(await tenantStub(c).listKeys()));
admin.post("/tenants/:tenant/keys", async (c) => {
  const body = parse(CreateKeyBody, await readJson(c), "body");
  const issued = unwrap(await tenantStub(c).createKey(tenantParam(c), body.name ?? "unnamed"));
  c.header("Cache-Control", "no-store");
  return c.json(issued, 201);
});
admin.get("/tenants/:tenant/keys/:id", async (c) => {
  const stub = tenantStub(c);
  return c.json(unwrap(await stub.getKey(parse(KeyId, c.req.param("id"), "path.id"))));
});
admin.post("/tenants/:tenant/keys/:id/rotate", async (c) => {
  const stub = tenantStub(c);
  const id = parse(KeyId, c.req.param("id"), "path.id");
  const body = parse(RotateKeyBody, await readJson(c), "body");
  const issued = unwrap(await stub.rotateKey(id, body.graceSeconds ?? 0));
  c.header("Cache-Control", "no-store");
  return c.json(issued);
});
admin.delete("/tenants/:tenant/keys/:id", async (c) => {
  const stub = tenantStub(c);
  return c.json(unwrap(await stub.revokeKey(parse(KeyId, c.req.param("id"), "path.id"))));
});

// Operators: the live dashboard. `?token=` is exchanged for a cookie (reads only) and dropped from the URL.
app.get("/dashboard", async (c, next) => {
  const token = c.req.query("token");
  if (token === undefined) return next();
  if (!isAdminToken(c.env, token)) throw unauthorized("the admin token is not valid");
  const secure = new URL(c.req.url).protocol === "https:" ? "; Secure" : "";
  c.header("Set-Cookie", `${ADMIN_COOKIE}=${encodeURIComponent(token)}; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200${secure}`);
  return c.redirect("/dashboard", 303);
});
app.get("/dashboard", requireAdmin(), (c) => {
  c.header("Cache-Control", "no-store");
  c.header("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self'");
  return c.html(DASHBOARD_HTML);
});
app.get("/dashboard/data", requireAdmin(), async (c) => {
  const registry = registryOf(c.env);
  c.header("Cache-Control", "no-store");
  return c.json(await dashboardData(registry, (p) => poolOf(c.env, p.tenant, p.pool).dashboard()));
});
// Operators: every pool of every tenant.
app.get("/v1/admin/pools", requireAdmin(), async (c) => c.json(await poolSummaries(c as unknown as Ctx, undefined)));
// An operator's request that names no admin route is a 404, not a fall through to the API-key routes' 401.
admin.all("*", (c) => notFound(c));
app.route("/v1/admin", admin);
app.route("/v1", v1);
