/**
 * Real Chromium killed behind the pool's back (over its own DevTools socket:
 * `Browser.crash`, as good as a kill -9): dead idle browsers are never handed
 * out, and a connect the browser refuses ends the lease instead of leaving it
 * active on a dead browser.
 */
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { ALIVE_BYPASS_MS } from "../../src/pool/machine";
import type { PoolObject } from "../../src/pool/object";
import type { PoolStore } from "../../src/pool/store";
import { effectsDone, until } from "../support/api";
import { tryConnect } from "../support/cdp";
import { crashBrowser } from "../support/crash";
import { call, newPool } from "../support/http";
import { poolStub } from "../support/pool";

const idleSessions = (pool: string) =>
  runInDurableObject(poolStub("dev", pool), (object: PoolObject) =>
    (object as unknown as { db: PoolStore }).db.sessionsIn("idle").map((s) => s.session_id!),
  );

describe("dead idle browsers", () => {
  it("minIdle 2, both idle Chromium processes killed: two acquires and two connects both work", async () => {
    const pool = await newPool("borrow", { maxSessions: 3, minIdle: 2 });
    await until("dev", pool, (view) => view.counts.idle === 2, 2_000);
    const dead = await idleSessions(pool);
    for (const sessionId of dead) await crashBrowser(sessionId);
    // Their last proof of life is now older than the bypass window (the pool's clock, moved, not slept).
    await runInDurableObject(poolStub("dev", pool), (object: PoolObject) => {
      object.clock = () => Date.now() + ALIVE_BYPASS_MS + 1_000;
    });

    const leases = [];
    for (let i = 0; i < 2; i += 1) {
      const reply = await call(`/v1/pools/${pool}/leases`, { method: "POST", body: {} });
      expect(reply.status, JSON.stringify(reply.body)).toBe(201);
      expect(dead).not.toContain(reply.body.sessionId);
      leases.push(reply.body);
    }
    for (const lease of leases) {
      const { status, cdp } = await tryConnect(lease.connectUrl);
      expect(status).toBe(101);
      const version = await cdp!.send<{ product: string }>("Browser.getVersion");
      expect(version.product).toMatch(/Chrome/);
      cdp!.socket.close(1000, "done");
      expect((await call(`/v1/pools/${pool}/leases/${lease.id}`, { method: "DELETE" })).status).toBe(200);
    }
    await effectsDone("dev", pool);
    const events = await Promise.all(leases.map((l) => call(`/v1/pools/${pool}/leases/${l.id}/events`)));
    // The first acquire found both dead (checked, closed) before it launched.
    expect(events[0]!.body.events.map((e: { event: string }) => e.event)).toEqual(expect.arrayContaining(["check_started", "launch_reserved", "granted"]));
  });
});

describe("a connect the browser refuses", () => {
  it("ends the lease with browser_gone (502) once the platform confirms the browser is gone", async () => {
    const pool = await newPool("refused", { maxSessions: 1 });
    const acquired = await call(`/v1/pools/${pool}/leases`, { method: "POST", body: {} });
    expect(acquired.status).toBe(201);
    await crashBrowser(acquired.body.sessionId);
    const refused = await tryConnect(acquired.body.connectUrl);
    expect(refused.status).toBe(502);
    expect(refused.body).toMatchObject({ code: "browser_gone" });
    const lease = await call(`/v1/pools/${pool}/leases/${acquired.body.id}`);
    expect(lease.body).toMatchObject({ status: "failed", endReason: "browser_gone" });
    // Its slot is free: the next caller gets a new browser at once.
    const next = await call(`/v1/pools/${pool}/leases`, { method: "POST", body: {} });
    expect(next.status).toBe(201);
    expect(next.body.sessionId).not.toBe(acquired.body.sessionId);
    await call(`/v1/pools/${pool}/leases/${next.body.id}`, { method: "DELETE" });
  });
});
