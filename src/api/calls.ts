/**
 * Every call from the Worker to a Durable Object goes through here, so that a
 * failure of the call itself (not an answer of the object: those are
 * `Result`s) reaches the caller as `503` + `Retry-After`, never as a 500.
 *
 * A stub call can throw for reasons that are nobody's bug (Cloudflare's Durable Objects documentation,
 * "Durable Objects facts that matter for correctness"):
 * - `.overloaded === true`: too many requests are queued on the object. Not
 *   retried here (more load is the last thing it needs); `503 overloaded` with
 *   a longer Retry-After.
 * - `.retryable === true`: a broken connection, an object reset; a deploy's
 *   reset ("code was updated"); a storage operation that timed out; any other
 *   internal error of the object or the runtime. `503 unavailable`.
 *
 * A call that is safe to repeat (`"repeatable"`: every read, and `acquire`
 * and `release`, which the pool object answers the same way when repeated) is
 * retried once, after a short pause, on a fresh stub (a stub that failed may
 * stay broken); any other write is made at most once (`"once"`): it may have
 * happened, so only the client, told 503, may decide to repeat it.
 *
 * Each failed attempt is logged as one JSON line (`object_call_failed`) with
 * the original error and its stack. Errors thrown by the Worker's own code
 * outside these calls stay what they were: a logged 500 (errors.ts).
 */
import { log } from "../log";
import { ApiError } from "./errors";
import { governorOf, poolOf, registryOf, tenantOf, type StubKind } from "../stubs";

/** Whether a call may be made again when its first attempt failed. */
export type Repeat = "repeatable" | "once";

/** Why a call failed, as logged. */
export type Cause = "overloaded" | "retryable" | "code_updated" | "storage_timeout" | "internal";

/** Retry-After (seconds) of `503 overloaded`: give the object's queue time to drain. */
export const OVERLOADED_RETRY_AFTER_SECONDS = 5;
/** Retry-After (seconds) of `503 unavailable`. */
export const UNAVAILABLE_RETRY_AFTER_SECONDS = 1;
/** The pause before the one retry of a repeatable call. */
export const RETRY_PAUSE_MS = 50;

export function classify(error: unknown): { code: "overloaded" | "unavailable"; cause: Cause } {
  const flags = (error ?? {}) as { overloaded?: unknown; retryable?: unknown };
  if (typeof error === "object" && flags.overloaded === true) return { code: "overloaded", cause: "overloaded" };
  const text = error instanceof Error ? error.message : String(error);
  if (/code (was|has been) updated/i.test(text)) return { code: "unavailable", cause: "code_updated" };
  if (/storage/i.test(text) && /time(d)? ?out/i.test(text)) return { code: "unavailable", cause: "storage_timeout" };
  if (typeof error === "object" && flags.retryable === true) return { code: "unavailable", cause: "retryable" };
  return { code: "unavailable", cause: "internal" };
}

export interface Target {
  object: StubKind;
  /** The object's name: `tenant/pool`, the tenant, "registry" or "account" (the governor). */
  name: string;
  method: string;
}

/** Runs `call` (one stub call), mapping what it throws to 503 and retrying it once if it is repeatable. */
export async function objectCall<R extends PromiseLike<unknown>>(target: Target, repeat: Repeat, call: () => R): Promise<Awaited<R>> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await call();
    } catch (error) {
      if (error instanceof ApiError) throw error;
      const { code, cause } = classify(error);
      const retrying = repeat === "repeatable" && code !== "overloaded" && attempt === 1;
      const flags = (typeof error === "object" && error !== null ? error : {}) as { retryable?: unknown; overloaded?: unknown };
      log("object_call_failed", {
        ...target,
        attempt,
        cause,
        retrying,
        ...(retrying ? {} : { answered: `503 ${code}` }),
        retryable: flags.retryable === true,
        overloaded: flags.overloaded === true,
        error: error instanceof Error ? error.message : String(error),
        stack: error instanceof Error ? error.stack : undefined,
      });
      if (retrying) {
        await scheduler.wait(RETRY_PAUSE_MS);
        continue;
      }
      throw code === "overloaded"
        ? ApiError.retryable(
            503,
            "overloaded",
            `the ${target.object} object this request needs is overloaded (too many requests queued); retry after the Retry-After delay`,
            OVERLOADED_RETRY_AFTER_SECONDS,
          )
        : ApiError.retryable(
            503,
            "unavailable",
            `the ${target.object} object this request needs could not be reached (a restart or a lost connection)${repeat === "once" ? "; the change may or may not have been made" : ""}; retry`,
            UNAVAILABLE_RETRY_AFTER_SECONDS,
          );
    }
  }
}

type PoolStub = ReturnType<typeof poolOf>;
type TenantStub = ReturnType<typeof tenantOf>;
type RegistryStub = ReturnType<typeof registryOf>;
type GovernorStub = ReturnType<typeof governorOf>;

/** One call to `tenant`'s pool `pool`; each attempt gets a fresh stub. */
export function poolCall<R extends PromiseLike<unknown>>(env: Env, tenant: string, pool: string, method: string, repeat: Repeat, call: (stub: PoolStub) => R): Promise<Awaited<R>> {
  return objectCall({ object: "pool", name: `${tenant}/${pool}`, method }, repeat, () => call(poolOf(env, tenant, pool)));
}

/** One call to `tenant`'s object; each attempt gets a fresh stub. */
export function tenantCall<R extends PromiseLike<unknown>>(env: Env, tenant: string, method: string, repeat: Repeat, call: (stub: TenantStub) => R): Promise<Awaited<R>> {
  return objectCall({ object: "tenant", name: tenant, method }, repeat, () => call(tenantOf(env, tenant)));
}

/** One call to the account's registry; each attempt gets a fresh stub. */
export function registryCall<R extends PromiseLike<unknown>>(env: Env, method: string, repeat: Repeat, call: (stub: RegistryStub) => R): Promise<Awaited<R>> {
  return objectCall({ object: "registry", name: "registry", method }, repeat, () => call(registryOf(env)));
}

/** One call to the account's capacity governor; each attempt gets a fresh stub. */
export function governorCall<R extends PromiseLike<unknown>>(env: Env, method: string, repeat: Repeat, call: (stub: GovernorStub) => R): Promise<Awaited<R>> {
  return objectCall({ object: "governor", name: "account", method }, repeat, () => call(governorOf(env)));
}
