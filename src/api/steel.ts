/**
 * Steel's Sessions API (`/v1/sessions`), in Steel's shape, on top of leases:
 * a Steel session is a lease of the tenant's pool named by `namespace`
 * (`default` when absent), so there is one engine, and everything a lease
 * guarantees (deadlines, reaping, fairness) holds for sessions too. The
 * official `steel-sdk` pointed at the broker (`baseURL`, `steelAPIKey`, sent
 * as the `steel-api-key` header auth.ts accepts) works unchanged for what is
 * here.
 *
 * What the broker cannot honour yet is refused with `400` naming the field,
 * never ignored: a caller relying on a proxy, a solved CAPTCHA or a carried
 * session context must know it is not getting one.
 *
 * Create, list, retrieve, release, release all, and a live session's context
 * here; events and live details in steel-live.ts; profiles in profiles.ts.
 */
import { Hono } from "hono";
import { z } from "zod";
import type { LeaseView } from "../pool/views";
import { connectUrl, mintToken, viewerUrl } from "../token";
import type { AuthVariables } from "./auth";
import { poolCall } from "./calls";
import { ApiError } from "./errors";
import { PoolName } from "./schemas";
import { parse, readJson, unwrap } from "./validate";
import { BrowserState } from "../browser/state";
import { STEEL_REGIONS, type SteelRegion } from "../placement";
import { placedCall, placeNamespace } from "./placement";
import { applyPlan, grantWithPlan, planState, readLiveState } from "./prepare";

type SteelEnv = { Bindings: Env; Variables: AuthVariables };

/** A Steel session waits this long for a browser (Steel's create answers with a live session or an error). */
const CREATE_WAIT_SECONDS = 30;
/** Steel's default session timeout: 5 minutes. */
const DEFAULT_TIMEOUT_MS = 300_000;
/** The pool a session without a `namespace` lives in. */
export const DEFAULT_NAMESPACE = "default";

/** Fields of Steel's create that the broker cannot honour (yet), and why: each is answered 400. */
const UNSUPPORTED: Record<string, string> = {
  useProxy: "the broker runs no proxies",
  proxyUrl: "the broker runs no proxies",
  solveCaptcha: "the broker solves no CAPTCHAs",
  blockAds: "the broker blocks no ads",
  isSelenium: "the broker serves CDP (Puppeteer, Playwright), not Selenium",
  extensionIds: "the broker loads no extensions",
  credentials: "the broker keeps no credentials",
  stealthConfig: "the broker applies no stealth settings",
  deviceConfig: "the broker emulates no devices",
  debugConfig: "use the session's sessionViewerUrl (the live viewer)",
  optimizeBandwidth: "the broker blocks no resources",
  experimentalFeatures: "no experimental features",
  concurrency: "one browser per session",
  dimensions: "the platform launches every browser with its default window: set the page's viewport from your client (page.setViewport)",
  userAgent: "the platform launches every browser with its own user agent: set it per page from your client (page.setUserAgent)",
};

const CreateSession = z
  .object({
    sessionId: z.uuid().optional().describe("a client-chosen id (UUID); 409 if a session has it already"),
    timeout: z.number().int().min(1_000).max(3_600_000).optional().describe("milliseconds the session lives (the lease's TTL); default 300000"),
    namespace: PoolName.optional().describe("which of the tenant's pools; default 'default'"),
    headless: z.literal(true).optional().describe("always headless: false is refused"),
    sessionContext: BrowserState.optional().describe("cookies and localStorage set before the session is answered (sessionStorage and IndexedDB are refused unless empty)"),
    profileId: z.uuid().optional().describe("a profile of the tenant's whose saved state the session starts with"),
    persistProfile: z.boolean().optional().describe("save the browser's state to the profile (profileId, or a new one) when the session ends"),
    region: z.enum(STEEL_REGIONS as [SteelRegion, ...SteelRegion[]]).optional().describe("where the namespace's pool lives (its Durable Object's location hint): fixed when the pool is created"),
  })
  .strict();

export const SessionId = z.uuid();

export const steel = new Hono<SteelEnv>();

steel.post("/sessions", async (c) => {
  const raw = await readJson(c);
  if (raw && typeof raw === "object" && !Array.isArray(raw)) {
    for (const field of Object.keys(raw)) {
      const why = UNSUPPORTED[field];
      if (why) throw new ApiError(400, "invalid_request", `body.${field}: not supported by this broker (${why})`);
    }
  }
  const body = parse(CreateSession, raw, "body");
  const tenant = c.get("tenant");
  const pool = body.namespace ?? DEFAULT_NAMESPACE;
  const id = body.sessionId ?? crypto.randomUUID();
  if (body.sessionId) {
    const existing = await poolCall(c.env, tenant, pool, "getLease", "repeatable", (stub) => stub.getLease(id)).catch(() => undefined);
    if (existing?.ok) throw new ApiError(409, "session_exists", `a session with id ${id} exists already: choose another sessionId`);
  }
  const timeoutMs = body.timeout ?? DEFAULT_TIMEOUT_MS;
  const hint = body.region ? await placeNamespace(c.env, tenant, pool, body.region) : undefined;
  const plan = await planState(c.env, tenant, id, { context: body.sessionContext, profileId: body.profileId, persistProfile: body.persistProfile });
  const token = mintToken(tenant);
  const viewer = mintToken(tenant);
  const { lease } = await grantWithPlan(c.env, tenant, plan, () =>
    placedCall(c.env, tenant, pool, hint, "acquire", "repeatable", (stub) =>
      stub.acquire({
        leaseId: id,
        tenant,
        pool,
        owner: c.get("owner"),
        tokenHash: token.hash,
        viewerTokenHash: viewer.hash,
        ttlSeconds: Math.ceil(timeoutMs / 1000),
        waitSeconds: CREATE_WAIT_SECONDS,
        labels: { api: "steel" },
        ...(plan.persistProfile ? { persistProfile: plan.persistProfile } : {}),
      }),
    ),
  );
  if (lease.status === "active") await applyPlan(c.env, tenant, pool, lease, plan);
  return c.json(
    session(lease, pool, {
      websocketUrl: connectUrl(c.req.url, pool, lease.id, token.token),
      viewerUrl: viewerUrl(c.req.url, pool, lease.id, viewer.token),
    }),
    200,
  );
});

/** Steel's statuses of a lease's. */
function steelStatus(status: LeaseView["status"]): "live" | "released" | "failed" {
  return status === "active" || status === "waiting" ? "live" : status === "failed" ? "failed" : "released";
}

const ListSessions = z
  .object({
    cursorId: z.uuid().optional(),
    limit: z.coerce.number().int().min(1).max(100).default(50),
    status: z.enum(["live", "released", "failed"]).optional(),
    namespace: PoolName.optional(),
  })
  .strict();

// Newest first. Steel's cursor is the last session id of the previous page; an empty page ends the listing.
steel.get("/sessions", async (c) => {
  const query = parse(ListSessions, c.req.query(), "query");
  const pool = query.namespace ?? DEFAULT_NAMESPACE;
  const sessions: ReturnType<typeof session>[] = [];
  let afterLease = query.cursorId;
  let cursor: number | undefined;
  // Leases are filtered by Steel's status here (released covers released and expired), so a
  // page is filled from as many pool pages as it takes; a bounded number of them.
  for (let pages = 0; pages < 20 && sessions.length < query.limit; pages += 1) {
    const listed = await poolCall(c.env, c.get("tenant"), pool, "listLeases", "repeatable", (stub) =>
      stub.listLeases({ limit: 100, ...(cursor !== undefined ? { cursor } : afterLease !== undefined ? { afterLease } : {}) }),
    );
    if (!listed.ok) break; // no such pool: no sessions
    for (const lease of listed.value.leases) {
      if (sessions.length >= query.limit) break;
      if (!query.status || steelStatus(lease.status) === query.status) sessions.push(session(lease, pool, null));
    }
    if (listed.value.nextCursor === null) break;
    cursor = listed.value.nextCursor;
    afterLease = undefined;
  }
  return c.json({ sessions });
});

// The live browser's cookies and localStorage, as sessionContext takes them (src/browser/context.ts).
steel.get("/sessions/:id/context", async (c) => {
  const id = parse(SessionId, c.req.param("id"), "path.id");
  const { lease } = await findSession(c.env, c.get("tenant"), id, c.req.query("namespace"));
  if (lease.status !== "active" || !lease.sessionId) throw new ApiError(409, "lease_not_active", `session ${id} is ${steelStatus(lease.status)}: only a live session's browser has a context to read`);
  return c.json({ ...(await readLiveState(c.env, lease.sessionId)), sessionStorage: {}, indexedDB: {} });
});

steel.get("/sessions/:id", async (c) => {
  const id = parse(SessionId, c.req.param("id"), "path.id");
  const { lease, pool } = await findSession(c.env, c.get("tenant"), id, c.req.query("namespace"));
  return c.json(session(lease, pool, null));
});

steel.post("/sessions/release", async (c) => {
  const pool = parse(PoolName.optional(), c.req.query("namespace"), "query.namespace") ?? DEFAULT_NAMESPACE;
  const released = await poolCall(c.env, c.get("tenant"), pool, "releaseAll", "once", (stub) => stub.releaseAll(c.get("owner")));
  const count = released.ok ? released.value.released : 0;
  return c.json({ success: true, message: `released ${count} session(s)` });
});

steel.post("/sessions/:id/release", async (c) => {
  const id = parse(SessionId, c.req.param("id"), "path.id");
  const { pool } = await findSession(c.env, c.get("tenant"), id, c.req.query("namespace"));
  const released = unwrap(await poolCall(c.env, c.get("tenant"), pool, "release", "repeatable", (stub) => stub.release(id)));
  return c.json({ success: true, message: `session ${released.id} ${released.status}` });
});

/** The session's lease, in the pool `namespace` names (default 'default'); 404 if the tenant has none of that id. */
export async function findSession(env: Env, tenant: string, id: string, namespace: string | undefined): Promise<{ lease: LeaseView; pool: string }> {
  const pool = parse(PoolName.optional(), namespace, "query.namespace") ?? DEFAULT_NAMESPACE;
  const found = await poolCall(env, tenant, pool, "getLease", "repeatable", (stub) => stub.getLease(id));
  if (!found.ok) throw new ApiError(404, "not_found", `session ${id} not found`);
  return { lease: found.value, pool };
}

/** A lease, as Steel's `Session`. The URLs carry tokens, so they appear only in the answer that creates the session. */
function session(lease: LeaseView, pool: string, urls: { websocketUrl: string; viewerUrl: string } | null) {
  const created = Date.parse(lease.createdAt);
  const ended = lease.endedAt ? Date.parse(lease.endedAt) : Date.now();
  const timeout = lease.expiresAt && lease.grantedAt ? Date.parse(lease.expiresAt) - Date.parse(lease.grantedAt) : 0;
  return {
    id: lease.id,
    createdAt: lease.createdAt,
    status: steelStatus(lease.status),
    timeout,
    duration: Math.max(0, ended - created),
    websocketUrl: urls?.websocketUrl ?? "",
    sessionViewerUrl: urls?.viewerUrl ?? "",
    debugUrl: urls?.viewerUrl ?? "",
    // Not set by the broker: the browser's own default window.
    dimensions: { width: 800, height: 600 },
    eventCount: 0,
    creditsUsed: 0,
    proxyBytesUsed: 0,
    proxySource: null,
    optimizeBandwidth: {},
    headless: true,
    namespace: pool,
    ...(lease.persistProfile ? { persistProfile: true, profileId: lease.persistProfile } : {}),
  };
}
