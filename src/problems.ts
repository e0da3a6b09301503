/**
 * The error catalogue: every stable `code` the broker answers with, the
 * statuses it comes with and when, and what the caller should do about it.
 *
 * Neutral (imports nothing), because the Durable Objects produce codes too
 * (`Failure.code` in src/result.ts) and must not import from src/api. The
 * HTTP layer serves it as `GET /docs/errors` (one element per code, with the
 * code as its `id`), and every problem+json answer's `type` is the absolute
 * URL of its entry there: `https://<host>/docs/errors#<code>`. A code missing
 * from this table fails typecheck wherever it is used (`ErrorCode`).
 */

/** The statuses a code may come with. */
export type ProblemStatus = 400 | 401 | 403 | 404 | 409 | 413 | 415 | 426 | 429 | 500 | 502 | 503;

/**
 * What a caller should do next, in one word:
 * - `retry`: the same request may succeed later; wait for `Retry-After` (or back off) and send it again;
 * - `fix`: the request itself is wrong; change it before sending it again;
 * - `new-lease`: the lease cannot be used any more; acquire a new one;
 * - `report`: a bug in the broker; retrying may not help.
 */
export type NextStep = "retry" | "fix" | "new-lease" | "report";

export interface ProblemEntry {
  /** A short human title for the code. */
  title: string;
  /** Each status the code comes with, and when. */
  statuses: Partial<Record<ProblemStatus, string>>;
  /** What the caller should do next, in one word (see NextStep). */
  next: NextStep;
  /** What the caller should do, in a sentence or two. */
  todo: string;
}

export const PROBLEMS = {
  invalid_request: {
    title: "Invalid request",
    statuses: { 400: "A path parameter, query parameter, header or the body failed validation; `detail` names the field (e.g. `body.ttlSeconds`)." },
    next: "fix",
    todo: "Correct the field `detail` names and send the request again. Sent unchanged it fails the same way.",
  },
  unauthorized: {
    title: "Unauthorized",
    statuses: {
      401: "No API key, a malformed one, or one that is unknown or revoked (answered with `WWW-Authenticate: Bearer`). On the admin routes, a missing or wrong admin token. On the CDP socket, a missing, malformed or wrong connect token.",
    },
    next: "fix",
    todo: "Send `Authorization: Bearer <api key>` with an active key of your tenant. For a `connectUrl`, use the one from the `201` that created the lease (it is shown only there); repeating the `POST` with the same `Idempotency-Key` returns the lease with a fresh one.",
  },
  quota_exceeded: {
    title: "Tenant quota exceeded",
    statuses: { 403: "Creating or growing a pool would take the tenant over its `maxPools` or its `maxSessions` across pools; `detail` says which and by how much. Nothing was changed." },
    next: "fix",
    todo: "Delete or shrink another pool of the tenant, ask for a smaller `maxSessions`, or have an operator raise the tenant's quota (`PUT /v1/admin/tenants/{tenant}`).",
  },
  not_found: {
    title: "Not found",
    statuses: { 404: "No such pool, lease, key or route, or it belongs to another tenant (never `403`). An ended lease is kept 24 hours, then pruned." },
    next: "fix",
    todo: "Check the pool name, the lease id and which tenant your API key belongs to. Do not retry unchanged.",
  },
  lease_not_active: {
    title: "Lease not active",
    statuses: {
      409: "The lease has ended (released, expired, failed, or past its expiry): it cannot be renewed or connected to. Also answered to an acquire whose request was aborted before its answer left the Worker (the lease it got was released, `endReason: abandoned`).",
    },
    next: "new-lease",
    todo: "Acquire a new lease. `GET /v1/pools/{pool}/leases/{id}` says why the old one ended (`endReason`). An expired lease is never resurrected.",
  },
  recording_in_progress: {
    title: "Recording in progress",
    statuses: { 409: "The lease is still active (or waiting): its recording exists once the lease ends and the recorder has written it, a moment later." },
    next: "retry",
    todo: "End the lease (`DELETE /v1/pools/{pool}/leases/{id}`) or wait for it to end, then ask again. `GET /v1/pools/{pool}/leases/{id}` says whether it ended.",
  },
  idempotency_key_reused: {
    title: "Idempotency-Key reused",
    statuses: { 409: "The `Idempotency-Key` was used within the last 24 hours, by the same API key, with a different body." },
    next: "fix",
    todo: "Use a new `Idempotency-Key` for a new request, or resend the original body to get the original request's lease.",
  },
  too_many_connections: {
    title: "Too many CDP connections",
    statuses: { 409: "The lease already has 8 CDP sockets open." },
    next: "fix",
    todo: "Close one of the lease's other sockets (for instance `browser.disconnect()`), then connect again.",
  },
  too_many_keys: {
    title: "Too many API keys",
    statuses: { 409: "(admin) The tenant already has 50 active API keys." },
    next: "fix",
    todo: "Revoke a key the tenant no longer uses (`DELETE /v1/admin/tenants/{tenant}/keys/{id}`), then create the new one.",
  },
  key_revoked: {
    title: "Key revoked",
    statuses: { 409: "(admin) A revoked API key cannot be rotated." },
    next: "fix",
    todo: "Create a new key for the tenant (`POST /v1/admin/tenants/{tenant}/keys`).",
  },
  pool_busy: {
    title: "Pool busy",
    statuses: {
      409: "A `PUT` would shrink `maxSessions` below the sessions in use; a `DELETE` of a pool with a lease active or waiting; or an acquire or `PUT` while the pool is being deleted. Answered with `Retry-After`.",
    },
    next: "retry",
    todo: "Release the pool's leases (`DELETE /v1/pools/{pool}/leases`) or let them end, then retry after the `Retry-After` delay. During a deletion, the retried acquire or `PUT` creates the pool anew.",
  },
  payload_too_large: {
    title: "Payload too large",
    statuses: { 413: "The request body is over 16 KiB, or, for a body that may carry a browser state (an acquire, Steel's create, a profile), over 528 KiB; or the state itself is over 512 KiB as JSON." },
    next: "fix",
    todo: "Send a smaller body: fewer or shorter labels, only the fields you mean to set.",
  },
  unsupported_media_type: {
    title: "Unsupported media type",
    statuses: { 415: "The request has a body that is not declared as JSON." },
    next: "fix",
    todo: "Send the body as JSON with `content-type: application/json` (or send no body at all).",
  },
  upgrade_required: {
    title: "Upgrade required",
    statuses: { 426: "The CDP endpoint (a lease's `connectUrl`) was requested as a plain HTTP `GET`, without `Upgrade: websocket`." },
    next: "fix",
    todo: "Open the `connectUrl` with a WebSocket client: Puppeteer's `connect({ browserWSEndpoint })` or Playwright's `connectOverCDP()`.",
  },
  pool_exhausted: {
    title: "Pool exhausted",
    statuses: { 429: "No session became free within `waitSeconds`, or the pool's wait queue is full. `Retry-After` (at least 1 s) estimates the next lease expiry." },
    next: "retry",
    todo: "Retry after the `Retry-After` delay, or ask for a longer `waitSeconds` to queue. If it persists, the pool is too small for its load: raise `maxSessions` (within the tenant's quota) or release leases sooner.",
  },
  session_exists: {
    title: "Session exists",
    statuses: { 409: "`POST /v1/sessions` named a `sessionId` that a session of this tenant already has." },
    next: "fix",
    todo: "Choose another `sessionId` (a fresh UUID), or leave it out and the broker picks one.",
  },
  placement_fixed: {
    title: "Placement fixed",
    statuses: {
      409: "The request asks for a pool placed elsewhere than it is: a `PUT /v1/pools/{pool}` naming a `locationHint` other than the one the existing pool was created with (or one for a pool created without), or a Steel `POST /v1/sessions` whose `region` maps to another hint than its namespace's pool has. A pool's Durable Object never moves; `detail` names both places.",
    },
    next: "fix",
    todo: "Leave `locationHint` (or `region`) out to use the pool where it is, or create a pool (or namespace) of another name with the hint: a pool deleted and created again under the same name is the same object, placed already.",
  },
  profile_limit_reached: {
    title: "Profile limit reached",
    statuses: { 409: "Creating a profile (`POST /v1/profiles`, or a session's `persistProfile` without a `profileId`) would take the tenant over the 1,000 profiles it may keep. Nothing was created." },
    next: "fix",
    todo: "Delete profiles the tenant no longer uses (`DELETE /v1/profiles/{id}`), or save into an existing one (`profileId` with `persistProfile`), then try again.",
  },
  expected_wait_exceeded: {
    title: "Expected wait exceeds waitSeconds",
    statuses: {
      429: "Admission control: the pool is busy and a caller at this place in its queue can expect to wait (queue position × mean lease hold ÷ sessions) longer than the `waitSeconds` asked for, so it is told at once instead of queueing to time out. `Retry-After` is that estimate.",
    },
    next: "retry",
    todo: "Retry after `Retry-After`, or ask for a `waitSeconds` at least that long to queue. `GET /v1/pools/{pool}/pressure` shows the expected wait before you ask. If it persists, raise `maxSessions` (docs/capacity.md).",
  },
  rate_limited: {
    title: "Rate limited",
    statuses: { 429: "The API key made more requests than its rate limit allows (on the CDP route: the client address did). Answered with `Retry-After`." },
    next: "retry",
    todo: "Slow down and retry after the `Retry-After` delay. `GET /v1/tenant` shows the limit your keys are held to.",
  },
  browser_unavailable: {
    title: "Browser unavailable",
    statuses: {
      502: "Launching a browser for the lease failed.",
      503: "The launch timed out, the platform's browser limit was reached, or the pool restarted while the caller waited. Answered with `Retry-After`.",
    },
    next: "retry",
    todo: "Retry the acquire after the `Retry-After` delay (or after a backoff when there is none). If it keeps failing, the platform is refusing launches: operators, see the launch-failures runbook.",
  },
  context_failed: {
    title: "Browser state failed",
    statuses: {
      502: "The lease's browser did not take the requested state (`context`, Steel's `sessionContext`, or a profile's) within 15 s, so the lease was released rather than handed out without it; or a live browser's state could not be read (`GET …/context`).",
    },
    next: "retry",
    todo: "Retry: the next lease may get another browser. Check that cookies name a `domain` or `url` Chromium accepts and that localStorage keys are http(s) origins. If it persists, operators: see the pool's events for `context_failed`.",
  },
  browser_gone: {
    title: "Browser gone",
    statuses: { 502: "(CDP socket) The leased browser refused the connection and the platform confirms it is gone: the lease has ended (`failed`, `endReason: browser_gone`)." },
    next: "new-lease",
    todo: "Acquire a new lease and connect to its `connectUrl`.",
  },
  browser_busy: {
    title: "Browser busy",
    statuses: { 503: "(CDP socket) The leased browser refused the connection for about a second but still runs (a platform that accepts one connection per browser). The lease stays active. `Retry-After: 1`." },
    next: "retry",
    todo: "Close any other socket you hold to this lease, then connect again after the `Retry-After` delay.",
  },
  browser_unresponsive: {
    title: "Browser unresponsive",
    statuses: { 503: "Reading the leased browser over CDP (Steel's `GET /v1/sessions/{id}/live-details`: its pages) failed or took longer than its deadline, while the lease is still active. `Retry-After: 1`." },
    next: "retry",
    todo: "Retry after the `Retry-After` delay. If it persists, the browser may be gone: once the pool has confirmed that (its reconciliation with the platform), the lease ends `failed` (`browser_gone`) and the same request answers `409 lease_not_active`.",
  },
  unavailable: {
    title: "Service unavailable",
    statuses: {
      503: "A Durable Object the request needs could not be reached (a lost connection, a reset or deploy, a storage timeout, an internal error), or a pool's deletion could not unregister it (nothing was deleted; the pool stays drained). `Retry-After: 1`.",
    },
    next: "retry",
    todo: "Retry after the `Retry-After` delay. Reads, acquires (with the same lease, never a second one) and releases were already retried once by the Worker; any other write was made at most once and may or may not have happened, so read the state before repeating it if that matters.",
  },
  overloaded: {
    title: "Overloaded",
    statuses: { 503: "The Durable Object the request needs has too many requests queued. The Worker did not repeat the request. `Retry-After: 5`." },
    next: "retry",
    todo: "Retry after the `Retry-After` delay, and spread the load: fewer concurrent requests to the same pool.",
  },
  quota_unavailable: {
    title: "Quota unavailable",
    statuses: { 503: "The tenant's quota could not be checked while creating or growing a pool. Nothing was changed. Answered with `Retry-After`." },
    next: "retry",
    todo: "Retry after the `Retry-After` delay.",
  },
  pool_draining: {
    title: "Pool draining",
    statuses: { 503: "An operator drained the pool: it grants no leases, and callers that were waiting are turned away. Active leases run on. `Retry-After: 30`." },
    next: "retry",
    todo: "Retry after the `Retry-After` delay, or use another pool; the pool grants again once an operator resumes it.",
  },
  profiles_unavailable: {
    title: "Profiles unavailable",
    statuses: {
      503: "Profiles are encrypted at rest and the broker has no usable key: its `PROFILE_ENCRYPTION_KEY` secret is not set or is shorter than 32 characters (nothing is ever stored unencrypted); or one profile cannot be decrypted with the key set now (the secret changed since it was saved). Answered with `Retry-After`.",
    },
    next: "retry",
    todo: "Retry after the `Retry-After` delay once the operator has set `PROFILE_ENCRYPTION_KEY` (`wrangler secret put`). A profile saved under an earlier key stays unreadable: delete it and save it again. Leases and sessions that use no profile are not affected.",
  },
  internal_error: {
    title: "Internal error",
    statuses: { 500: "A bug in the Worker. It is logged with its stack (never shown in the answer). A failed Durable Object call is a `503`, never a `500`." },
    next: "report",
    todo: "Report it with the time and the request (method, path); the broker's log has the details. Retrying may not help.",
  },
} as const satisfies Record<string, ProblemEntry>;

/** Every code the broker answers with; a code outside the catalogue fails typecheck. */
export type ErrorCode = keyof typeof PROBLEMS;

/** The catalogue's codes, in its order. */
export const ERROR_CODES = Object.keys(PROBLEMS) as ErrorCode[];

/** The path of the error catalogue the broker serves. */
export const ERRORS_PATH = "/docs/errors";

/** The problem `type` for `code`: the absolute URL of its catalogue entry on the broker that answered (`origin`, e.g. `https://broker.example.com`). */
export function problemType(origin: string, code: ErrorCode): string {
  return `${origin}${ERRORS_PATH}#${code}`;
}

/** What each next step means, as the catalogue page shows it. */
export const NEXT_STEPS: Record<NextStep, string> = {
  retry: "retry the same request later (after Retry-After)",
  fix: "change the request before sending it again",
  "new-lease": "acquire a new lease",
  report: "a bug: report it",
};
