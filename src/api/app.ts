/**
 * The HTTP API (docs/api.md, and /openapi.json). The Worker is stateless: it
 * authenticates the key, validates input with the zod schemas, picks the pool
 * object `idFromName(tenant + "/" + pool)` and calls it over RPC. Every
 * decision about sessions and leases is the pool object's.
 */
import { Hono, type Context } from "hono";
import type { AcquireView } from "../pool/object";
import { ADMIN_COOKIE, isAdminToken, requireAdmin, requireApiKey, type AuthVariables, unauthorized } from "./auth";
import { DASHBOARD_HTML, dashboardData } from "./dashboard";
import { ApiError, notFound, onError } from "./errors";
import { openApiDocument } from "./openapi";
import { renderErrorCatalogue, renderReference } from "./reference";
import { ERRORS_PATH } from "../problems";
import { issueSession, SESSION_SECONDS } from "./session";
import {
  AcquireBody,
  IdempotencyKey,
  LeaseId,
  ListQuery,
  PoolConfigBody,
  PoolName,
  RenewBody,
  TenantName,
  ViewerBody,
} from "./schemas";
import { cdpHandler } from "./cdp";
import { limitBody } from "./limits";
import { tenantsAdmin } from "./admin-tenants";
import { applyPlan, grantWithPlan, planState, readLiveState } from "./prepare";
import { profiles, refuseUploads } from "./profiles";
import { steelLive } from "./steel-live";
import { poolCall, registryCall, type Repeat } from "./calls";
import { poolOf } from "../stubs";
import { allPools, renderMetrics } from "./metrics";
import { sha256Hex } from "../digest";
import { connectUrl, mintToken, viewerUrl } from "../token";
import { viewerPageHandler, viewerStreamHandler } from "./viewer/routes";
import { steel } from "./steel";
import { pools, poolSummaries } from "./pools";
import { recording } from "./recording/routes";
import { parse, readJson, unwrap } from "./validate";
import { checkPlacement } from "./placement";
import { accountView, capacity } from "./capacity";

type AppEnv = { Bindings: Env; Variables: AuthVariables };
type Ctx = Context<AppEnv>;

/** One call to the caller's pool `pool` (calls.ts: a failed call answers 503; a repeatable one is retried once). */
function onPool<R extends PromiseLike<unknown>>(c: Ctx, pool: string, method: string, repeat: Repeat, call: (stub: ReturnType<typeof poolOf>) => R): Promise<Awaited<R>> {
  return poolCall(c.env, c.get("tenant"), pool, method, repeat, call);
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

const v1 = new Hono<AppEnv>();
v1.use("*", requireApiKey());
// A user-data-dir archive (Steel's profiles.create) is told why it is refused (400 naming userDataDir), not only that it is big.
v1.use("/profiles", refuseUploads);
v1.use("/profiles/*", refuseUploads);
v1.use("*", limitBody);

v1.post("/pools/:pool/leases", async (c) => acquireLease(c, parse(PoolName, c.req.param("pool"), "path.pool")));

/**
 * For job loops: releases the lease (idempotent, as DELETE) and acquires the
 * caller's next one in the same pool, in one request. The body is an
 * acquire's, validated before anything is released; what fails after the
 * release (no browser in time, a missing profile) leaves the old lease
 * released. Retry with the same Idempotency-Key to get the same next lease.
 */
v1.post("/pools/:pool/leases/:id/next", async (c) => {
  const pool = parse(PoolName, c.req.param("pool"), "path.pool");
  const id = parse(LeaseId, c.req.param("id"), "path.id");
  parse(AcquireBody, await readJson(c), "body");
  unwrap(await onPool(c, pool, "release", "repeatable", (stub) => stub.release(id)));
  return acquireLease(c, pool);
});

/** An acquire (POST …/leases, and the second half of …/next): the lease, its connect and viewer URLs, its state applied. */
async function acquireLease(c: Ctx, pool: string): Promise<Response> {
  const body = parse(AcquireBody, await readJson(c), "body");
  const { context, profileId, persistProfile, ...request } = body;
  const header = c.req.header("idempotency-key");
  const idempotencyKey = header === undefined ? undefined : parse(IdempotencyKey, header, "header.Idempotency-Key");
  const leaseId = crypto.randomUUID();
  const plan = await planState(c.env, c.get("tenant"), leaseId, { context, profileId, persistProfile });
  // Minted here, shown once in this response; the pool object keeps only their hashes.
  const token = mintToken(c.get("tenant"));
  const viewer = mintToken(c.get("tenant"));
  // A caller that disconnects while queued gives up its place (best effort:
  // the waiter's deadline and the lease TTL are what guarantee it).
  const signal = c.req.raw.signal as AbortSignal | undefined;
  const onAbort = () => c.executionCtx.waitUntil(poolOf(c.env, c.get("tenant"), pool).cancel(leaseId).catch(() => false));
  signal?.addEventListener("abort", onAbort, { once: true });
  const input = {
    leaseId,
    tenant: c.get("tenant"),
    pool,
    owner: c.get("owner"),
    tokenHash: token.hash,
    viewerTokenHash: viewer.hash,
    ...request,
    ...(plan.persistProfile ? { persistProfile: plan.persistProfile } : {}),
    ...(idempotencyKey ? { idempotencyKey, fingerprint: fingerprint(body) } : {}),
  };
  let view: AcquireView;
  try {
    // Repeatable: the same input, lease id included, is answered with the lease
    // the first attempt created, if it got that far (see PoolObject.acquire).
    view = await grantWithPlan(c.env, c.get("tenant"), plan, () => onPool(c, pool, "acquire", "repeatable", (stub) => stub.acquire(input)));
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
  const { lease, replayed } = view;
  if (signal?.aborted && lease.status === "active") {
    // The caller left while the pool decided. Its connect token never left this
    // Worker, so nobody can use the lease: give it back now rather than at
    // connectWithinSeconds (unless another request, a replay, holds it too).
    c.executionCtx.waitUntil(onPool(c, pool, "abandon", "repeatable", (stub) => stub.abandon(leaseId)).catch(() => false));
    throw new ApiError(409, "lease_not_active", "the request was aborted before its lease could be delivered; the lease was released");
  }
  // Before the answer: the first page the client opens sees the state (a replay applies it again, harmlessly).
  if (lease.status === "active") await applyPlan(c.env, c.get("tenant"), pool, lease, plan);
  c.header("Location", `/v1/pools/${pool}/leases/${lease.id}`);
  if (replayed) c.header("Idempotent-Replayed", "true");
  return c.json(
    { ...lease, connectUrl: connectUrl(c.req.url, pool, lease.id, token.token), viewerUrl: viewerUrl(c.req.url, pool, lease.id, viewer.token) },
    201,
  );
}

v1.get("/pools/:pool/leases", async (c) => {
  const pool = parse(PoolName, c.req.param("pool"), "path.pool");
  const query = parse(ListQuery, c.req.query(), "query");
  const page = unwrap(await onPool(c, pool, "listLeases", "repeatable", (stub) => stub.listLeases(query)));
  return c.json(page);
});

v1.delete("/pools/:pool/leases", async (c) => {
  const pool = parse(PoolName, c.req.param("pool"), "path.pool");
  // The caller's leases: those acquired with the same API key.
  return c.json(unwrap(await onPool(c, pool, "releaseAll", "once", (stub) => stub.releaseAll(c.get("owner")))));
});

v1.get("/pools/:pool/leases/:id", async (c) => {
  const pool = parse(PoolName, c.req.param("pool"), "path.pool");
  const id = parse(LeaseId, c.req.param("id"), "path.id");
  return c.json(unwrap(await onPool(c, pool, "getLease", "repeatable", (stub) => stub.getLease(id))));
});

// Another viewer URL for the lease, to hand to a person (interactive: they may drive the page).
v1.post("/pools/:pool/leases/:id/viewer", async (c) => {
  const pool = parse(PoolName, c.req.param("pool"), "path.pool");
  const id = parse(LeaseId, c.req.param("id"), "path.id");
  const body = parse(ViewerBody, await readJson(c), "body");
  const interactive = body.interactive ?? false;
  const viewer = mintToken(c.get("tenant"));
  const minted = unwrap(await onPool(c, pool, "mintViewer", "repeatable", (stub) => stub.mintViewer(id, viewer.hash, interactive)));
  return c.json({ viewerUrl: viewerUrl(c.req.url, pool, id, viewer.token), ...minted }, 201);
});

// The live browser's cookies and localStorage (context.ts), in the shape `context` on acquire takes.
v1.get("/pools/:pool/leases/:id/context", async (c) => {
  const pool = parse(PoolName, c.req.param("pool"), "path.pool");
  const id = parse(LeaseId, c.req.param("id"), "path.id");
  const lease = unwrap(await onPool(c, pool, "getLease", "repeatable", (stub) => stub.getLease(id)));
  if (lease.status !== "active" || !lease.sessionId) throw new ApiError(409, "lease_not_active", `lease ${id} is ${lease.status}: only an active lease's browser has a state to read`);
  return c.json(await readLiveState(c.env, lease.sessionId));
});

v1.get("/pools/:pool/leases/:id/events", async (c) => {
  const pool = parse(PoolName, c.req.param("pool"), "path.pool");
  const id = parse(LeaseId, c.req.param("id"), "path.id");
  return c.json(unwrap(await onPool(c, pool, "leaseEvents", "repeatable", (stub) => stub.leaseEvents(id))));
});

// A recorded lease's replay, from R2, once the lease has ended (src/api/recording).
v1.route("/", recording);
// Steel's Sessions API on top of leases (steel.ts); its events and live details (steel-live.ts).
v1.route("/", steelLive);
v1.route("/", steel);
// Saved browser state, per tenant, in Steel's shape (profiles.ts).
v1.route("/", profiles);
v1.route("/", pools);

v1.post("/pools/:pool/leases/:id/renew", async (c) => {
  const pool = parse(PoolName, c.req.param("pool"), "path.pool");
  const id = parse(LeaseId, c.req.param("id"), "path.id");
  const body = parse(RenewBody, await readJson(c), "body");
  return c.json(unwrap(await onPool(c, pool, "renew", "once", (stub) => stub.renew(id, body.ttlSeconds))));
});

v1.delete("/pools/:pool/leases/:id", async (c) => {
  const pool = parse(PoolName, c.req.param("pool"), "path.pool");
  const id = parse(LeaseId, c.req.param("id"), "path.id");
  // Repeatable: releasing a lease that has ended answers with that lease.
  return c.json(unwrap(await onPool(c, pool, "release", "repeatable", (stub) => stub.release(id))));
});

export const app = new Hono<AppEnv>();
app.onError(onError);
app.notFound(notFound);
app.get("/healthz", (c) => c.json({ status: "ok" }));
app.get("/openapi.json", (c) => c.json(openApiDocument()));
/** The /docs pages are static HTML: inline styles, no scripts, nothing loaded from anywhere. */
const DOCS_CSP = "default-src 'none'; style-src 'unsafe-inline'";
app.get("/docs", (c) => {
  c.header("Content-Security-Policy", DOCS_CSP);
  return c.html(renderReference(openApiDocument() as Record<string, unknown>));
});
// The error catalogue: every problem+json `type` is `<origin>/docs/errors#<code>` (src/problems.ts).
const errorCatalogue = renderErrorCatalogue();
app.get(ERRORS_PATH, (c) => {
  c.header("Content-Security-Policy", DOCS_CSP);
  return c.html(errorCatalogue);
});
// The CDP socket authenticates with the lease's connect token, not an API key
// (WebSocket clients cannot be relied on to send headers), so it is routed
// before the API-key middleware of the other /v1 routes.
app.get("/v1/pools/:pool/leases/:id/cdp", cdpHandler);
// The live viewer takes the lease's viewer token, not an API key: a person opens it in a browser.
app.get("/v1/pools/:pool/leases/:id/viewer", viewerPageHandler);
app.get("/v1/pools/:pool/leases/:id/viewer/stream", viewerStreamHandler);
// Operators: the account's session registry (orphaned browsers found and closed).
app.get("/v1/admin/registry", requireAdmin(), async (c) => c.json(await registryCall(c.env, "stats", "repeatable", (registry) => registry.stats())));
// Operators: Prometheus scrapes every pool's gauges, counters and histograms.
app.get("/metrics", requireAdmin(), async (c) => {
  const { pools, truncated } = await allPools({
    listPools: (options) => registryCall(c.env, "listPools", "repeatable", (registry) => registry.listPools(options)),
  });
  const [metrics, account] = await Promise.all([
    Promise.all(pools.map((p) => poolCall(c.env, p.tenant, p.pool, "metrics", "repeatable", (stub) => stub.metrics()))),
    accountView(c.env),
  ]);
  return c.body(renderMetrics(metrics.filter((m) => m !== undefined), truncated, account), 200, {
    "content-type": "text/plain; version=0.0.4; charset=utf-8",
  });
});
// Operators' actions on any tenant's pool (admin token). The pool must exist.
const admin = new Hono<AppEnv>();
admin.use("*", requireAdmin());
admin.use("*", limitBody);
/** The admin route's `{tenant}/{pool}` (validated), and a caller of that pool object (calls.ts). */
function adminPool(c: Ctx) {
  const tenant = parse(TenantName, c.req.param("tenant"), "path.tenant");
  const pool = parse(PoolName, c.req.param("pool"), "path.pool");
  return {
    tenant,
    pool,
    call: <R extends PromiseLike<unknown>>(method: string, repeat: Repeat, call: (stub: ReturnType<typeof poolOf>) => R) => poolCall(c.env, tenant, pool, method, repeat, call),
  };
}
admin.get("/pools/:tenant/:pool", async (c) => c.json(unwrap(await adminPool(c).call("describe", "repeatable", (stub) => stub.describe()))));
admin.put("/pools/:tenant/:pool", async (c) => {
  const target = adminPool(c);
  const patch = parse(PoolConfigBody, await readJson(c), "body");
  // An existing pool never moves (src/placement.ts): a hint other than its own is refused, as on the tenant's PUT.
  if (patch.locationHint !== undefined) await checkPlacement(c.env, target.tenant, target.pool, patch.locationHint, `locationHint ${patch.locationHint}`);
  return c.json(unwrap(await target.call("reconfigure", "once", (stub) => stub.reconfigure(patch))));
});
admin.delete("/pools/:tenant/:pool", async (c) => {
  const target = adminPool(c);
  return c.json(unwrap(await target.call("deletePool", "once", (stub) => stub.deletePool(target.tenant, target.pool))));
});
admin.post("/pools/:tenant/:pool/drain", async (c) => c.json(unwrap(await adminPool(c).call("drain", "once", (stub) => stub.drain()))));
admin.post("/pools/:tenant/:pool/resume", async (c) => c.json(unwrap(await adminPool(c).call("resume", "once", (stub) => stub.resume()))));
admin.post("/pools/:tenant/:pool/purge-idle", async (c) => c.json(unwrap(await adminPool(c).call("purgeIdle", "once", (stub) => stub.purgeIdle()))));
// The full invariant check, now (it reads the whole wait queue, so the read path shows the alarm's last one instead).
admin.post("/pools/:tenant/:pool/check", async (c) => c.json(unwrap(await adminPool(c).call("checkNow", "repeatable", (stub) => stub.checkNow()))));
admin.delete("/pools/:tenant/:pool/leases/:id", async (c) => {
  const target = adminPool(c);
  const id = parse(LeaseId, c.req.param("id"), "path.id");
  return c.json(unwrap(await target.call("forceRelease", "once", (stub) => stub.forceRelease(id))));
});
admin.get("/pools/:tenant/:pool/leases/:id/events", async (c) => {
  const target = adminPool(c);
  const id = parse(LeaseId, c.req.param("id"), "path.id");
  return c.json(unwrap(await target.call("leaseEvents", "repeatable", (stub) => stub.leaseEvents(id))));
});
// Operators: a viewer URL for any tenant's lease, as POST /v1/pools/{pool}/leases/{id}/viewer mints for its
// tenant. Routed before the admin sub-app: the dashboard's own script may mint with its session cookie (auth.ts).
app.post("/v1/admin/pools/:tenant/:pool/leases/:id/viewer", requireAdmin({ dashboardPost: true }), limitBody, async (c) => {
  const target = adminPool(c);
  const id = parse(LeaseId, c.req.param("id"), "path.id");
  const body = parse(ViewerBody, await readJson(c), "body");
  const interactive = body.interactive ?? false;
  // A session cookie (no Bearer header: requireAdmin accepted the dashboard's cookie) opens view-only
  // viewers only: a copied cookie must not be worth driving every tenant's browsers.
  if (interactive && !/^Bearer\s/i.test(c.req.header("authorization") ?? "")) {
    throw unauthorized("an interactive viewer drives the lessee's page: mint it with 'Authorization: Bearer <admin token>'; the dashboard's session opens view-only viewers");
  }
  // The token names the pool's tenant, not the operator: the viewer routes find the pool object by it.
  const viewer = mintToken(target.tenant);
  const minted = unwrap(await target.call("mintViewer", "repeatable", (stub) => stub.mintViewer(id, viewer.hash, interactive)));
  c.header("Cache-Control", "no-store");
  return c.json({ viewerUrl: viewerUrl(c.req.url, target.pool, id, viewer.token), ...minted }, 201);
});

// Operators: the live dashboard. `?token=` is exchanged for a signed, expiring session cookie
// (reads only; session.ts), never the token itself, and dropped from the URL.
app.get("/dashboard", async (c, next) => {
  const token = c.req.query("token");
  if (token === undefined) return next();
  if (!isAdminToken(c.env, token)) throw unauthorized("the admin token is not valid");
  const session = await issueSession(c.env.ADMIN_TOKEN);
  const secure = new URL(c.req.url).protocol === "https:" ? "; Secure" : "";
  c.header("Set-Cookie", `${ADMIN_COOKIE}=${session}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${SESSION_SECONDS}${secure}`);
  c.header("Cache-Control", "no-store");
  return c.redirect("/dashboard", 303);
});
app.get("/dashboard", requireAdmin(), (c) => {
  c.header("Cache-Control", "no-store");
  c.header("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self'; frame-src 'self'");
  return c.html(DASHBOARD_HTML);
});
app.get("/dashboard/data", requireAdmin(), async (c) => {
  const data = await dashboardData(
    { listPools: (options) => registryCall(c.env, "listPools", "repeatable", (registry) => registry.listPools(options)) },
    (p) => poolCall(c.env, p.tenant, p.pool, "dashboard", "repeatable", (stub) => stub.dashboard()),
    () => accountView(c.env),
  );
  c.header("Cache-Control", "no-store");
  return c.json(data);
});
// Operators: every pool of every tenant.
app.get("/v1/admin/pools", requireAdmin(), async (c) => c.json(await poolSummaries(c as unknown as Ctx, undefined)));
// Operators: the account's capacity (limits, usage, breaker, tenants' shares).
admin.route("/capacity", capacity);
admin.route("/tenants", tenantsAdmin);
// An operator's request that names no admin route is a 404, not a fall through to the API-key routes' 401.
admin.all("*", (c) => notFound(c));
app.route("/v1/admin", admin);
app.route("/v1", v1);
