/**
 * Zod schemas for everything the API reads and writes. Handlers validate with
 * these, the OpenAPI document (openapi.ts) is generated from these, and the
 * request types are inferred from them.
 */
import { z } from "zod";
import { BrowserState } from "../browser/state";
import { HARD_MAX_SESSIONS, MAX_TTL_LIMIT_SECONDS, PoolConfigPatch } from "../pool/config";
import { MAX_ROTATION_GRACE_SECONDS } from "../tenant/object";
import { MAX_PROFILE_RETENTION_DAYS, MAX_RECORDING_RETENTION_DAYS, MAX_WEIGHT } from "../tenant/quota";

/** The largest request body accepted (labels included). */
export const MAX_BODY_BYTES = 16 * 1024;
export const MAX_WAIT_SECONDS = 60;
export const MAX_LABELS = 16;

export const PoolName = z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, "pool names are 1-63 of a-z, 0-9 and '-', not starting with '-'");
export const LeaseId = z.uuid("lease ids are UUIDs");

export const Labels = z
  .record(
    z.string().regex(/^[A-Za-z0-9_.\/-]{1,63}$/, "label keys are 1-63 of A-Z, a-z, 0-9, '_', '.', '/', '-'"),
    z.string().max(256, "label values are at most 256 characters"),
  )
  .refine((labels) => Object.keys(labels).length <= MAX_LABELS, `at most ${MAX_LABELS} labels`);

const ProfileId = z.uuid("profile ids are UUIDs");

const Ttl = z.number().int().min(1).max(MAX_TTL_LIMIT_SECONDS);

export const AcquireBody = z
  .object({
    ttlSeconds: Ttl.optional(),
    waitSeconds: z.number().int().min(0).max(MAX_WAIT_SECONDS).optional(),
    priority: z
      .enum(["high", "normal", "low"])
      .optional()
      .describe("queue order while the pool is busy (default normal): first come, first served within a priority; a low caller that waited 30 s outranks a normal one arriving now, so none starves"),
    labels: Labels.optional(),
    record: z
      .boolean()
      .optional()
      .describe("keep the lease's screencast (about 2 frames a second, bounded in size) for replay at GET …/leases/{id}/recording after it ends; default the pool's `record`"),
    context: BrowserState.optional().describe(
      "cookies and localStorage (per origin) set in the browser before the lease is granted, so the first page sees them (Steel's sessionContext shape; sessionStorage and IndexedDB are not restored)",
    ),
    profileId: ProfileId.optional().describe("a profile of the tenant's (/v1/profiles) whose saved state is applied before the lease is granted; applied before `context`, which wins where they overlap"),
    persistProfile: z
      .boolean()
      .optional()
      .describe("save the browser's cookies and localStorage to the profile when the lease ends (however it ends, while the browser lives): to `profileId`, or to a new profile whose id the answer carries"),
  })
  .strict();

/** Profile ids: UUIDs (Steel's). */
export const ProfileIdSchema = ProfileId;

export const RenewBody = z.object({ ttlSeconds: Ttl.optional() }).strict();

export const ViewerBody = z
  .object({ interactive: z.boolean().optional().describe("whether the viewer may drive the page (mouse, keyboard, scroll); default false, view only") })
  .strict();

export const MintedViewer = z.object({
  viewerUrl: z.string().describe("the viewer page, with its own token; works until the lease ends"),
  interactive: z.boolean(),
  expiresAt: z.iso.datetime().nullable().describe("the lease's expiry as it stands (the viewer ends with the lease; a renewal extends both); null while the lease waits"),
});

export const LeaseStatus = z.enum(["waiting", "active", "released", "expired", "failed"]);

export const ListQuery = z
  .object({
    status: LeaseStatus.optional(),
    limit: z.coerce.number().int().min(1).max(100).default(50),
    cursor: z.coerce.number().int().min(1).optional(),
  })
  .strict();

export const PoolListQuery = z
  .object({
    limit: z.coerce.number().int().min(1).max(100).default(50),
    cursor: z.string().max(300).optional(),
  })
  .strict();

/** Tenant names as they appear in API_KEYS (and in admin paths). */
export const TenantName = z.string().regex(/^[A-Za-z0-9_.-]{1,100}$/, "tenant names are 1-100 of A-Z, a-z, 0-9, '_', '.', '-'");

export const IdempotencyKey = z.string().regex(/^[\x21-\x7e]{1,255}$/, "Idempotency-Key is 1-255 visible ASCII characters");

export const PoolConfigBody = PoolConfigPatch;

export const Lease = z.object({
  id: z.string(),
  pool: z.string(),
  status: LeaseStatus,
  sessionId: z.string().nullable(),
  createdAt: z.iso.datetime(),
  grantedAt: z.iso.datetime().optional(),
  expiresAt: z.iso.datetime().nullable(),
  endedAt: z.iso.datetime().optional(),
  endReason: z
    .string()
    .optional()
    .describe(
      "why it ended: released, expired, forced (an operator), not_connected (no client connected within connectWithinSeconds), " +
        "abandoned (its caller was gone before the answer), browser_gone, cancelled, wait_timeout, launch_failed, launch_timeout, object_restarted, drained",
    ),
  labels: z.record(z.string(), z.string()),
  persistProfile: z.uuid().optional().describe("the profile the browser's cookies and localStorage are saved to when the lease ends (persistProfile on acquire)"),
});

/** The response that creates a lease: the only one that carries its connect URL (the token is stored hashed). */
export const CreatedLease = Lease.extend({
  connectUrl: z.string().describe("ws(s):// CDP endpoint with the lease's connect token; shown once"),
  viewerUrl: z.string().describe("a page that shows the leased browser live (view only), with its own token; shown once; ends with the lease. POST …/leases/{id}/viewer mints more, interactive ones too"),
});

const Count = z.number().int().min(0);

const Breaker = z
  .object({
    state: z.enum(["closed", "open", "half_open"]),
    retryAfterSeconds: z.number().int().nullable().describe("while open: seconds until a probe launch is let through"),
    streak: Count.describe("launches that failed in a row"),
  })
  .describe("the pool's circuit breaker: open after breakerThreshold launches fail in a row; acquires that need a launch then get 503 browser_unavailable");

const AccountSide = z
  .object({
    governor: z.enum(["ok", "unreachable", "unknown"]).describe("whether the account's capacity governor answered the pool's last call (unreachable: the pool launches within its local budget, GOVERNOR_FALLBACK_SESSIONS)"),
    unreachableSince: z.iso.datetime().nullable(),
    limit: z.number().int().nullable().describe("the account's concurrent-browser limit, as the governor last said"),
    used: z.number().int().nullable(),
    headroom: z.number().int().nullable(),
    breaker: z.enum(["closed", "open", "half_open"]).nullable().describe("the account's circuit breaker"),
  })
  .describe("the account's capacity, as this pool last heard it from the governor");

export const Pressure = z.object({
  pool: z.string(),
  running: Count.describe("browsers the pool holds: launching, idle, leased, being reset or closed"),
  leased: Count,
  idle: Count,
  queued: Count,
  max: Count.describe("maxSessions"),
  available: Count.describe("sessions a caller could get without queueing: idle ones, plus free capacity to launch into (0 while launches are paused)"),
  expectedWaitSeconds: z.number().nullable().describe("what a new caller of normal priority can expect to wait; null until the pool has seen enough leases"),
  warmTarget: Count.describe("idle sessions the pool keeps ready (minIdle, or from demand with warmFromDemand)"),
  breaker: Breaker,
  launchesPausedUntil: z.iso.datetime().nullable().describe("while launches are paused (the platform refused one, or the account had no permit)"),
  draining: z.boolean(),
  account: AccountSide,
});

export const Pool = z.object({
  pool: z.string(),
  config: z.object({
    maxSessions: z.number().int().min(1).max(HARD_MAX_SESSIONS),
    minIdle: z.number().int(),
    maxWaiters: z.number().int(),
    defaultTtlSeconds: z.number().int(),
    maxTtlSeconds: z.number().int(),
    reuse: z.boolean(),
    launchTimeoutSeconds: z.number().int(),
    idleTimeoutSeconds: z.number().int(),
    connectWithinSeconds: z.number().int(),
    maxSessionUses: z.number().int(),
    maxSessionAgeSeconds: z.number().int(),
    admission: z.boolean(),
    warmFromDemand: z.boolean(),
    breakerThreshold: z.number().int(),
    record: z.boolean(),
  }),
  counts: z.object({ launching: Count, idle: Count, leased: Count, resetting: Count, closing: Count, waiting: Count }),
  breaker: Breaker,
  account: AccountSide,
  capacity: z.object({ max: Count, inUse: Count, available: Count }),
  draining: z.boolean(),
  consistent: z.boolean(),
  violations: z.array(z.string()),
  checkedAt: z.iso.datetime().nullable().describe("when the full invariant check that `consistent` and `violations` report last ran (the alarm runs it; operators can run it on demand)"),
  createdAt: z.iso.datetime(),
  lastReconciledAt: z.iso.datetime().nullable(),
  lastReconcile: z
    .object({
      vanished: Count.describe("tracked sessions confirmed gone (missing from two lists, or a probe said so): capacity freed"),
      suspect: Count.describe("tracked sessions missing from this list for the first time: still holding their slot, being probed"),
      reclosed: Count,
      unknown: Count,
      untrusted: z.boolean().describe("the list was empty while sessions were tracked: nothing was judged from it"),
    })
    .nullable(),
  reconciledTotal: z.object({ vanished: Count, reclosed: Count }),
});

export const DeletedPool = z.object({
  pool: z.string(),
  deleted: z.literal(true),
  closedSessions: Count.describe("idle browsers closed by the deletion"),
});

export const Problem = z.object({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  detail: z.string(),
  code: z.string(),
  instance: z.string().optional(),
});

// ---- tenants and their keys (admin API) ------------------------------------------

export const MAX_TENANT_POOLS = 10_000;
export const MAX_TENANT_SESSIONS = 100_000;

export const KeyId = z.string().regex(/^key_[0-9a-f]{16}$/, "key ids look like key_0123456789abcdef");

export const CreateKeyBody = z
  .object({ name: z.string().regex(/^[\x20-\x7e]{1,100}$/, "key names are 1-100 printable ASCII characters").optional() })
  .strict();

export const RotateKeyBody = z
  .object({
    graceSeconds: z.number().int().min(0).max(MAX_ROTATION_GRACE_SECONDS).optional().describe("how long the previous secret stays valid (default 0)"),
  })
  .strict();

/** A number sets the tenant's own quota; null returns it to the deployment's default. */
export const QuotaBody = z
  .object({
    maxPools: z.number().int().min(1).max(MAX_TENANT_POOLS).nullable(),
    maxSessions: z.number().int().min(1).max(MAX_TENANT_SESSIONS).nullable(),
    weight: z
      .number()
      .gt(0)
      .max(MAX_WEIGHT)
      .nullable()
      .describe("the tenant's share of the account's browsers when tenants compete, relative to other tenants' weights (default 1)"),
    recordingRetentionDays: z
      .number()
      .int()
      .min(1)
      .max(MAX_RECORDING_RETENTION_DAYS)
      .nullable()
      .describe("days a recorded lease's recording is kept after the lease ends (default 7); applies to recordings that end from now on"),
    profileRetentionDays: z
      .number()
      .int()
      .min(1)
      .max(MAX_PROFILE_RETENTION_DAYS)
      .nullable()
      .describe("days a saved profile is kept after its last write (default 30), and the most a profile's own retentionDays may be; applies from each profile's next write"),
  })
  .partial()
  .strict();

const Instant = z.iso.datetime().nullable();
export const ApiKey = z.object({
  id: z.string(),
  tenant: z.string(),
  name: z.string(),
  hint: z.string().describe("the key's first characters, to tell keys apart"),
  status: z.enum(["active", "revoked"]),
  createdAt: z.iso.datetime(),
  rotatedAt: Instant,
  previousValidUntil: Instant.describe("until when the secret before the last rotation is accepted"),
  revokedAt: Instant,
  lastUsedAt: Instant.describe("to the minute"),
});

export const IssuedKey = ApiKey.extend({ key: z.string().describe("the API key; shown only in this response, stored as a hash") });

export const Tenant = z.object({
  tenant: z.string(),
  quota: z.object({
    maxPools: Count,
    maxSessions: Count,
    weight: z.number().gt(0).describe("share of the account's browsers when tenants compete, relative to other tenants'"),
    recordingRetentionDays: z.number().int().min(1).describe("days a recording is kept after its lease ends"),
    profileRetentionDays: z.number().int().min(1).describe("days a profile is kept after its last write, at most"),
  }),
  defaults: z.object({ maxPools: z.boolean(), maxSessions: z.boolean(), weight: z.boolean(), recordingRetentionDays: z.boolean(), profileRetentionDays: z.boolean() }),
  usage: z.object({ pools: Count, sessions: Count.describe("the sum of the tenant's pools' maxSessions") }),
  keys: z.object({ active: Count, revoked: Count }),
});

/** What GET /v1/tenant tells a tenant about itself. */
export const TenantSelf = Tenant.pick({ tenant: true, quota: true, usage: true }).extend({
  rateLimit: z.object({ requests: Count, periodSeconds: Count }).nullable().describe("the per-key limit; null when rate limiting is off"),
});

// ---- recordings ------------------------------------------------------------------

const RecordedFrame = z.object({ t: z.number().int().describe("when the frame was on screen, epoch ms"), data: z.string().describe("the JPEG, base64") });

/** A recorded lease's manifest (src/recorder/store.ts, RecordingManifest); times are epoch ms. */
export const RecordingManifest = z.object({
  tenant: z.string(),
  pool: z.string(),
  lease: z.string(),
  startedAt: z.number().int(),
  endedAt: z.number().int(),
  frames: Count,
  bytes: Count.describe("base64 characters of the frames kept"),
  chunks: Count,
  truncated: z.boolean().describe("frames were dropped: the recording reached RECORDING_MAX_BYTES"),
  fps: z.number().gt(0).describe("the frame rate the recording was paced to, at most"),
  events: z.array(z.object({ at: z.string(), event: z.string(), detail: z.record(z.string(), z.unknown()).optional() })).describe("the lease's journal"),
  expiresAt: z.number().int().describe("when the recording is deleted: the tenant's recordingRetentionDays after endedAt"),
});

/** GET …/leases/{id}/recording with Accept: application/json. */
export const Recording = z.object({ manifest: RecordingManifest, frames: z.array(RecordedFrame).describe("in order") });

// ---- the account's capacity (admin API) ---------------------------------------

export const MAX_ACCOUNT_SESSIONS = 100_000;
export const MAX_LAUNCHES_PER_SECOND = 1_000;

/** A number overrides the Worker var (ACCOUNT_MAX_CONCURRENT_SESSIONS, ACCOUNT_LAUNCHES_PER_SECOND); null returns to it. */
export const CapacityBody = z
  .object({
    limits: z
      .object({
        maxConcurrentSessions: z.number().int().min(1).max(MAX_ACCOUNT_SESSIONS).nullable(),
        launchesPerSecond: z
          .number()
          .gt(0)
          .max(MAX_LAUNCHES_PER_SECOND)
          .nullable()
          .describe("may be fractional: 0.05 is one launch every 20 s"),
      })
      .partial()
      .strict(),
  })
  .strict();

const Limits = z.object({ maxConcurrentSessions: Count, launchesPerSecond: z.number().gt(0) });
export const Capacity = z.object({
  limits: Limits.describe("what the governor grants by: the operator's override or the Worker var, capped by what the platform reported"),
  configured: Limits.describe("the Worker vars ACCOUNT_MAX_CONCURRENT_SESSIONS and ACCOUNT_LAUNCHES_PER_SECOND"),
  overrides: z.object({ maxConcurrentSessions: Count.nullable(), launchesPerSecond: z.number().gt(0).nullable() }).describe("set with PUT /v1/admin/capacity; null: the var"),
  platform: z
    .object({ maxConcurrentSessions: Count, at: z.iso.datetime() })
    .nullable()
    .describe("the concurrency the platform reported with its last 429 (kept an hour); the effective limit is never above it"),
  usage: z.object({
    used: Count.describe("permits held: browsers launching, idle, leased, resetting or closing"),
    headroom: Count,
    launchTokens: z.number().min(0).describe("launches the rate allows right now (the bucket holds at most max(1, launchesPerSecond))"),
    blockedUntil: z.iso.datetime().nullable().describe("no launch before this: the platform answered 429"),
  }),
  breaker: z.object({
    state: z.enum(["closed", "open", "half_open"]),
    streak: Count.describe("failed launches in a row"),
    retryAfterSeconds: Count.describe("while open: until it half-opens"),
  }),
  tenants: z.array(
    z.object({
      tenant: z.string(),
      weight: z.number().gt(0),
      held: Count,
      pending: Count.describe("launches asked for and refused in the last seconds"),
      share: z.number().min(0).describe("weighted max-min fair share of the limit among active tenants"),
    }),
  ),
});
