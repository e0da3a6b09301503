/**
 * A lease's browser state on its way in and out, for the native acquire and
 * Steel's create alike: the state a caller asks for (`context`, a profile) is
 * put together before the pool is asked (so a missing profile or an oversized
 * state costs no lease), applied over CDP after the pool granted the lease and
 * before the answer leaves the Worker (so the first page the client opens
 * sees it), and a lease that fails to take it is released, not handed out
 * half-prepared. Saving at the end is the pool's reset's job (the lease's
 * `persistProfile`), so it happens however the lease ends.
 */
import { providerFactory } from "../browser/factory";
import { isEmptyState, MAX_STATE_BYTES, normalState, stateBytes, type BrowserState, type StoredState } from "../browser/state";
import { message, withDeadline } from "../deadline";
import { log } from "../log";
import { poolOf } from "../stubs";
import type { z } from "zod";
import { deleteProfile, loadProfile, reserveProfile } from "../profiles/store";
import type { AcquireView } from "../pool/object";
import type { Result } from "../result";
import { ApiError } from "./errors";
import { profileApiError } from "./profiles";
import { unwrap } from "./validate";

/** How long applying a state to a granted lease's browser may take before the lease is released and the caller told. */
export const APPLY_TIMEOUT_MS = 15_000;
/** How long reading a live browser's state may take. */
export const READ_TIMEOUT_MS = 15_000;

export interface StatePlan {
  /** What to apply before the lease is answered; undefined when nothing was asked. */
  state: StoredState | undefined;
  /** The profile the lease's state is saved to when it ends (the pool's `persistProfile`). */
  persistProfile: string | undefined;
  /** A profile made for this lease (persistProfile without profileId): deleted again if the lease is not granted. */
  reserved: string | undefined;
}

export interface StateAsk {
  context?: z.output<typeof BrowserState> | undefined;
  profileId?: string | undefined;
  persistProfile?: boolean | undefined;
}

/**
 * The state a request asks for, put together and checked before any lease
 * exists: the profile's (404 if the tenant has no such profile), with
 * `context` laid over it; within MAX_STATE_BYTES (413). With
 * `persistProfile` and no `profileId`, a new profile is made for the lease.
 */
export async function planState(env: Env, tenant: string, leaseId: string, ask: StateAsk): Promise<StatePlan> {
  let state = normalState(ask.context);
  if (ask.profileId) {
    const profile = await loadProfile(env, tenant, ask.profileId).catch((error) => {
      throw profileApiError(error);
    });
    if (!profile) throw new ApiError(404, "not_found", `profile ${ask.profileId} not found`);
    state = overlay(profile.state, state);
  }
  if (stateBytes(state) > MAX_STATE_BYTES) throw new ApiError(413, "payload_too_large", `the browser state is limited to ${MAX_STATE_BYTES} bytes as JSON`);
  let persistProfile: string | undefined;
  let reserved: string | undefined;
  if (ask.persistProfile) {
    const reserve = () =>
      reserveProfile(env, tenant, { sourceSessionId: leaseId }).catch((error) => {
        throw profileApiError(error);
      });
    persistProfile = ask.profileId ?? (reserved = (await reserve()).id);
  }
  return { state: isEmptyState(state) ? undefined : state, persistProfile, reserved };
}

/** Gives back what a plan made when its lease was not granted (best effort: an empty reserved profile). */
export async function dropPlan(env: Env, tenant: string, plan: StatePlan): Promise<void> {
  if (plan.reserved) await deleteProfile(env, tenant, plan.reserved).catch(() => undefined);
}

/**
 * The pool's answer to an acquire made with `plan`, with what the plan made
 * given back wherever no lease of this request's results: the call threw,
 * the pool refused (the refusal is thrown as its ApiError), or an
 * Idempotency-Key replay answered the first attempt's lease, which saves to
 * the profile that attempt reserved. Applying the state is left to the
 * caller (applyPlan), which may first have to hand the lease back.
 */
export async function grantWithPlan(env: Env, tenant: string, plan: StatePlan, acquire: () => Promise<Result<AcquireView>>): Promise<AcquireView> {
  let result: Result<AcquireView>;
  try {
    result = await acquire();
  } catch (error) {
    await dropPlan(env, tenant, plan);
    throw error;
  }
  if (!result.ok) await dropPlan(env, tenant, plan);
  const view = unwrap(result);
  if (view.replayed && plan.reserved && view.lease.persistProfile !== plan.reserved) await dropPlan(env, tenant, plan);
  return view;
}

/** `top` laid over `base`: a cookie of the same name, domain and path, and an origin's item of the same key, are top's. */
export function overlay(base: StoredState, top: StoredState): StoredState {
  const key = (c: StoredState["cookies"][number]) => `${c.name}\u0000${c.domain ?? ""}\u0000${c.path ?? "/"}\u0000${c.url ?? ""}`;
  const cookies = new Map(base.cookies.map((c) => [key(c), c]));
  for (const cookie of top.cookies) cookies.set(key(cookie), cookie);
  const localStorage: StoredState["localStorage"] = { ...base.localStorage };
  for (const [origin, items] of Object.entries(top.localStorage)) localStorage[origin] = { ...localStorage[origin], ...items };
  return { cookies: [...cookies.values()], localStorage };
}

/**
 * Sets the planned state in the granted lease's browser. On failure the
 * lease is released and the caller gets 502 `context_failed`: a lease whose
 * browser lacks what was asked is never handed out.
 */
export async function applyPlan(env: Env, tenant: string, pool: string, lease: { id: string; sessionId: string | null }, plan: StatePlan): Promise<void> {
  if (!plan.state) return;
  try {
    if (!lease.sessionId) throw new Error("the lease has no browser");
    await withDeadline(providerFactory.create(env).applyState(lease.sessionId, plan.state), APPLY_TIMEOUT_MS, "applying the browser state");
  } catch (error) {
    log("context_failed", { tenant, pool, lease: lease.id, error: message(error) });
    const released: Promise<unknown> = poolOf(env, tenant, pool).release(lease.id);
    await withDeadline(released, 5_000, "releasing the lease").catch(() => undefined);
    throw new ApiError(502, "context_failed", `the browser did not take the requested state (${message(error)}); the lease was released`);
  }
}

/** The live browser's cookies and localStorage; 502 `browser_unreachable`-like failures become `context_failed`. */
export async function readLiveState(env: Env, sessionId: string): Promise<StoredState> {
  try {
    return await withDeadline(providerFactory.create(env).readState(sessionId), READ_TIMEOUT_MS, "reading the browser state");
  } catch (error) {
    throw new ApiError(502, "context_failed", `the browser's state could not be read: ${message(error)}`);
  }
}
