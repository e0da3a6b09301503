/**
 * Placement, as the Worker asks for it (src/placement.ts): calls to a pool
 * through a stub that carries a location hint, so that the request creating
 * the pool places its object, and the check that an existing pool is where a
 * request asks for it. Both are best effort in the platform's sense: the hint
 * counts only on the first request that ever reaches the object, and a
 * request without one (an acquire, a read) that creates the pool between the
 * check and the creation places it instead.
 */
import { type LocationHint, placementConflict, regionHint, type SteelRegion } from "../placement";
import { poolOf } from "../stubs";
import { objectCall, type Repeat } from "./calls";
import { unwrap } from "./validate";

type PoolStub = ReturnType<typeof poolOf>;

/** One call to `tenant`'s pool through a stub with `hint` (calls.ts: a failed call is a 503, a repeatable one is retried once). */
export function placedCall<R extends PromiseLike<unknown>>(
  env: Env,
  tenant: string,
  pool: string,
  hint: LocationHint | undefined,
  method: string,
  repeat: Repeat,
  call: (stub: PoolStub) => R,
): Promise<Awaited<R>> {
  return objectCall({ object: "pool", name: `${tenant}/${pool}`, method }, repeat, () => call(poolOf(env, tenant, pool, hint)));
}

/**
 * Refuses (409 placement_fixed) to serve `wanted` (null: no hint) from an
 * existing pool created with another; answers whether the pool exists. The
 * read carries the hint, so that if it is the first request to reach the
 * object, it places the object where the creation that follows asks.
 */
export async function checkPlacement(env: Env, tenant: string, pool: string, wanted: LocationHint | null, asked: string): Promise<{ exists: boolean }> {
  const described = await placedCall(env, tenant, pool, wanted ?? undefined, "describe", "repeatable", (stub) => stub.describe());
  if (!described.ok) return { exists: false };
  const conflict = placementConflict(pool, described.value.config.locationHint, wanted, asked);
  if (conflict) unwrap({ ok: false, failure: conflict });
  return { exists: true };
}

/**
 * Steel's `region` on `POST /v1/sessions`: the namespace's pool placed at the
 * region's hint. A pool that does not exist yet is created here with the hint
 * (as `PUT /v1/pools/{pool}` with `{locationHint}` would, quota claim
 * included), so its config records it; one that exists must have been created
 * with that hint (409 placement_fixed otherwise). Answers the hint.
 */
export async function placeNamespace(env: Env, tenant: string, pool: string, region: SteelRegion): Promise<LocationHint> {
  const hint = regionHint(region);
  const { exists } = await checkPlacement(env, tenant, pool, hint, `region ${region} (${hint})`);
  if (!exists) unwrap(await placedCall(env, tenant, pool, hint, "configure", "once", (stub) => stub.configure(tenant, pool, { locationHint: hint })));
  return hint;
}
