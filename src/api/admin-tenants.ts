/**
 * Operators' routes for tenants (admin token, mounted at /v1/admin/tenants by
 * app.ts): tenants' quotas and managed API keys (a key is shown once, when
 * created or rotated). See docs/tenants.md.
 */
import { Hono, type Context } from "hono";
import type { AuthVariables } from "./auth";
import { registryCall, tenantCall, type Repeat } from "./calls";
import { forgetWeight } from "./capacity";
import { CreateKeyBody, KeyId, PoolListQuery, QuotaBody, RotateKeyBody, TenantName } from "./schemas";
import type { tenantOf } from "../stubs";
import { parse, readJson, unwrap } from "./validate";

type AppEnv = { Bindings: Env; Variables: AuthVariables };
type Ctx = Context<AppEnv>;

export const tenantsAdmin = new Hono<AppEnv>();

function tenantParam(c: Ctx): string {
  return parse(TenantName, c.req.param("tenant"), "path.tenant");
}
/** One call to the tenant object the admin route names (calls.ts). */
function onTenant<R extends PromiseLike<unknown>>(c: Ctx, tenant: string, method: string, repeat: Repeat, call: (stub: ReturnType<typeof tenantOf>) => R): Promise<Awaited<R>> {
  return tenantCall(c.env, tenant, method, repeat, call);
}
tenantsAdmin.get("/", async (c) => {
  const query = parse(PoolListQuery, c.req.query(), "query");
  const page = await registryCall(c.env, "listTenants", "repeatable", (registry) => registry.listTenants(query));
  const tenants = await Promise.all(page.tenants.map((tenant) => onTenant(c, tenant, "describe", "repeatable", (stub) => stub.describe(tenant))));
  return c.json({ tenants, nextCursor: page.nextCursor });
});
tenantsAdmin.get("/:tenant", async (c) => {
  const tenant = tenantParam(c);
  return c.json(await onTenant(c, tenant, "describe", "repeatable", (stub) => stub.describe(tenant)));
});
tenantsAdmin.put("/:tenant", async (c) => {
  const tenant = tenantParam(c);
  const patch = parse(QuotaBody, await readJson(c), "body");
  const view = await onTenant(c, tenant, "setQuota", "once", (stub) => stub.setQuota(tenant, patch));
  if (patch.weight !== undefined) await forgetWeight(c.env, tenant);
  return c.json(view);
});
tenantsAdmin.get("/:tenant/keys", async (c) => c.json(await onTenant(c, tenantParam(c), "listKeys", "repeatable", (stub) => stub.listKeys())));
tenantsAdmin.post("/:tenant/keys", async (c) => {
  const tenant = tenantParam(c);
  const body = parse(CreateKeyBody, await readJson(c), "body");
  const issued = unwrap(await onTenant(c, tenant, "createKey", "once", (stub) => stub.createKey(tenant, body.name ?? "unnamed")));
  c.header("Cache-Control", "no-store");
  return c.json(issued, 201);
});
tenantsAdmin.get("/:tenant/keys/:id", async (c) => {
  const tenant = tenantParam(c);
  const id = parse(KeyId, c.req.param("id"), "path.id");
  return c.json(unwrap(await onTenant(c, tenant, "getKey", "repeatable", (stub) => stub.getKey(id))));
});
tenantsAdmin.post("/:tenant/keys/:id/rotate", async (c) => {
  const tenant = tenantParam(c);
  const id = parse(KeyId, c.req.param("id"), "path.id");
  const body = parse(RotateKeyBody, await readJson(c), "body");
  const issued = unwrap(await onTenant(c, tenant, "rotateKey", "once", (stub) => stub.rotateKey(id, body.graceSeconds ?? 0)));
  c.header("Cache-Control", "no-store");
  return c.json(issued);
});
tenantsAdmin.delete("/:tenant/keys/:id", async (c) => {
  const tenant = tenantParam(c);
  const id = parse(KeyId, c.req.param("id"), "path.id");
  return c.json(unwrap(await onTenant(c, tenant, "revokeKey", "once", (stub) => stub.revokeKey(id))));
});

