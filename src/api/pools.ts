/**
 * The caller's pools and tenant: list, describe, configure (creating the pool
 * on its first PUT, placed by `locationHint`), delete, the cheap pressure
 * read, and the tenant's own quota and usage. Mounted on the API-key routes
 * (app.ts); leases are there, operators' views of every pool in admin routes.
 */
import { Hono, type Context } from "hono";
import { rateRule, type AuthVariables } from "./auth";
import { poolCall, registryCall, tenantCall } from "./calls";
import { checkPlacement, placedCall } from "./placement";
import { PoolConfigBody, PoolListQuery, PoolName } from "./schemas";
import { parse, readJson, unwrap } from "./validate";

type PoolsEnv = { Bindings: Env; Variables: AuthVariables };

export const pools = new Hono<PoolsEnv>();

/** One page of pools from the registry, each with its current counts and health (asked of the pool objects in parallel). */
export async function poolSummaries(c: Context<PoolsEnv>, tenant: string | undefined) {
  const query = parse(PoolListQuery, c.req.query(), "query");
  const page = await registryCall(c.env, "listPools", "repeatable", (registry) =>
    registry.listPools({ ...(tenant === undefined ? {} : { tenant }), ...query }),
  );
  const summaries = await Promise.all(
    page.pools.map(async (entry) => {
      const described = await poolCall(c.env, entry.tenant, entry.pool, "describe", "repeatable", (stub) => stub.describe());
      const base = { ...(tenant === undefined ? { tenant: entry.tenant } : {}), pool: entry.pool, createdAt: entry.createdAt };
      if (!described.ok) return { ...base, counts: null, capacity: null, consistent: null };
      const { counts, capacity, consistent } = described.value;
      return { ...base, counts, capacity, consistent };
    }),
  );
  return { pools: summaries, nextCursor: page.nextCursor };
}

// The caller's own tenant: its quota and usage, and the rate limit its keys are held to.
pools.get("/tenant", async (c) => {
  const { tenant, quota, usage } = await tenantCall(c.env, c.get("tenant"), "describe", "repeatable", (stub) => stub.describe(c.get("tenant")));
  const rate = rateRule(c.env);
  return c.json({ tenant, quota, usage, rateLimit: rate ? { requests: rate.limit, periodSeconds: rate.periodMs / 1000 } : null });
});

pools.get("/pools", async (c) => c.json(await poolSummaries(c, c.get("tenant"))));

pools.get("/pools/:pool", async (c) => {
  const pool = parse(PoolName, c.req.param("pool"), "path.pool");
  return c.json(unwrap(await poolCall(c.env, c.get("tenant"), pool, "describe", "repeatable", (stub) => stub.describe())));
});

// Cheap enough to poll: the pool answers from its tallies, without scanning its rows.
pools.get("/pools/:pool/pressure", async (c) => {
  const pool = parse(PoolName, c.req.param("pool"), "path.pool");
  return c.json(unwrap(await poolCall(c.env, c.get("tenant"), pool, "pressure", "repeatable", (stub) => stub.pressure())));
});

pools.delete("/pools/:pool", async (c) => {
  const pool = parse(PoolName, c.req.param("pool"), "path.pool");
  return c.json(unwrap(await poolCall(c.env, c.get("tenant"), pool, "deletePool", "once", (stub) => stub.deletePool(c.get("tenant"), pool))));
});

pools.put("/pools/:pool", async (c) => {
  const pool = parse(PoolName, c.req.param("pool"), "path.pool");
  const patch = parse(PoolConfigBody, await readJson(c), "body");
  // A locationHint places the pool only if this request creates it (src/placement.ts); an existing pool is where it is.
  if (patch.locationHint !== undefined) await checkPlacement(c.env, c.get("tenant"), pool, patch.locationHint, `locationHint ${patch.locationHint}`);
  const hint = patch.locationHint ?? undefined;
  return c.json(unwrap(await placedCall(c.env, c.get("tenant"), pool, hint, "configure", "once", (stub) => stub.configure(c.get("tenant"), pool, patch))));
});
