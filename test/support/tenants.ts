/**
 * Fresh tenants with managed keys, made through the admin API of the real
 * Worker: each test gets a tenant no other test touches.
 */
import { expect } from "vitest";
import { call, poolName } from "./http";

export const ADMIN = "dev-admin";

/** A fresh tenant name per call (pool names are valid tenant names, so the same generator serves). */
export function tenantName(prefix = "t"): string {
  return poolName(prefix);
}

export interface IssuedKey {
  id: string;
  key: string;
  tenant: string;
  name: string;
}

/** Creates a key for `tenant` (admin API) and returns it, secret included. */
export async function newKey(tenant: string, name = "test"): Promise<IssuedKey> {
  const reply = await call<IssuedKey>(`/v1/admin/tenants/${tenant}/keys`, { method: "POST", body: { name }, key: ADMIN });
  expect(reply.status, JSON.stringify(reply.body)).toBe(201);
  return reply.body;
}

/** A fresh tenant with one key and, if given, its own quota. */
export async function newTenant(
  prefix: string,
  quota?: { maxPools?: number | null; maxSessions?: number | null },
): Promise<{ tenant: string; key: string; keyId: string }> {
  const tenant = tenantName(prefix);
  if (quota) {
    const reply = await call(`/v1/admin/tenants/${tenant}`, { method: "PUT", body: quota, key: ADMIN });
    expect(reply.status, JSON.stringify(reply.body)).toBe(200);
  }
  const issued = await newKey(tenant);
  return { tenant, key: issued.key, keyId: issued.id };
}
