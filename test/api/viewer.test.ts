/**
 * The live viewer's routes through the real Worker, on real Chromium: a
 * lease's viewerUrl, minting more (interactive ones too), who may open them,
 * and the stream of the leased browser's screen that ends with the lease.
 * (Pixels seen by a person's browser: test/e2e/viewer.test.ts.)
 */
import { env, runInDurableObject, SELF } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import { connect, openPage, viaSelf } from "../support/cdp";
import { call, DEV2_KEY, newPool } from "../support/http";
import type { PoolObject } from "../../src/pool/object";
import { tokenHash } from "../../src/token";

async function lease(pool: string) {
  const reply = await call(`/v1/pools/${pool}/leases`, { method: "POST", body: { ttlSeconds: 60 } });
  expect(reply.status, JSON.stringify(reply.body)).toBe(201);
  return reply.body as { id: string; connectUrl: string; viewerUrl: string };
}

function streamRequest(viewerUrl: string): Promise<Response> {
  const url = new URL(viewerUrl);
  return SELF.fetch(`https://broker.test${url.pathname}/stream${url.search}`, { headers: { Upgrade: "websocket" } });
}

/** The status a viewer's stream is refused with (101 if it is not). */
async function streamStatus(viewerUrl: string): Promise<number> {
  const response = await streamRequest(viewerUrl);
  response.webSocket?.accept();
  response.webSocket?.close(1000, "test done");
  return response.status;
}

/** Opens a viewer's stream through the Worker; the messages it sends, as they come. */
async function openStream(viewerUrl: string) {
  const response = await streamRequest(viewerUrl);
  if (!response.webSocket) throw new Error(`stream refused: ${response.status} ${await response.text()}`);
  const socket = response.webSocket;
  socket.accept();
  const messages: any[] = [];
  const waiters: Array<() => void> = [];
  socket.addEventListener("message", (event) => {
    messages.push(JSON.parse(event.data as string));
    for (const wake of waiters.splice(0)) wake();
  });
  const closed = new Promise<{ code: number; at: number }>((resolve) => socket.addEventListener("close", (event) => resolve({ code: event.code, at: Date.now() })));
  /** Resolves with the first message (from `from` on) that `match` accepts. */
  const next = async (match: (m: any) => boolean, from = 0): Promise<any> => {
    for (;;) {
      const found = messages.slice(from).find(match);
      if (found) return found;
      await new Promise<void>((wake) => waiters.push(wake));
    }
  };
  return { socket, messages, next, closed };
}

describe("live viewer", () => {
  it("a new lease carries a viewerUrl whose page is served, uncached, for its token", async () => {
    const pool = await newPool("viewer");
    const { id, viewerUrl } = await lease(pool);
    expect(viewerUrl).toMatch(new RegExp(`^https://broker\\.test/v1/pools/${pool}/leases/${id}/viewer\\?token=`));
    const page = await SELF.fetch(viaSelf(viewerUrl));
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
    expect(page.headers.get("cache-control")).toBe("no-store");
    expect(await page.text()).toContain(`/v1/pools/${pool}/leases/${id}/viewer/stream?token=`);
    await call(`/v1/pools/${pool}/leases/${id}`, { method: "DELETE" });
  });

  it("an Idempotency-Key replay answers a new viewerUrl in place of the first (as its connectUrl); another lease's viewer token is refused", async () => {
    const pool = await newPool("viewer", { maxSessions: 2 });
    const body = { ttlSeconds: 60 };
    const headers = { "idempotency-key": `viewer-${crypto.randomUUID()}` };
    const first = await call(`/v1/pools/${pool}/leases`, { method: "POST", body, headers });
    const again = await call(`/v1/pools/${pool}/leases`, { method: "POST", body, headers });
    expect([first.status, again.status]).toEqual([201, 201]);
    expect(again.body.id).toBe(first.body.id);
    expect(again.body.viewerUrl).not.toBe(first.body.viewerUrl);
    expect((await SELF.fetch(viaSelf(again.body.viewerUrl))).status).toBe(200);
    expect((await SELF.fetch(viaSelf(first.body.viewerUrl))).status).toBe(401);

    // A token is good for its own lease only, though both are the pool's.
    const other = await lease(pool);
    const token = new URL(other.viewerUrl).searchParams.get("token")!;
    const swapped = new URL(again.body.viewerUrl);
    swapped.searchParams.set("token", token);
    expect((await SELF.fetch(viaSelf(swapped.toString()))).status).toBe(401);
    expect((await SELF.fetch(viaSelf(other.viewerUrl))).status).toBe(200);
    for (const id of [first.body.id, other.id]) await call(`/v1/pools/${pool}/leases/${id}`, { method: "DELETE" });
  });

  it("a lease granted before schema 12 keeps the viewer URL it was answered with (its token a row of viewers)", async () => {
    const pool = await newPool("viewer");
    const { id, viewerUrl } = await lease(pool);
    const token = new URL(viewerUrl).searchParams.get("token")!;
    // As a version-11 pool wrote it: no viewer_hash in the lease's row, the token's hash in `viewers`.
    await runInDurableObject(env.POOL.get(env.POOL.idFromName(`dev/${pool}`)), (_object: PoolObject, state) => {
      state.storage.sql.exec(`UPDATE leases SET viewer_hash = NULL WHERE id = ?`, id);
      state.storage.sql.exec(`INSERT INTO viewers (token_hash, lease_id, interactive, created_at) VALUES (?, ?, 0, 0)`, tokenHash(token), id);
    });
    expect((await SELF.fetch(viaSelf(viewerUrl))).status).toBe(200);
    await call(`/v1/pools/${pool}/leases/${id}`, { method: "DELETE" });
  });

  it("mints another viewer URL, interactive or not, with the lease's expiry", async () => {
    const pool = await newPool("viewer");
    const { id } = await lease(pool);
    const minted = await call(`/v1/pools/${pool}/leases/${id}/viewer`, { method: "POST", body: { interactive: true } });
    expect(minted.status).toBe(201);
    expect(minted.body).toMatchObject({ interactive: true, expiresAt: expect.any(String) });
    const plain = await call(`/v1/pools/${pool}/leases/${id}/viewer`, { method: "POST", body: {} });
    expect(plain.body.interactive).toBe(false);
    expect(plain.body.viewerUrl).not.toBe(minted.body.viewerUrl);
    expect((await SELF.fetch(viaSelf(minted.body.viewerUrl))).status).toBe(200);
    const bad = await call(`/v1/pools/${pool}/leases/${id}/viewer`, { method: "POST", body: { interactive: "yes" } });
    expect(bad.status).toBe(400);
    expect(bad.headers.get("content-type")).toMatch(/application\/problem\+json/);
    await call(`/v1/pools/${pool}/leases/${id}`, { method: "DELETE" });
  });

  it("refuses forged, missing, other tenants' and ended tokens with problem+json, and never streams for them", async () => {
    const pool = await newPool("viewer");
    const { id, viewerUrl, connectUrl } = await lease(pool);
    const url = new URL(viewerUrl);
    const token = url.searchParams.get("token")!;
    const forged = `${token.split(".")[0]}.${"A".repeat(43)}`;
    const at = (t: string | null) => `https://broker.test${url.pathname}${t === null ? "" : `?token=${t}`}`;
    const refused = async (target: string, status: number, code: string) => {
      const reply = await SELF.fetch(target);
      expect(reply.status).toBe(status);
      expect(reply.headers.get("content-type")).toMatch(/application\/problem\+json/);
      expect((await reply.json<{ code: string }>()).code).toBe(code);
    };
    await refused(at(forged), 401, "unauthorized");
    await refused(at(null), 401, "unauthorized");
    // The lease's connect token is not a viewer token.
    await refused(at(new URL(connectUrl).searchParams.get("token")), 401, "unauthorized");
    // Another tenant's viewer token names a tenant that has no such pool.
    const otherPool = await newPool("viewer", {}, DEV2_KEY);
    const other = await call(`/v1/pools/${otherPool}/leases`, { method: "POST", body: {}, key: DEV2_KEY });
    await refused(at(new URL(other.body.viewerUrl).searchParams.get("token")), 404, "not_found");
    expect(await streamStatus(`https://broker.test${url.pathname}?token=${forged}`)).toBe(401);
    await call(`/v1/pools/${pool}/leases/${id}`, { method: "DELETE" });
    await refused(at(token), 409, "lease_not_active");
    expect(await streamStatus(viewerUrl)).toBe(409);
    await call(`/v1/pools/${otherPool}/leases/${other.body.id}`, { method: "DELETE", key: DEV2_KEY });
  });

  it("a viewer is not the lessee: a lease only watched ends not_connected at connectWithinSeconds", async () => {
    const pool = await newPool("viewer", { connectWithinSeconds: 2 });
    const { id, viewerUrl } = await lease(pool);
    const stream = await openStream(viewerUrl);
    await stream.next((m) => m.type === "frame");
    // Nobody connected to connectUrl: the alarm ends the lease, and with it the viewer.
    const ended = await stream.closed;
    expect(ended.code).toBe(4001);
    const after = await call(`/v1/pools/${pool}/leases/${id}`);
    expect(after.body).toMatchObject({ status: "released", endReason: "not_connected" });
  });

  it("streams the leased browser's screen and its tabs, and stops within 1 s of the lease's release", async () => {
    const pool = await newPool("viewer");
    const { id, connectUrl, viewerUrl } = await lease(pool);
    const cdp = await connect(connectUrl);
    await openPage(cdp, "<title>watched</title><body style='background:#0a0'>watched</body>");
    const stream = await openStream(viewerUrl);
    const started = Date.now();
    const frame = await stream.next((m) => m.type === "frame");
    expect(frame.data.length).toBeGreaterThan(100);
    console.log(`viewer: first frame ${Date.now() - started} ms after the stream opened`);
    const tabs = await stream.next((m) => m.type === "tabs" && m.tabs.some((t: any) => t.title === "watched"));
    expect(tabs.tabs.length).toBeGreaterThan(0);
    // A viewer is not the lessee: it has its own budget, and the lessee's connection still works.
    expect((await cdp.send("Browser.getVersion")).product).toBeTruthy();

    const release = Date.now();
    await call(`/v1/pools/${pool}/leases/${id}`, { method: "DELETE" });
    const ended = await stream.closed;
    expect(ended.code).toBe(4001);
    expect(ended.at - release).toBeLessThan(1_000);
    expect(stream.messages.some((m) => m.type === "state" && m.state === "ended")).toBe(true);
  });
});

describe("recordings", () => {
  it("a lease acquired with record replays its frames in order, with its journal, after release; a deleted pool's recordings go with it", async () => {
    const pool = await newPool("recorded");
    const created = await call(`/v1/pools/${pool}/leases`, { method: "POST", body: { ttlSeconds: 60, record: true } });
    expect(created.status).toBe(201);
    const { id, connectUrl } = created.body as { id: string; connectUrl: string };
    const cdp = await connect(connectUrl);
    await openPage(cdp, "<body style='background:#00a'>recorded</body>");
    // While the lease is active there is nothing to replay yet.
    expect((await call(`/v1/pools/${pool}/leases/${id}/recording`)).body.code).toBe("recording_in_progress");
    // Frames are flushed to R2 as they come (every 5 s at the latest): wait for the first chunk.
    const prefix = `recordings/dev/${pool}/${id}/`;
    await vi.waitFor(async () => expect((await env.RECORDINGS.list({ prefix })).objects.length).toBeGreaterThan(0), { timeout: 10_000, interval: 100 });
    const released = await call(`/v1/pools/${pool}/leases/${id}`, { method: "DELETE" });
    expect(released.status, JSON.stringify(released.body)).toBe(200);

    // The recorder finishes the recording (its manifest) just after the release.
    const replay = await vi.waitFor(
      async () => {
        const answer = await call(`/v1/pools/${pool}/leases/${id}/recording`, { headers: { accept: "application/json" } });
        expect(answer.status).toBe(200);
        return answer;
      },
      { timeout: 5_000, interval: 100 },
    );
    const { manifest, frames } = replay.body as { manifest: { frames: number; events: { event: string }[] }; frames: { t: number; data: string }[] };
    expect(frames.length).toBeGreaterThan(0);
    expect(frames.length).toBe(manifest.frames);
    for (let i = 1; i < frames.length; i += 1) expect(frames[i]!.t).toBeGreaterThan(frames[i - 1]!.t);
    expect(manifest.events.map((e) => e.event)).toEqual(expect.arrayContaining(["granted", "released"]));
    const page = await SELF.fetch(`https://broker.test/v1/pools/${pool}/leases/${id}/recording`, { headers: { authorization: "Bearer dev-key" } });
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
    await page.body?.cancel();

    // The released browser is being reset for a moment (the pool refuses deletion while it is in use: 409 pool_busy).
    await vi.waitFor(async () => expect((await call(`/v1/pools/${pool}`, { method: "DELETE" })).status).toBe(200), { timeout: 20_000, interval: 250 });
    await vi.waitFor(async () => expect((await env.RECORDINGS.list({ prefix })).objects).toEqual([]), { timeout: 10_000 });
  });
});
