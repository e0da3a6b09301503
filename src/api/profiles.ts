/**
 * Steel's Profiles API (`/v1/profiles`): a tenant's saved browser states
 * (src/profiles/store.ts), in Steel's shape. Steel's SDK lists and reads them
 * unchanged. What differs:
 *
 * - Steel creates and updates a profile from an uploaded user-data-dir archive
 *   (multipart/form-data, `userDataDir`). The broker keeps cookies and
 *   localStorage, not Chromium's profile directory, so an upload is refused
 *   with 400 naming `userDataDir` (and `proxyUrl`, `dimensions`, `userAgent`
 *   when sent), never half-taken. A profile is made by a session
 *   (`persistProfile`), or here from JSON: `{sessionContext?, retentionDays?}`.
 * - `GET /v1/profiles/{id}/context` answers the saved state itself; the
 *   profile object never carries it.
 * - `DELETE /v1/profiles/{id}` (not in Steel's SDK): 204, or 404 when there
 *   is no such profile (a repeated delete says it is gone either way).
 *
 * Ids are looked up under the caller's tenant only: another tenant's profile
 * is a 404 on every route. Without the PROFILE_ENCRYPTION_KEY secret every
 * route answers 503 profiles_unavailable.
 */
import { type Context, Hono, type MiddlewareHandler } from "hono";
import { z } from "zod";
import { BrowserState, MAX_STATE_BYTES, normalState, stateBytes, type StoredState } from "../browser/state";
import { DeadlineExceeded } from "../deadline";
import { hasProfileKey, MIN_SECRET_LENGTH } from "../profiles/crypto";
import {
  createProfile,
  deleteProfile,
  getProfile,
  listProfiles,
  loadProfile,
  ProfileError,
  type ProfileMeta,
  retainProfile,
  saveProfile,
  UNAVAILABLE_RETRY_AFTER_SECONDS,
} from "../profiles/store";
import { MAX_PROFILE_RETENTION_DAYS } from "../tenant/quota";
import type { AuthVariables } from "./auth";
import { tenantCall } from "./calls";
import { ApiError } from "./errors";
import { ProfileIdSchema } from "./schemas";
import { parse, readJson } from "./validate";

type ProfilesEnv = { Bindings: Env; Variables: AuthVariables };

/** Fields of Steel's create and update the broker does not take, and why: each is answered 400. */
const UNSUPPORTED: Record<string, string> = {
  userDataDir:
    "the broker keeps no user-data-dir archives, a profile is cookies and localStorage: save one from a session (persistProfile) or send JSON {\"sessionContext\": {\"cookies\": […], \"localStorage\": {…}}}",
  proxyUrl: "the broker runs no proxies",
  dimensions: "a profile keeps no window dimensions: set the page's viewport from your client",
  userAgent: "a profile keeps no user agent: set it per page from your client",
};

const FORM = /^(multipart\/form-data|application\/x-www-form-urlencoded)\b/i;

function refusal(fields: string[]): ApiError {
  const named = Object.keys(UNSUPPORTED).filter((field) => fields.includes(field));
  return new ApiError(400, "invalid_request", named.map((field) => `body.${field}: not supported by this broker (${UNSUPPORTED[field]})`).join("; "));
}

/**
 * Refuses a form upload (Steel's create and update) with 400 naming its
 * fields: `userDataDir` always (Steel's form requires it), and the others
 * sent. The form is read only when it declares a size the state limit allows;
 * a larger one (an archive) is refused from its content type alone.
 */
async function refuseUpload(c: Context): Promise<void> {
  if (!FORM.test(c.req.header("content-type") ?? "")) return;
  const fields = ["userDataDir"];
  const length = Number(c.req.header("content-length") ?? Number.NaN);
  if (length <= MAX_STATE_BYTES) {
    try {
      for (const key of (await c.req.formData()).keys()) fields.push(key.replace(/\[.*$/, ""));
    } catch {
      // Unreadable: named from its content type alone.
    }
  }
  throw refusal(fields);
}

/**
 * The upload refusal as middleware, for the Worker to run before its body
 * limit: an archive is bigger than any body a state may take, and should be
 * told why it is refused (400 naming userDataDir), not only that it is big.
 */
export const refuseUploads: MiddlewareHandler = async (c, next) => {
  if (c.req.method === "POST" || c.req.method === "PATCH") await refuseUpload(c);
  await next();
};

/** What a profile operation throws, as the HTTP API answers it (anything else is left as it is). */
export function profileApiError(error: unknown): unknown {
  if (error instanceof ProfileError) {
    const { status, code, detail, retryAfter } = error.failure;
    return new ApiError(status, code, detail, retryAfter ? { "Retry-After": String(retryAfter) } : {});
  }
  if (error instanceof DeadlineExceeded) return ApiError.retryable(503, "unavailable", `the profiles' storage did not answer in time (${error.what}); retry`, 1);
  return error;
}

async function attempt<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (error) {
    throw profileApiError(error);
  }
}

export const ProfileBody = z
  .object({
    sessionContext: BrowserState.optional().describe("the cookies and localStorage (per origin) the profile keeps: Steel's sessionContext shape"),
    retentionDays: z
      .number()
      .int()
      .min(1)
      .max(MAX_PROFILE_RETENTION_DAYS)
      .nullable()
      .optional()
      .describe("days the profile is kept after its last write, at most the tenant's profileRetentionDays; null: the tenant's"),
  })
  .strict();

/** The JSON body of a create or update: refused fields named, the state normalised and within MAX_STATE_BYTES (413 if not). */
async function readBody(c: Context): Promise<{ state: StoredState | undefined; retentionDays: number | null | undefined }> {
  await refuseUpload(c);
  const raw = await readJson(c);
  if (raw && typeof raw === "object" && !Array.isArray(raw)) {
    const named = Object.keys(raw).filter((field) => field in UNSUPPORTED);
    if (named.length > 0) throw refusal(named);
  }
  const body = parse(ProfileBody, raw, "body");
  const state = body.sessionContext === undefined ? undefined : normalState(body.sessionContext);
  const bytes = state ? stateBytes(state) : 0;
  if (bytes > MAX_STATE_BYTES) {
    throw new ApiError(413, "payload_too_large", `body.sessionContext: the state takes ${bytes} bytes as JSON; a profile keeps at most ${MAX_STATE_BYTES}. Nothing was written`);
  }
  return { state, retentionDays: body.retentionDays };
}

/** The tenant's profileRetentionDays, and a profile's own retention checked against it. */
async function retentionQuota(c: Context<ProfilesEnv>, retentionDays: number | null | undefined): Promise<number> {
  const tenant = c.get("tenant");
  const quota = await tenantCall(c.env, tenant, "profileRetentionDays", "repeatable", (stub) => stub.profileRetentionDays());
  if (typeof retentionDays === "number" && retentionDays > quota) {
    throw new ApiError(400, "invalid_request", `body.retentionDays: at most the tenant's profileRetentionDays, ${quota}`);
  }
  return quota;
}

/** A profile as Steel's `Profile`, plus the broker's bytes, expiresAt, retentionDays and failureReason. Never its state. */
export function profileView(meta: ProfileMeta) {
  return {
    id: meta.id,
    createdAt: meta.createdAt,
    updatedAt: meta.updatedAt,
    status: meta.status,
    sourceSessionId: meta.sourceSessionId,
    // Steel's fields for what the broker does not keep in a profile.
    credentialsConfig: null,
    dimensions: null,
    extensionIds: null,
    fingerprint: null,
    useProxyConfig: null,
    userAgent: null,
    bytes: meta.bytes,
    expiresAt: meta.expiresAt,
    retentionDays: meta.retentionDays,
    failureReason: meta.failure,
  };
}

const profileId = (c: Context) => parse(ProfileIdSchema, c.req.param("id"), "path.id");
const notFound = (id: string) => new ApiError(404, "not_found", `profile ${id} not found`);

export const profiles = new Hono<ProfilesEnv>();

// Scoped to these paths: this app is mounted at the root of /v1, where "*" would be every route.
for (const path of ["/profiles", "/profiles/*"]) {
  profiles.use(path, async (c, next) => {
    if (!hasProfileKey(c.env)) {
      throw ApiError.retryable(
        503,
        "profiles_unavailable",
        `profiles are unavailable: the broker's PROFILE_ENCRYPTION_KEY secret is not set (or shorter than ${MIN_SECRET_LENGTH} characters), and profiles are never stored unencrypted`,
        UNAVAILABLE_RETRY_AFTER_SECONDS,
      );
    }
    await next();
  });
}

profiles.get("/profiles", async (c) => {
  const listed = await attempt(listProfiles(c.env, c.get("tenant")));
  return c.json({ count: listed.length, profiles: listed.map(profileView) });
});

profiles.post("/profiles", async (c) => {
  const body = await readBody(c);
  const quotaDays = await retentionQuota(c, body.retentionDays);
  const meta = await attempt(createProfile(c.env, c.get("tenant"), { state: body.state, retentionDays: body.retentionDays ?? null }, { quotaDays }));
  c.header("Location", `/v1/profiles/${meta.id}`);
  return c.json(profileView(meta), 201);
});

profiles.get("/profiles/:id", async (c) => {
  const id = profileId(c);
  const meta = await attempt(getProfile(c.env, c.get("tenant"), id));
  if (!meta) throw notFound(id);
  return c.json(profileView(meta));
});

// Replaces the state (sessionContext) and/or the retention; an absent field is kept.
profiles.patch("/profiles/:id", async (c) => {
  const id = profileId(c);
  const tenant = c.get("tenant");
  const body = await readBody(c);
  const current = await attempt(getProfile(c.env, tenant, id));
  if (!current) throw notFound(id);
  if (!body.state && body.retentionDays === undefined) return c.json(profileView(current));
  const quotaDays = await retentionQuota(c, body.retentionDays);
  const meta = body.state
    ? await attempt(saveProfile(c.env, tenant, id, body.state, { sourceSessionId: null, retentionDays: body.retentionDays }, { quotaDays }))
    : await attempt(retainProfile(c.env, tenant, id, body.retentionDays ?? null, { quotaDays }));
  if (!meta) throw notFound(id);
  return c.json(profileView(meta));
});

profiles.get("/profiles/:id/context", async (c) => {
  const id = profileId(c);
  const found = await attempt(loadProfile(c.env, c.get("tenant"), id));
  if (!found) throw notFound(id);
  return c.json(found.state);
});

profiles.delete("/profiles/:id", async (c) => {
  const id = profileId(c);
  if (!(await attempt(deleteProfile(c.env, c.get("tenant"), id)))) throw notFound(id);
  return c.body(null, 204);
});
