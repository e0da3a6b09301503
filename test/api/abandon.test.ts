/**
 * A lease granted after its caller's request was aborted is given back by the
 * Worker at once (the connect token never left the Worker), and `waitSeconds: 0`
 * right after a release-all is served by the sessions being reset. Real
 * Chromium; the Worker is called with a request whose signal the test aborts
 * (locally a client's disconnect never fires `request.signal`, so the test
 * drives it, as production's enable_request_signal would).
 */
import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import worker from "../../src/index";
import { effectsDone, until } from "../support/api";
import { call, DEV_KEY, newPool } from "../support/http";
import { injectFaults } from "./stub-faults";

let restore: (() => void) | undefined;
afterEach(() => {
  restore?.();
  restore = undefined;
});

describe("a caller that gave up", () => {
  it("is granted after its request was aborted: the Worker releases the lease (abandoned) and its browser serves the next caller", async () => {
    const pool = await newPool("gaveup", { maxSessions: 1 });
    const holder = await call(`/v1/pools/${pool}/leases`, { method: "POST", body: {} });
    expect(holder.status).toBe(201);
    // The cancel the abort sends is lost on its way (it races the grant, and loses).
    const cancel = { kind: "pool" as const, name: `dev/${pool}`, method: "cancel", times: 1, answer: () => false };
    const faults = injectFaults(cancel);
    restore = faults.restore;

    const controller = new AbortController();
    const ctx = createExecutionContext();
    const answer = worker.fetch!(
      new Request(`https://broker.test/v1/pools/${pool}/leases`, {
        method: "POST",
        headers: { authorization: `Bearer ${DEV_KEY}`, "content-type": "application/json" },
        body: JSON.stringify({ waitSeconds: 30 }),
        signal: controller.signal,
      }) as Request<unknown, IncomingRequestCfProperties>,
      env,
      ctx,
    );
    await until("dev", pool, (view) => view.counts.waiting === 1);
    controller.abort();
    expect(await call(`/v1/pools/${pool}/leases/${holder.body.id}`, { method: "DELETE" })).toMatchObject({ status: 200 });

    const response = await answer;
    expect(response.status).toBe(409);
    await waitOnExecutionContext(ctx);
    expect(faults.calls(cancel)).toBe(1);
    const released = await call(`/v1/pools/${pool}/leases?status=released`);
    const abandoned = released.body.leases.find((l: { id: string }) => l.id !== holder.body.id);
    expect(abandoned).toMatchObject({ status: "released", endReason: "abandoned", sessionId: holder.body.sessionId });
    await effectsDone("dev", pool);
    const next = await call(`/v1/pools/${pool}/leases`, { method: "POST", body: {} });
    expect(next.status).toBe(201);
    expect(next.body.sessionId).toBe(holder.body.sessionId);
    await call(`/v1/pools/${pool}/leases/${next.body.id}`, { method: "DELETE" });
  });
});

describe("waitSeconds 0 right after a release-all", () => {
  it("is served by the sessions being reset, not refused while the broker cleans up", async () => {
    const pool = await newPool("resetting", { maxSessions: 2 });
    const leases = [];
    for (let i = 0; i < 2; i += 1) leases.push((await call(`/v1/pools/${pool}/leases`, { method: "POST", body: {} })).body);
    expect((await call(`/v1/pools/${pool}/leases`, { method: "DELETE" })).body).toEqual({ released: 2 });
    // At once, while both browsers are being reset: to a user the pool is empty.
    const replies = await Promise.all([0, 1].map(() => call(`/v1/pools/${pool}/leases`, { method: "POST", body: { waitSeconds: 0 } })));
    expect(replies.map((r) => r.status)).toEqual([201, 201]);
    expect(replies.map((r) => r.body.sessionId).sort()).toEqual(leases.map((l) => l.sessionId).sort());
    for (const reply of replies) await call(`/v1/pools/${pool}/leases/${reply.body.id}`, { method: "DELETE" });
  });
});
