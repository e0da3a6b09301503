import { describe, expect, it } from "vitest";
import { call, poolName } from "../support/http";

describe("smoke", () => {
  it("acquires and releases a real browser", async () => {
    const pool = poolName();
    const t0 = Date.now();
    const acquired = await call(`/v1/pools/${pool}/leases`, { method: "POST", body: { ttlSeconds: 30 } });
    console.log("acquire ms", Date.now() - t0, JSON.stringify(acquired.body));
    expect(acquired.status).toBe(201);
    const released = await call(`/v1/pools/${pool}/leases/${acquired.body.id}`, { method: "DELETE" });
    expect(released.body.status).toBe("released");
    const info = await call(`/v1/pools/${pool}`);
    console.log(JSON.stringify(info.body));
  });
});
