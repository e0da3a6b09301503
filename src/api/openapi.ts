/**
 * The OpenAPI 3.1 document, generated from the same zod schemas that validate
 * requests (zod's JSON Schema output is JSON Schema 2020-12, which OpenAPI 3.1
 * uses natively), so the contract cannot drift from the code.
 */
import { z } from "zod";
import { BrowserState } from "../browser/state";
import { content, idParam, json, pageParams, poolParam, problems, ref } from "./openapi-kit";
import { adminPaths } from "./openapi-admin";
import { profilePaths } from "./openapi-profiles";
import { steelPaths } from "./openapi-steel";
import { ERRORS_PATH, PROBLEMS } from "../problems";
import {
  AcquireBody,
  ApiKey,
  Capacity,
  CapacityBody,
  CreatedLease,
  CreateKeyBody,
  DeletedPool,
  IssuedKey,
  Lease,
  LeaseStatus,
  Pool,
  PoolConfigBody,
  Pressure,
  Problem,
  QuotaBody,
  MintedViewer,
  Recording,
  RenewBody,
  RotateKeyBody,
  Tenant,
  TenantSelf,
  ViewerBody,
} from "./schemas";


/** A page of pool summaries; `counts`, `capacity` and `consistent` are those of GET /v1/pools/{pool}. */
function poolPage(withTenant: boolean) {
  const summary = {
    type: "object",
    properties: {
      ...(withTenant ? { tenant: { type: "string" } } : {}),
      pool: { type: "string" },
      createdAt: { type: "string", format: "date-time" },
      counts: { type: ["object", "null"] },
      capacity: { type: ["object", "null"] },
      consistent: { type: ["boolean", "null"] },
    },
  };
  return { type: "object", properties: { pools: { type: "array", items: summary }, nextCursor: { type: ["string", "null"] } } };
}

let cached: object | undefined;

export function openApiDocument(): object {
  cached ??= withObjectFailures(withRateLimit({
    openapi: "3.1.0",
    info: {
      title: "Browser session broker",
      version: "1.0.0",
      description: "Leases Cloudflare Browser Rendering sessions from per-pool Durable Objects.",
    },
    components: {
      securitySchemes: { apiKey: { type: "http", scheme: "bearer" } },
      schemas: {
        Lease: json(Lease),
        BrowserState: json(BrowserState),
        CreatedLease: json(CreatedLease),
        Pool: json(Pool),
        Pressure: json(Pressure),
        Problem: withCatalogue(json(Problem)),
        AcquireBody: json(AcquireBody, "input"),
        RenewBody: json(RenewBody, "input"),
        ViewerBody: json(ViewerBody, "input"),
        MintedViewer: json(MintedViewer),
        PoolConfig: json(PoolConfigBody, "input"),
        DeletedPool: json(DeletedPool),
        Tenant: json(Tenant),
        TenantSelf: json(TenantSelf),
        QuotaBody: json(QuotaBody, "input"),
        ApiKey: json(ApiKey),
        IssuedKey: json(IssuedKey),
        CreateKeyBody: json(CreateKeyBody, "input"),
        RotateKeyBody: json(RotateKeyBody, "input"),
        Recording: json(Recording),
        Capacity: json(Capacity),
        CapacityBody: json(CapacityBody, "input"),
      },
    },
    security: [{ apiKey: [] }],
    paths: {
      "/healthz": { get: { summary: "Liveness", security: [], responses: { "200": { description: "OK" } } } },
      "/openapi.json": { get: { summary: "This document", security: [], responses: { "200": { description: "OpenAPI 3.1" } } } },
      "/docs": { get: { summary: "This document rendered as an HTML reference", security: [], responses: { "200": { description: "text/html" } } } },
      [ERRORS_PATH]: {
        get: {
          summary: "The error catalogue, HTML: every problem code with its statuses, what it means and what to do; each problem's type is the URL of its entry here",
          security: [],
          responses: { "200": { description: "text/html" } },
        },
      },
      "/v1/pools/{pool}": {
        parameters: [poolParam],
        get: { summary: "Pool config, counts and consistency", responses: { "200": { description: "Pool", content: content(ref("Pool")) }, ...problems(400, 401, 404) } },
        put: {
          summary: "Set pool config (partial allowed)",
          requestBody: { content: content(ref("PoolConfig")) },
          responses: { "200": { description: "Pool", content: content(ref("Pool")) }, ...problems(400, 401, 403, 409, 413, 415, 503) },
        },
        delete: {
          summary: "Delete the pool (refused with 409 pool_busy while a lease is active or waiting): its idle browsers are closed and its quota freed",
          responses: { "200": { description: "Deleted", content: content(ref("DeletedPool")) }, ...problems(400, 401, 404, 409, 503) },
        },
      },
      "/v1/pools/{pool}/pressure": {
        parameters: [poolParam],
        get: {
          summary: "How loaded the pool is: running, queued, available, expected wait, breaker, account headroom (cheap: no scan, safe to poll)",
          responses: { "200": { description: "Pressure", content: content(ref("Pressure")) }, ...problems(400, 401, 404, 503) },
        },
      },
      "/v1/pools/{pool}/leases": {
        parameters: [poolParam],
        post: {
          summary: "Acquire a lease",
          parameters: [{ name: "Idempotency-Key", in: "header", required: false, schema: { type: "string", maxLength: 255 } }],
          requestBody: { content: content(ref("AcquireBody")) },
          responses: {
            "201": { description: "The lease, with its connectUrl (shown only here)", content: content(ref("CreatedLease")) },
            ...problems(400, 401, 403, 409, 413, 415, 429, 502, 503),
          },
        },
        get: {
          summary: "List leases",
          parameters: [
            { name: "status", in: "query", required: false, schema: json(LeaseStatus) },
            { name: "limit", in: "query", required: false, schema: { type: "integer", minimum: 1, maximum: 100, default: 50 } },
            { name: "cursor", in: "query", required: false, schema: { type: "integer", minimum: 1 } },
          ],
          responses: {
            "200": {
              description: "Leases, newest first",
              content: content({ type: "object", properties: { leases: { type: "array", items: ref("Lease") }, nextCursor: { type: ["integer", "null"] } } }),
            },
            ...problems(400, 401, 404),
          },
        },
        delete: {
          summary: "Release all of the caller's active leases in the pool (those acquired with the same API key)",
          responses: {
            "200": { description: "Count", content: content({ type: "object", properties: { released: { type: "integer" } } }) },
            ...problems(400, 401, 404),
          },
        },
      },
      "/v1/pools/{pool}/leases/{id}": {
        parameters: [poolParam, idParam],
        get: { summary: "Read a lease", responses: { "200": { description: "Lease", content: content(ref("Lease")) }, ...problems(400, 401, 404) } },
        delete: {
          summary: "Release a lease (idempotent)",
          responses: { "200": { description: "Lease", content: content(ref("Lease")) }, ...problems(400, 401, 404) },
        },
      },
      "/v1/pools": {
        get: {
          summary: "The caller's pools, with their counts and health",
          parameters: pageParams,
          responses: { "200": { description: "Pools, by name", content: content(poolPage(false)) }, ...problems(400, 401) },
        },
      },
      "/v1/admin/pools": {
        get: {
          summary: "Every pool of every tenant, with counts and health (admin token)",
          parameters: pageParams,
          responses: { "200": { description: "Pools, by tenant and name", content: content(poolPage(true)) }, ...problems(400, 401) },
        },
      },
      "/metrics": {
        get: {
          summary: "Prometheus text exposition of every pool: gauges, counters and histograms prefixed broker_ (admin token)",
          responses: { "200": { description: "text/plain; version=0.0.4", content: { "text/plain": { schema: { type: "string" } } } }, ...problems(401) },
        },
      },
      ...adminPaths(),
      "/v1/tenant": {
        get: {
          summary: "The caller's tenant: its quota (pools, sessions across pools), its usage, and the per-key rate limit",
          responses: {
            "200": { description: "Tenant", content: content(ref("TenantSelf")) },
            ...problems(401),
          },
        },
      },
      "/dashboard": {
        get: {
          summary: "The operators' live dashboard, HTML (admin token; ?token= once sets a read-only cookie)",
          parameters: [{ name: "token", in: "query", required: false, schema: { type: "string" } }],
          responses: { "200": { description: "text/html" }, "303": { description: "Cookie set; on to /dashboard" }, ...problems(401) },
        },
      },
      "/dashboard/data": {
        get: { summary: "What the dashboard shows, JSON (admin token or its cookie)", responses: { "200": { description: "Pools" }, ...problems(401) } },
      },
      "/v1/admin/capacity": {
        get: {
          summary:
            "The account's capacity: the limits launches are granted within (configured, overridden, reported by the platform), permits in use, the launch bucket, the breaker, and each active tenant's weight and fair share (admin token)",
          responses: { "200": { description: "Capacity", content: content(ref("Capacity")) }, ...problems(401) },
        },
        put: {
          summary: "Override the account's limits: maxConcurrentSessions, launchesPerSecond (null: back to the Worker var) (admin token)",
          requestBody: { content: content(ref("CapacityBody")) },
          responses: { "200": { description: "Capacity", content: content(ref("Capacity")) }, ...problems(400, 401, 413, 415) },
        },
      },
      "/v1/admin/registry": {
        get: {
          summary: "The account's session registry: sessions tracked, orphaned browsers closed (admin token)",
          responses: {
            "200": {
              description: "Registry stats",
              content: content({
                type: "object",
                properties: { tracked: { type: "integer" }, orphansClosedTotal: { type: "integer" }, lastSweep: { type: ["object", "null"] } },
              }),
            },
            ...problems(401),
          },
        },
      },
      "/v1/pools/{pool}/leases/{id}/cdp": {
        parameters: [
          poolParam,
          idParam,
          { name: "token", in: "query", required: true, schema: { type: "string" }, description: "The lease's connect token (part of connectUrl)" },
        ],
        get: {
          summary: "CDP WebSocket to the leased browser (the lease's connectUrl)",
          description:
            "Authenticated by the connect token, not an API key. Answers 101 and pipes CDP both ways until the client closes or the lease ends (close code 4001). " +
            "A lease no client connects to within the pool's connectWithinSeconds ends (endReason not_connected). If the browser refuses the connection: " +
            "502 browser_gone when the platform confirms it is gone (the lease has ended, endReason browser_gone), 503 browser_busy (Retry-After) when it still runs.",
          security: [],
          responses: { "101": { description: "Switching Protocols: CDP over WebSocket" }, ...problems(400, 401, 404, 409, 426, 429, 502, 503) },
        },
      },
      "/v1/pools/{pool}/leases/{id}/viewer": {
        parameters: [poolParam, idParam],
        get: {
          summary: "The live viewer page of a lease (its viewerUrl)",
          description:
            "Authenticated by a viewer token (?token=…), not an API key: a person opens it in a browser, or embeds it in an <iframe>. " +
            "Shows the leased browser's visible tab live (CDP screencast over the broker's own connection), the tab list and URL; an interactive viewer " +
            "forwards mouse, keyboard and scroll. 401 for a forged token, 404 for an unknown lease or another tenant's, 409 once the lease has ended.",
          security: [],
          parameters: [{ name: "token", in: "query", required: true, schema: { type: "string" }, description: "The viewer token (part of viewerUrl)" }],
          responses: { "200": { description: "text/html" }, ...problems(400, 401, 404, 409, 429, 503) },
        },
        post: {
          summary: "Mint another viewer URL for the lease (interactive: it may drive the page)",
          requestBody: { content: content(ref("ViewerBody")) },
          responses: { "201": { description: "The viewer URL (shown only here)", content: content(ref("MintedViewer")) }, ...problems(400, 401, 404, 409, 413, 415, 503) },
        },
      },
      "/v1/pools/{pool}/leases/{id}/viewer/stream": {
        parameters: [
          poolParam,
          idParam,
          { name: "token", in: "query", required: true, schema: { type: "string" }, description: "The viewer token" },
        ],
        get: {
          summary: "The viewer page's WebSocket: JSON messages (frame, tabs, state) down, ack, switch and (interactive) input up",
          description: "Closed with code 4001 within a moment of the lease ending. A lease may have 4 viewers open at once (409 too_many_connections).",
          security: [],
          responses: { "101": { description: "Switching Protocols" }, ...problems(400, 401, 404, 409, 426, 429, 503) },
        },
      },
      ...steelPaths(),
      ...profilePaths(),
      "/v1/pools/{pool}/leases/{id}/next": {
        parameters: [poolParam, idParam],
        post: {
          summary: "Releases the lease (idempotent, as DELETE) and acquires the caller's next one in the same pool, in one request: for job loops",
          description:
            "The body is an acquire's, validated before anything is released. What fails after the release (no browser in time, a missing profile) leaves the old lease released. Send an Idempotency-Key to retry safely: the retry answers the same next lease.",
          parameters: [{ name: "Idempotency-Key", in: "header", required: false, schema: { type: "string", maxLength: 255 } }],
          requestBody: { content: content(json(AcquireBody, "input")) },
          responses: { "201": { description: "The next lease", content: content(ref("CreatedLease")) }, ...problems(400, 401, 404, 409, 413, 415, 429, 502, 503) },
        },
      },
      "/v1/pools/{pool}/leases/{id}/context": {
        parameters: [poolParam, idParam],
        get: {
          summary: "The active lease's browser state now: its default context's cookies and localStorage (origins its tabs show and its cookies' domains), in the shape `context` on acquire takes",
          responses: { "200": { description: "State", content: content(ref("BrowserState")) }, ...problems(400, 401, 404, 409, 502, 503) },
        },
      },
      "/v1/pools/{pool}/leases/{id}/events": {
        parameters: [poolParam, idParam],
        get: {
          summary: "A lease's audit trail from the pool's journal, oldest first",
          responses: {
            "200": {
              description: "Events",
              content: content({
                type: "object",
                properties: {
                  lease: { type: "string" },
                  events: {
                    type: "array",
                    items: {
                      type: "object",
                      properties: { at: { type: "string", format: "date-time" }, event: { type: "string" }, sessionRow: { type: "integer" }, detail: { type: "object" } },
                    },
                  },
                },
              }),
            },
            ...problems(400, 401, 404),
          },
        },
      },
      "/v1/pools/{pool}/leases/{id}/recording": {
        parameters: [poolParam, idParam],
        get: {
          summary: "Replay a recorded lease (record: true) after it ended: an HTML page with play/pause and a timeline marked with the lease's journal events",
          description:
            "The recording exists once the lease has ended and its recorder wrote the manifest, and is deleted after the tenant's recordingRetentionDays " +
            "(default 7) or with its pool. Send `Accept: application/json` for the manifest and the frames in order instead of the page. " +
            "404 not_found when there is no recording (never recorded, still being finalized, or past its retention; the detail says which it can tell); " +
            "409 recording_in_progress while the lease runs.",
          responses: {
            "200": {
              description: "text/html: the replay page; application/json: the manifest and frames",
              content: { "text/html": { schema: { type: "string" } }, ...content(ref("Recording")) },
            },
            ...problems(400, 401, 404, 409),
          },
        },
      },
      "/v1/pools/{pool}/leases/{id}/renew": {
        parameters: [poolParam, idParam],
        post: {
          summary: "Extend an active lease",
          requestBody: { content: content(ref("RenewBody")) },
          responses: { "200": { description: "Lease", content: content(ref("Lease")) }, ...problems(400, 401, 404, 409, 413, 415) },
        },
      },
    },
  }));
  return cached;
}

/** Every route that takes an API key counts against the key's rate limit, so each may answer 429 rate_limited. */
function withRateLimit<D extends { paths: Record<string, Record<string, unknown>> }>(doc: D): D {
  for (const [path, operations] of Object.entries(doc.paths)) {
    if (!path.startsWith("/v1/") || path.startsWith("/v1/admin/") || path.endsWith("/cdp")) continue;
    for (const operation of Object.values(operations)) {
      const responses = (operation as { responses?: Record<string, unknown> }).responses;
      if (responses && !responses["429"]) Object.assign(responses, problems(429));
    }
  }
  return doc;
}

/** Paths served without calling any Durable Object. */
const NO_OBJECT = new Set(["/healthz", "/openapi.json", "/docs", ERRORS_PATH, "/dashboard"]);

/** Every other route calls a Durable Object, so each may answer 503 overloaded or unavailable (src/api/calls.ts). */
function withObjectFailures<D extends { paths: Record<string, Record<string, unknown>> }>(doc: D): D {
  for (const [path, operations] of Object.entries(doc.paths)) {
    if (NO_OBJECT.has(path)) continue;
    for (const operation of Object.values(operations)) {
      const responses = (operation as { responses?: Record<string, unknown> }).responses;
      if (responses && !responses["503"]) Object.assign(responses, problems(503));
    }
  }
  return doc;
}

/** The Problem schema with the catalogue's codes: `code` is one of them (each described), `type` the URL of its entry. */
function withCatalogue(schema: Record<string, any>): Record<string, unknown> {
  const properties = { ...(schema.properties as Record<string, unknown>) };
  properties.type = {
    type: "string",
    format: "uri",
    description: `The absolute URL of the code's entry in the broker's error catalogue: https://<host>${ERRORS_PATH}#<code>`,
  };
  properties.code = {
    type: "string",
    description: `Stable machine code; see ${ERRORS_PATH}`,
    oneOf: Object.entries(PROBLEMS).map(([code, entry]) => ({
      const: code,
      title: entry.title,
      description: `${Object.entries(entry.statuses).map(([status, when]) => `${status}: ${when}`).join(" ")} What to do (${entry.next}): ${entry.todo}`,
    })),
  };
  return { ...schema, properties };
}
