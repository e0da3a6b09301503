/**
 * The incident, over HTTP with real Chromium: 50 callers that will not wait
 * race for a pool of 2. Exactly two get a browser, each a different one, and
 * the other 48 are told to come back; nothing is left reserved.
 */
import { describe, expect, it } from "vitest";
import { describePool, expectConsistent, liveBrowsers, effectsDone } from "../support/api";
import { call, poolName } from "../support/http";

describe("50 concurrent acquires on a pool of 2", () => {
  it("grants exactly 2 distinct browsers, refuses 48 with 429 pool_exhausted, and leaves no reservation behind", async () => {
    const name = poolName("burst");
    await call(`/v1/pools/${name}`, { method: "PUT", body: { maxSessions: 2 } });
    const replies = await Promise.all(
      Array.from({ length: 50 }, () => call(`/v1/pools/${name}/leases`, { method: "POST", body: { ttlSeconds: 60 } })),
    );

    const granted = replies.filter((r) => r.status === 201);
    const refused = replies.filter((r) => r.status === 429);
    expect(granted).toHaveLength(2);
    expect(refused).toHaveLength(48);
    for (const r of refused) {
      expect(r.body.code).toBe("pool_exhausted");
      expect(Number(r.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    }
    const sessions = granted.map((r) => r.body.sessionId);
    expect(new Set(sessions).size).toBe(2);
    const live = await liveBrowsers();
    for (const id of sessions) expect(live).toContain(id);

    expect((await describePool("dev", name)).counts).toEqual({ launching: 0, idle: 0, leased: 2, resetting: 0, closing: 0, waiting: 0 });
    await expectConsistent("dev", name);

    await call(`/v1/pools/${name}`, { method: "PUT", body: { reuse: false } });
    expect((await call(`/v1/pools/${name}/leases`, { method: "DELETE" })).body).toEqual({ released: 2 });
    await effectsDone("dev", name);
    const after = await liveBrowsers();
    for (const id of sessions) expect(after).not.toContain(id);
  });
});
