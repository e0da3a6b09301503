/** The Durable Objects the Worker calls, named in one place. */

/** The pool object of `tenant`'s pool `pool` (one object per tenant and pool name). */
export function poolOf(env: Env, tenant: string, pool: string) {
  return env.POOL.get(env.POOL.idFromName(`${tenant}/${pool}`));
}

/** The account's registry of sessions and pools (one object). */
export function registryOf(env: Env) {
  return env.REGISTRY.get(env.REGISTRY.idFromName("registry"));
}

/** The tenant's object: its managed keys, quotas and fallback rate limiter (one object per tenant). */
export function tenantOf(env: Env, tenant: string) {
  return env.TENANT.get(env.TENANT.idFromName(tenant));
}
