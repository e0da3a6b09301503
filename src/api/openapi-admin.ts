/** Operators' routes on pools, tenants and keys in the OpenAPI document (admin token; docs/api.md, "Operators"). */
import { content, idParam, keyIdParam, pageParams, poolParam, problems, ref, tenantParam } from "./openapi-kit";

export function adminPaths(): Record<string, object> {
  return {
    "/v1/admin/pools/{tenant}/{pool}": {
      parameters: [tenantParam, poolParam],
      get: { summary: "Any tenant's pool (admin token)", responses: { "200": { description: "Pool", content: content(ref("Pool")) }, ...problems(400, 401, 404) } },
      put: {
        summary: "Resize or reconfigure an existing pool (admin token; never creates one)",
        requestBody: { content: content(ref("PoolConfig")) },
        responses: { "200": { description: "Pool", content: content(ref("Pool")) }, ...problems(400, 401, 403, 404, 409, 413, 415, 503) },
      },
      delete: {
        summary: "Delete any tenant's pool, as DELETE /v1/pools/{pool} does (admin token)",
        responses: { "200": { description: "Deleted", content: content(ref("DeletedPool")) }, ...problems(400, 401, 404, 409, 503) },
      },
    },
    "/v1/admin/pools/{tenant}/{pool}/drain": {
      parameters: [tenantParam, poolParam],
      post: {
        summary: "Stop granting: waiters and new acquires get 503 pool_draining with Retry-After; active leases run on (admin token)",
        responses: {
          "200": { description: "Waiters turned away, and the pool", content: content({ type: "object", properties: { waitersTurnedAway: { type: "integer" }, pool: ref("Pool") } }) },
          ...problems(400, 401, 404),
        },
      },
    },
    "/v1/admin/pools/{tenant}/{pool}/resume": {
      parameters: [tenantParam, poolParam],
      post: { summary: "Grant again after a drain (admin token)", responses: { "200": { description: "Pool", content: content(ref("Pool")) }, ...problems(400, 401, 404) } },
    },
    "/v1/admin/pools/{tenant}/{pool}/purge-idle": {
      parameters: [tenantParam, poolParam],
      post: {
        summary: "Close every idle session; the warm target launches fresh ones (admin token)",
        responses: {
          "200": { description: "Sessions closed, and the pool", content: content({ type: "object", properties: { closed: { type: "integer" }, pool: ref("Pool") } }) },
          ...problems(400, 401, 404),
        },
      },
    },
    "/v1/admin/pools/{tenant}/{pool}/check": {
      parameters: [tenantParam, poolParam],
      post: {
        summary:
          "Run the pool's full invariant check now and keep its report (GET /v1/pools/{pool} shows the last one in consistent, violations and checkedAt) (admin token)",
        responses: {
          "200": {
            description: "The check's report",
            content: content({
              type: "object",
              required: ["consistent", "violations", "checkedAt"],
              properties: { consistent: { type: "boolean" }, violations: { type: "array", items: { type: "string" } }, checkedAt: { type: "string", format: "date-time" } },
            }),
          },
          ...problems(400, 401, 404, 503),
        },
      },
    },
    "/v1/admin/pools/{tenant}/{pool}/leases/{id}": {
      parameters: [tenantParam, poolParam, idParam],
      delete: {
        summary: "Force-release a lease: it ends released/forced and its browser is closed, never reused (admin token)",
        responses: { "200": { description: "Lease", content: content(ref("Lease")) }, ...problems(400, 401, 404) },
      },
    },
    "/v1/admin/pools/{tenant}/{pool}/leases/{id}/events": {
      parameters: [tenantParam, poolParam, idParam],
      get: { summary: "Any lease's audit trail (admin token)", responses: { "200": { description: "Events" }, ...problems(400, 401, 404) } },
    },
    "/v1/admin/pools/{tenant}/{pool}/leases/{id}/viewer": {
      parameters: [tenantParam, poolParam, idParam],
      post: {
        summary: "Mint a viewer URL for any tenant's lease, as its tenant would (admin token; the dashboard's session cookie too, from the dashboard's own origin)",
        requestBody: { content: content(ref("ViewerBody")) },
        responses: { "201": { description: "The viewer URL (shown only here)", content: content(ref("MintedViewer")) }, ...problems(400, 401, 404, 409, 413, 415, 503) },
      },
    },
    "/v1/admin/tenants": {
      get: {
        summary: "Every tenant with keys, a quota or pools, by name, each with its quota and usage (admin token)",
        parameters: pageParams,
        responses: {
          "200": {
            description: "Tenants",
            content: content({ type: "object", properties: { tenants: { type: "array", items: ref("Tenant") }, nextCursor: { type: ["string", "null"] } } }),
          },
          ...problems(400, 401),
        },
      },
    },
    "/v1/admin/tenants/{tenant}": {
      parameters: [tenantParam],
      get: {
        summary: "A tenant's quota, usage and key counts (admin token)",
        responses: { "200": { description: "Tenant", content: content(ref("Tenant")) }, ...problems(400, 401) },
      },
      put: {
        summary: "Set a tenant's quota: maxPools, maxSessions, weight, recordingRetentionDays, profileRetentionDays (null: back to the deployment's default) (admin token)",
        requestBody: { content: content(ref("QuotaBody")) },
        responses: { "200": { description: "Tenant", content: content(ref("Tenant")) }, ...problems(400, 401, 413, 415) },
      },
    },
    "/v1/admin/tenants/{tenant}/keys": {
      parameters: [tenantParam],
      get: {
        summary: "A tenant's API keys, without their secrets (admin token)",
        responses: {
          "200": { description: "Keys", content: content({ type: "object", properties: { keys: { type: "array", items: ref("ApiKey") } } }) },
          ...problems(400, 401),
        },
      },
      post: {
        summary: "Create an API key; the key is in this response only (admin token)",
        requestBody: { content: content(ref("CreateKeyBody")) },
        responses: { "201": { description: "The new key, secret included", content: content(ref("IssuedKey")) }, ...problems(400, 401, 409, 413, 415) },
      },
    },
    "/v1/admin/tenants/{tenant}/keys/{id}": {
      parameters: [tenantParam, keyIdParam],
      get: { summary: "One API key, without its secret (admin token)", responses: { "200": { description: "Key", content: content(ref("ApiKey")) }, ...problems(400, 401, 404) } },
      delete: {
        summary: "Revoke an API key at once, both its secrets (idempotent; its leases run on) (admin token)",
        responses: { "200": { description: "Key", content: content(ref("ApiKey")) }, ...problems(400, 401, 404) },
      },
    },
    "/v1/admin/tenants/{tenant}/keys/{id}/rotate": {
      parameters: [tenantParam, keyIdParam],
      post: {
        summary: "A new secret for the key (same id and leases); the old one stays valid for graceSeconds (admin token)",
        requestBody: { content: content(ref("RotateKeyBody")) },
        responses: { "200": { description: "The key, new secret included", content: content(ref("IssuedKey")) }, ...problems(400, 401, 404, 409, 413, 415) },
      },
    },
  };
}
