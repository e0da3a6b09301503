/**
 * Steel's clients (steel-sdk) send their API key in a `steel-api-key` header:
 * the broker takes it as it takes `Authorization: Bearer`, the same key for
 * the same tenant, and refuses a wrong one the same way.
 */
import { describe, expect, it } from "vitest";
import { call, DEV2_KEY, newPool } from "../support/http";

describe("the steel-api-key header", () => {
  it("authenticates as Authorization: Bearer does, as the key's own tenant", async () => {
    const pool = await newPool("steel-auth");
    const viaSteel = await call(`/v1/pools/${pool}`, { key: null, headers: { "steel-api-key": "dev-key" } });
    expect(viaSteel.status).toBe(200);
    expect(viaSteel.body.pool).toBe(pool);
    // Another tenant's key, sent the Steel way, does not see this tenant's pool.
    expect((await call(`/v1/pools/${pool}`, { key: null, headers: { "steel-api-key": DEV2_KEY } })).status).toBe(404);
    expect((await call(`/v1/tenant`, { key: null, headers: { "steel-api-key": DEV2_KEY } })).body.tenant).toBe("dev2");
  });

  it("refuses a wrong or empty key with 401 problem+json, and Authorization wins when both are sent", async () => {
    for (const value of ["not-a-key", "", "two words"]) {
      const reply = await call(`/v1/tenant`, { key: null, headers: { "steel-api-key": value } });
      expect({ value, status: reply.status, code: reply.body.code }).toEqual({ value, status: 401, code: "unauthorized" });
      expect(reply.headers.get("content-type")).toMatch(/application\/problem\+json/);
    }
    const both = await call(`/v1/tenant`, { key: DEV2_KEY, headers: { "steel-api-key": "dev-key" } });
    expect(both.body.tenant).toBe("dev2");
  });
});
