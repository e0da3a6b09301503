/**
 * Tenants are isolated: a key only ever reaches its own tenant's pools. Another
 * tenant's lease answers 404 (never 403, which would confirm it exists), is
 * never listed, and nothing another tenant does touches it.
 */
import { describe, expect, it } from "vitest";
import { describePool, expectConsistent } from "../support/api";
import { call, DEV2_KEY, poolName } from "../support/http";

describe("tenant isolation", () => {
  it("dev2 cannot see, renew, release or release-all dev's lease in a pool of the same name", async () => {
    const name = poolName("shared-name");
    const mine = await call(`/v1/pools/${name}/leases`, { method: "POST", body: { ttlSeconds: 60 } });
    expect(mine.status).toBe(201);
    const path = `/v1/pools/${name}/leases/${mine.body.id}`;
    const asDev2 = { key: DEV2_KEY };

    for (const reply of [
      await call(path, asDev2),
      await call(`${path}/renew`, { ...asDev2, method: "POST" }),
      await call(path, { ...asDev2, method: "DELETE" }),
    ]) {
      expect(reply.status).toBe(404);
      expect(reply.body.code).toBe("not_found");
      expect(JSON.stringify(reply.body)).not.toContain(mine.body.sessionId);
    }
    // dev2 has no pool of that name at all: nothing to describe, list or release.
    for (const reply of [
      await call(`/v1/pools/${name}`, asDev2),
      await call(`/v1/pools/${name}/leases`, asDev2),
      await call(`/v1/pools/${name}/leases`, { ...asDev2, method: "DELETE" }),
    ]) {
      expect(reply.status).toBe(404);
      expect(reply.body.code).toBe("not_found");
    }

    // dev's lease is untouched, still active with its expiry unchanged.
    const after = await call(path);
    expect(after.body).toMatchObject({ status: "active", expiresAt: mine.body.expiresAt });
    expect((await describePool("dev", name)).counts.leased).toBe(1);

    // A pool of the same name for dev2 is a different pool with its own browsers.
    const theirs = await call(`/v1/pools/${name}/leases`, { ...asDev2, method: "POST" });
    expect(theirs.status).toBe(201);
    expect(theirs.body.sessionId).not.toBe(mine.body.sessionId);
    expect((await call(`/v1/pools/${name}/leases`)).body.leases.map((l: { id: string }) => l.id)).toEqual([mine.body.id]);
    expect((await call(`/v1/pools/${name}/leases/${theirs.body.id}`)).status).toBe(404);

    for (const [key, tenant] of [[undefined, "dev"], [DEV2_KEY, "dev2"]] as const) {
      expect((await call(`/v1/pools/${name}/leases`, { key, method: "DELETE" })).body).toEqual({ released: 1 });
      await expectConsistent(tenant, name);
    }
  });

  it("dev2's pool configuration does not change dev's pool", async () => {
    const name = poolName("cfg");
    await call(`/v1/pools/${name}`, { method: "PUT", body: { maxSessions: 4 } });
    await call(`/v1/pools/${name}`, { key: DEV2_KEY, method: "PUT", body: { maxSessions: 1 } });
    expect((await call(`/v1/pools/${name}`)).body.config.maxSessions).toBe(4);
    expect((await call(`/v1/pools/${name}`, { key: DEV2_KEY })).body.config.maxSessions).toBe(1);
  });
});
