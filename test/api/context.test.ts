/**
 * A lease's browser state through the Worker, with real Chromium: `context`
 * on acquire is in the browser before the lease is answered, `GET …/context`
 * reads the live browser, a reused browser carries nothing into the next
 * lease, and bad or oversized states are refused before any lease exists.
 * Steel's `sessionContext` and `GET /v1/sessions/{id}/context` are the same
 * engine in Steel's shape.
 */
import { describe, expect, it } from "vitest";
import { MAX_STATE_BYTES } from "../../src/browser/state";
import { call, DEV2_KEY, newPool } from "../support/http";

const CONTEXT = {
  cookies: [
    { name: "session", value: "s3cr3t", domain: "shop.example", path: "/", secure: true },
    { name: "theme", value: "dark", url: "https://shop.example/" },
  ],
  localStorage: { "https://shop.example": { cart: "3 items" } },
};

const names = (state: { cookies: { name: string; value: string }[] }) => state.cookies.map((c) => `${c.name}=${c.value}`).sort();

describe("context on acquire, GET …/context", () => {
  it("applies the context before answering, reads it back, and the next lease on the same browser starts empty", async () => {
    const pool = await newPool("ctx", { maxSessions: 1 });
    const first = await call(`/v1/pools/${pool}/leases`, { method: "POST", body: { context: CONTEXT } });
    expect(first.status, JSON.stringify(first.body)).toBe(201);
    const read = await call(`/v1/pools/${pool}/leases/${first.body.id}/context`);
    expect(read.status, JSON.stringify(read.body)).toBe(200);
    expect(names(read.body)).toEqual(["session=s3cr3t", "theme=dark"]);
    expect(read.body.localStorage).toEqual({ "https://shop.example": { cart: "3 items" } });
    // Another tenant cannot read it.
    expect((await call(`/v1/pools/${pool}/leases/${first.body.id}/context`, { key: DEV2_KEY })).status).toBe(404);

    expect((await call(`/v1/pools/${pool}/leases/${first.body.id}`, { method: "DELETE" })).status).toBe(200);
    const ended = await call(`/v1/pools/${pool}/leases/${first.body.id}/context`);
    expect(ended.status).toBe(409);
    expect(ended.body.code).toBe("lease_not_active");

    // The same browser (maxSessions 1), reset: none of the first lease's state.
    const second = await call(`/v1/pools/${pool}/leases`, { method: "POST", body: { waitSeconds: 30 } });
    expect(second.status).toBe(201);
    expect(second.body.sessionId).toBe(first.body.sessionId);
    const after = await call(`/v1/pools/${pool}/leases/${second.body.id}/context`);
    expect(after.body).toEqual({ cookies: [], localStorage: {} });
    await call(`/v1/pools/${pool}/leases/${second.body.id}`, { method: "DELETE" });
  });

  it("refuses a bad state by field, and an oversized one with 413, before any lease exists", async () => {
    const pool = await newPool("ctx-bad", { maxSessions: 1 });
    const cases: [unknown, string][] = [
      [{ localStorage: { "shop.example": { a: "1" } } }, "body.context.localStorage"],
      [{ cookies: [{ name: "a", value: "1" }] }, "body.context.cookies.0"],
      [{ sessionStorage: { "https://shop.example": { a: "1" } } }, "body.context.sessionStorage"],
      [{ indexedDB: { "https://shop.example": [{}] } }, "body.context.indexedDB"],
    ];
    for (const [context, field] of cases) {
      const refused = await call(`/v1/pools/${pool}/leases`, { method: "POST", body: { context } });
      expect(refused.status, JSON.stringify(refused.body)).toBe(400);
      expect(refused.body.detail).toContain(field);
    }
    const huge = { localStorage: { "https://shop.example": { blob: "x".repeat(MAX_STATE_BYTES) } } };
    const tooLarge = await call(`/v1/pools/${pool}/leases`, { method: "POST", body: { context: huge } });
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.body.code).toBe("payload_too_large");
    const listed = await call(`/v1/pools/${pool}/leases`);
    expect(listed.body.leases).toEqual([]);
  });

  it("releases the lease and answers 502 context_failed when the browser refuses the state", async () => {
    const pool = await newPool("ctx-fail", { maxSessions: 1 });
    // Chromium refuses a cookie whose name has a ';' in it.
    const refused = await call(`/v1/pools/${pool}/leases`, { method: "POST", body: { context: { cookies: [{ name: "a;b", value: "1", domain: "shop.example" }] } } });
    expect(refused.status, JSON.stringify(refused.body)).toBe(502);
    expect(refused.body.code).toBe("context_failed");
    const leases = await call(`/v1/pools/${pool}/leases`);
    expect(leases.body.leases.map((l: { status: string }) => l.status)).toEqual(["released"]);
  });
});

describe("Steel's sessionContext and GET /v1/sessions/{id}/context", () => {
  const steel = { key: null, headers: { "steel-api-key": "dev-key" } };

  it("starts a session with the context and reads it back in Steel's shape", async () => {
    const namespace = await newPool("steel-ctx", { maxSessions: 1 });
    const created = await call("/v1/sessions", { method: "POST", body: { namespace, sessionContext: CONTEXT }, ...steel });
    expect(created.status, JSON.stringify(created.body)).toBe(200);
    const read = await call(`/v1/sessions/${created.body.id}/context?namespace=${namespace}`, steel);
    expect(read.status).toBe(200);
    expect(names(read.body)).toEqual(["session=s3cr3t", "theme=dark"]);
    expect(read.body).toMatchObject({ localStorage: { "https://shop.example": { cart: "3 items" } }, sessionStorage: {}, indexedDB: {} });
    expect((await call(`/v1/sessions/${created.body.id}/context?namespace=${namespace}`, { key: null, headers: { "steel-api-key": DEV2_KEY } })).status).toBe(404);
    await call(`/v1/sessions/${created.body.id}/release?namespace=${namespace}`, { method: "POST", ...steel });
  });
});
