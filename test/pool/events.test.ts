/**
 * Every committed journal row is published: a JSON log line (Workers Logs) and
 * an Analytics Engine data point (the shell drops the rows of a transaction
 * that rolled back, with the store's cache).
 */
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { PoolObject } from "../../src/pool/object";
import { logged } from "../support/logs";
import { faultPool } from "../support/pool";

describe("lifecycle events", () => {
  it("are logged as JSON with pool, tenant, lease and duration, and written to Analytics Engine", async () => {
    const pool = await faultPool({ maxSessions: 1 });
    const points: AnalyticsEngineDataPoint[] = [];
    await runInDurableObject(pool.stub, (object: PoolObject) => {
      const env = (object as unknown as { env: Env }).env;
      (object as unknown as { env: Env }).env = {
        ...env,
        EVENT_LOGS: "all",
        EVENTS: { writeDataPoint: (point?: AnalyticsEngineDataPoint) => void points.push(point!) },
      };
    });
    let leaseId = "";
    const lines = await logged(async () => {
      const acquired = await pool.acquire({ ttlSeconds: 60 });
      if (!acquired.ok) throw new Error(acquired.failure.detail);
      leaseId = acquired.value.lease.id;
      pool.clock.now += 1_500;
      await pool.stub.release(leaseId);
      await pool.effectsDone();
    });
    const mine = lines.filter((l) => l.lease === leaseId);
    expect(mine.map((l) => l.event)).toEqual(["requested", "launch_reserved", "launched", "granted", "released"]);
    for (const line of mine) expect(line).toMatchObject({ tenant: pool.tenant, pool: pool.name });
    expect(mine.find((l) => l.event === "released")).toMatchObject({ durationMs: 1_500, heldMs: 1_500 });

    const events = points.map((p) => p.blobs?.[2]);
    expect(events).toEqual(expect.arrayContaining(["requested", "launch_reserved", "launched", "granted", "released", "reset"]));
    const released = points.find((p) => p.blobs?.[2] === "released")!;
    expect(released).toMatchObject({ indexes: [`${pool.tenant}/${pool.name}`], blobs: [pool.tenant, pool.name, "released", leaseId, ""], doubles: [1_500, expect.any(Number)] });
  });

  it("with EVENT_LOGS=problems, only problems are logged", async () => {
    const pool = await faultPool({ maxSessions: 1 });
    await runInDurableObject(pool.stub, (object: PoolObject) => {
      const env = (object as unknown as { env: Env }).env;
      (object as unknown as { env: Env }).env = { ...env, EVENT_LOGS: "problems" as "all" };
    });
    const lines = await logged(async () => {
      const acquired = await pool.acquire({ ttlSeconds: 1 });
      if (!acquired.ok) throw new Error(acquired.failure.detail);
      await pool.advance(1_000);
      await pool.effectsDone();
    });
    const events = lines.filter((l) => l.pool === pool.name).map((l) => l.event);
    expect(events).toContain("expired");
    expect(events).not.toContain("granted");
    expect(events).not.toContain("requested");
  });
});
