/** The Durable Objects the Worker calls, named in one place. */

/** Which kind of object a stub reaches. */
export type StubKind = "pool" | "tenant" | "registry" | "governor" | "recorder";

/**
 * A seam for tests: `wrap`, when set, is given every stub these functions
 * return (with the object's kind and name, e.g. "dev/my-pool" for a pool) and
 * returns the stub to use instead, e.g. a Proxy whose methods throw chosen
 * errors. Unset in production, where it costs one property read per stub.
 * The pool and tenant objects reach each other through these functions too,
 * so a wrapper sees their calls as well (match on kind, name and method).
 */
export const stubHooks: { wrap: (<T extends object>(kind: StubKind, name: string, stub: T) => T) | undefined } = { wrap: undefined };

function hooked<T extends object>(kind: StubKind, name: string, stub: T): T {
  return stubHooks.wrap ? stubHooks.wrap(kind, name, stub) : stub;
}

/**
 * The pool object of `tenant`'s pool `pool` (one object per tenant and pool
 * name). `locationHint` places the object, but only if this is the first
 * request ever to reach it: an object never moves (src/placement.ts).
 */
export function poolOf(env: Env, tenant: string, pool: string, locationHint?: DurableObjectLocationHint) {
  const name = `${tenant}/${pool}`;
  const id = env.POOL.idFromName(name);
  return hooked("pool", name, locationHint === undefined ? env.POOL.get(id) : env.POOL.get(id, { locationHint }));
}

/** The account's registry of sessions and pools (one object). */
export function registryOf(env: Env) {
  return hooked("registry", "registry", env.REGISTRY.get(env.REGISTRY.idFromName("registry")));
}

/**
 * The account's capacity governor: launch permits within the account's
 * limits, shared fairly among tenants (one object, "account"; tests give a
 * pool a governor of its own by name, so their limits and failures stay theirs).
 */
export function governorOf(env: Env, name = "account") {
  return hooked("governor", name, env.GOVERNOR.get(env.GOVERNOR.idFromName(name)));
}

/** The tenant's object: its managed keys, quotas and fallback rate limiter (one object per tenant). */
export function tenantOf(env: Env, tenant: string) {
  return hooked("tenant", tenant, env.TENANT.get(env.TENANT.idFromName(tenant)));
}

/** The recorder of one recorded lease: its screencast in R2, until the tenant's retention ends (one object per lease). */
export function recorderOf(env: Env, tenant: string, pool: string, leaseId: string) {
  const name = `${tenant}/${pool}/${leaseId}`;
  return hooked("recorder", name, env.RECORDER.get(env.RECORDER.idFromName(name)));
}
