/**
 * The lease recorder (src/recorder): a real Chromium screencast kept in the
 * Miniflare R2 bucket, the replay route, the retention and the pool's
 * deletion of its recordings.
 */
import puppeteer, { type Browser } from "@cloudflare/puppeteer";
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_RECORDING_FPS, type LeaseRecorder, type RecordingManifest, SAFETY_MS } from "../../src/recorder/object";
import { chunkKey, deleteRecordings, leasePrefix, manifestKey, type RecordedFrame } from "../../src/recorder/store";
import { recorderOf } from "../../src/stubs";
import { call, DEV2_KEY, newPool, poolName } from "../support/http";

const ADMIN = "dev-admin";

/** A page whose colour changes every 100 ms for 3 s, then stays: Chromium repaints far faster than the recording keeps. */
const CHANGING_PAGE = `<html><body style="margin:0;height:100vh;background:#000"><script>
  const colours = ["#c00", "#0c0", "#00c", "#cc0", "#0cc", "#c0c"];
  let n = 0;
  const timer = setInterval(() => { document.body.style.background = colours[n++ % colours.length]; if (n >= 30) clearInterval(timer); }, 100);
</script></body></html>`;

async function listKeys(prefix: string): Promise<string[]> {
  const page = await env.RECORDINGS.list({ prefix });
  return page.objects.map((o) => o.key);
}

/** Polls `look` until it answers true, at most `ms` (a deadline, not a sleep standing in for a signal). */
async function within(ms: number, what: string, look: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await look())) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${ms} ms`);
    await scheduler.wait(100);
  }
}

/** A recorder whose clock the test moves. */
async function recorderWithClock(tenant: string, pool: string, lease: string) {
  const stub = recorderOf(env, tenant, pool, lease);
  const clock = { now: Date.now() };
  await runInDurableObject(stub, (object: LeaseRecorder) => {
    object.clock = () => clock.now;
  });
  return { stub, clock };
}

describe("a recorded lease's browser", () => {
  let browser: Browser;
  let sessionId: string;

  beforeAll(async () => {
    browser = await puppeteer.launch(env.BROWSER, { keep_alive: 60_000 });
    sessionId = browser.sessionId();
  });

  afterAll(async () => {
    await browser?.close();
  });

  it("is screencast into R2 chunks at no more than RECORDING_FPS, with strictly increasing frame times", async () => {
    const pool = poolName("rec");
    const lease = crypto.randomUUID();
    const recorder = recorderOf(env, "dev", pool, lease);
    const [page] = await browser.pages();
    await page!.setContent("<html><body style='background:#fff'></body></html>");
    const startedAt = Date.now();
    await recorder.start({ tenant: "dev", pool, leaseId: lease, sessionId, startedAt });
    // A repeated start is a no-op while the screencast runs.
    await recorder.start({ tenant: "dev", pool, leaseId: lease, sessionId, startedAt });
    expect((await recorder.status())?.capturing).toBe(true);
    await page!.setContent(CHANGING_PAGE);
    // The first chunk is written after CHUNK_MS (5 s) or 20 frames, whichever first.
    await within(15_000, "a chunk flushed to R2", async () => ((await recorder.status())?.chunks ?? 0) >= 1);
    expect(await listKeys(leasePrefix("dev", pool, lease))).toContain(chunkKey("dev", pool, lease, 1));

    const endedAt = Date.now();
    const events = [
      { at: new Date(startedAt).toISOString(), event: "granted" },
      { at: new Date(endedAt).toISOString(), event: "released", detail: { by: "test" } },
    ];
    const manifest = (await recorder.stop(events, endedAt))!;
    expect(manifest).toMatchObject({ tenant: "dev", pool, lease, startedAt, endedAt, fps: DEFAULT_RECORDING_FPS, truncated: false, events });
    expect(manifest.frames).toBeGreaterThan(0);
    // Stopped is stopped: the same manifest again, and the screencast is over.
    expect(await recorder.stop([], Date.now())).toEqual(manifest);
    expect((await recorder.status())?.capturing).toBe(false);

    const stored = (await (await env.RECORDINGS.get(manifestKey("dev", pool, lease)))!.json()) as RecordingManifest;
    expect(stored).toEqual(manifest);
    const frames: RecordedFrame[] = [];
    for (let n = 1; n <= manifest.chunks; n += 1) {
      const chunk = (await (await env.RECORDINGS.get(chunkKey("dev", pool, lease, n)))!.json()) as { frames: RecordedFrame[] };
      frames.push(...chunk.frames);
    }
    expect(frames.length).toBe(manifest.frames);
    expect(frames.reduce((sum, f) => sum + f.data.length, 0)).toBe(manifest.bytes);
    for (let i = 1; i < frames.length; i += 1) expect(frames[i]!.t).toBeGreaterThan(frames[i - 1]!.t);
    // Paced: kept frames are at least 1000/fps apart (10 % for timer slack), except the one kept at stop
    // (what the screen showed then); so never more than fps a second over the recording.
    const interval = 1000 / DEFAULT_RECORDING_FPS;
    const gaps = frames.slice(1, -1).map((f, i) => f.t - frames[i]!.t);
    for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(interval * 0.9);
    const seconds = (frames[frames.length - 1]!.t - frames[0]!.t) / 1000;
    expect(frames.length - 1).toBeLessThanOrEqual(seconds * DEFAULT_RECORDING_FPS + 1);
    console.log(
      JSON.stringify({
        measured: "recording",
        frames: frames.length,
        seconds: Number(seconds.toFixed(2)),
        fps: Number(((frames.length - 1) / seconds).toFixed(2)),
        bytesPerFrame: Math.round(manifest.bytes / manifest.frames),
        chunks: manifest.chunks,
      }),
    );
  });

  it("stops keeping frames at RECORDING_MAX_BYTES and says the recording is truncated", async () => {
    const pool = poolName("rec-full");
    const lease = crypto.randomUUID();
    const recorder = recorderOf(env, "dev", pool, lease);
    // Room for a few frames of this page at most.
    await runInDurableObject(recorder, (object: LeaseRecorder) => {
      object.maxBytes = 8_000;
    });
    const own = await puppeteer.launch(env.BROWSER, { keep_alive: 60_000 });
    const [page] = await own.pages();
    await page!.setContent("<html><body style='background:#fff'></body></html>");
    await recorder.start({ tenant: "dev", pool, leaseId: lease, sessionId: own.sessionId(), startedAt: Date.now() });
    // Chromium sends frames only as the page repaints: a page that keeps changing, once the screencast runs.
    await page!.setContent(`<html><body style="margin:0;height:100vh"><script>
      let n = 0;
      setInterval(() => { document.body.style.background = "hsl(" + (n++ * 47) % 360 + ",80%,50%)"; }, 100);
    </script></body></html>`);
    await within(15_000, "the bound reached", async () => (await recorder.status())?.capturing === false);
    const manifest = (await recorder.stop([], Date.now()))!;
    expect(manifest.truncated).toBe(true);
    expect(manifest.bytes).toBeLessThanOrEqual(8_000);
    expect(manifest.frames).toBeGreaterThan(0);
    await own.close();
  });

  it("keeps what it captured when the browser goes away first, and waits for stop", async () => {
    const own = await puppeteer.launch(env.BROWSER, { keep_alive: 60_000 });
    const pool = poolName("rec-gone");
    const lease = crypto.randomUUID();
    const recorder = recorderOf(env, "dev", pool, lease);
    const [page] = await own.pages();
    await page!.setContent(CHANGING_PAGE);
    await recorder.start({ tenant: "dev", pool, leaseId: lease, sessionId: own.sessionId(), startedAt: Date.now() });
    await within(10_000, "a frame kept", async () => ((await recorder.status())?.buffered ?? 0) >= 1);
    await own.close();
    await within(10_000, "the recorder seeing the browser gone", async () => (await recorder.status())?.capturing === false);
    expect((await recorder.status())?.state).toBe("recording");
    const manifest = (await recorder.stop([], Date.now()))!;
    expect(manifest.frames).toBeGreaterThan(0);
    expect(manifest.chunks).toBeGreaterThan(0);
  });
});

describe("the replay route", () => {
  /** A made-up lease's recording, written into R2 directly: three frames in two chunks, and two journal events. */
  async function storedRecording(pool: string) {
    const lease = crypto.randomUUID();
    const startedAt = Date.now() - 10_000;
    const frames = [
      { t: startedAt + 100, data: "AAAA" },
      { t: startedAt + 600, data: "BBBB" },
      { t: startedAt + 1100, data: "CCCC" },
    ];
    await env.RECORDINGS.put(chunkKey("dev", pool, lease, 1), JSON.stringify({ frames: frames.slice(0, 2) }));
    await env.RECORDINGS.put(chunkKey("dev", pool, lease, 2), JSON.stringify({ frames: frames.slice(2) }));
    const manifest: RecordingManifest = {
      tenant: "dev",
      pool,
      lease,
      startedAt,
      endedAt: startedAt + 2_000,
      frames: 3,
      bytes: 12,
      chunks: 2,
      truncated: false,
      fps: 2,
      events: [
        { at: new Date(startedAt).toISOString(), event: "granted" },
        { at: new Date(startedAt + 2_000).toISOString(), event: "released", detail: { endReason: "released" } },
      ],
      expiresAt: startedAt + 7 * 86_400_000,
    };
    await env.RECORDINGS.put(manifestKey("dev", pool, lease), JSON.stringify(manifest));
    return { lease, manifest, frames };
  }

  it("answers a self-contained replay page with the frames, a timeline and the journal events", async () => {
    const pool = await newPool("replay");
    const { lease } = await storedRecording(pool);
    const reply = await call<string>(`/v1/pools/${pool}/leases/${lease}/recording`);
    expect(reply.status).toBe(200);
    expect(reply.headers.get("content-type")).toContain("text/html");
    expect(reply.headers.get("content-security-policy")).toContain("default-src 'none'");
    const html = reply.body;
    expect(html).toContain('id="scrub"');
    expect(html).toContain('id="play"');
    for (const data of ["AAAA", "BBBB", "CCCC", "granted", "released"]) expect(html).toContain(data);
    // Nothing loaded from anywhere.
    expect(html).not.toMatch(/<(script|link|img)[^>]+(src|href)=["']?https?:/);
  });

  it("answers the manifest and the frames in order as JSON", async () => {
    const pool = await newPool("replay-json");
    const { lease, manifest, frames } = await storedRecording(pool);
    const reply = await call(`/v1/pools/${pool}/leases/${lease}/recording`, { headers: { accept: "application/json" } });
    expect(reply.status).toBe(200);
    expect(reply.body).toEqual({ manifest, frames });
  });

  it("is not found for another tenant, nor for a lease without a recording", async () => {
    const pool = await newPool("replay-none");
    const { lease } = await storedRecording(pool);
    expect((await call(`/v1/pools/${pool}/leases/${lease}/recording`, { key: DEV2_KEY })).status).toBe(404);
    const missing = await call(`/v1/pools/${pool}/leases/${crypto.randomUUID()}/recording`);
    expect(missing.status).toBe(404);
    expect(missing.body.code).toBe("not_found");
  });
});

describe("retention", () => {
  it("deletes a lease's recording and the recorder's storage once the tenant's retention has passed", async () => {
    const pool = poolName("ret");
    const lease = crypto.randomUUID();
    const { stub, clock } = await recorderWithClock("dev", pool, lease);
    // A browser that does not exist: the recorder logs it and records nothing, but still ends properly.
    await stub.start({ tenant: "dev", pool, leaseId: lease, sessionId: "no-such-session", startedAt: clock.now });
    await env.RECORDINGS.put(chunkKey("dev", pool, lease, 1), JSON.stringify({ frames: [] }));
    const manifest = (await stub.stop([], clock.now))!;
    expect(manifest.expiresAt).toBe(clock.now + 7 * 86_400_000);
    expect(await listKeys(leasePrefix("dev", pool, lease))).toHaveLength(2);

    // Before its expiry the alarm deletes nothing.
    clock.now = manifest.expiresAt - 1;
    await runDurableObjectAlarm(stub);
    expect(await listKeys(leasePrefix("dev", pool, lease))).toHaveLength(2);

    clock.now = manifest.expiresAt + 1;
    await runDurableObjectAlarm(stub);
    expect(await listKeys(leasePrefix("dev", pool, lease))).toEqual([]);
    expect(await stub.status()).toBeNull();
    expect(await stub.stop([], clock.now)).toBeNull();
  });

  it("takes the retention from the tenant's quota recordingRetentionDays", async () => {
    const tenant = `rec-${crypto.randomUUID().slice(0, 8)}`;
    const set = await call(`/v1/admin/tenants/${tenant}`, { method: "PUT", body: { recordingRetentionDays: 2 }, key: ADMIN });
    expect(set.status, JSON.stringify(set.body)).toBe(200);
    expect(set.body.quota.recordingRetentionDays).toBe(2);
    expect(set.body.defaults.recordingRetentionDays).toBe(false);
    expect((await call(`/v1/admin/tenants/${tenant}`, { method: "PUT", body: { recordingRetentionDays: 366 }, key: ADMIN })).status).toBe(400);

    const pool = poolName("ret-tenant");
    const lease = crypto.randomUUID();
    const { stub, clock } = await recorderWithClock(tenant, pool, lease);
    await stub.start({ tenant, pool, leaseId: lease, sessionId: "no-such-session", startedAt: clock.now });
    const manifest = (await stub.stop([], clock.now))!;
    expect(manifest.expiresAt).toBe(clock.now + 2 * 86_400_000);

    const reset = await call(`/v1/admin/tenants/${tenant}`, { method: "PUT", body: { recordingRetentionDays: null }, key: ADMIN });
    expect(reset.body.quota.recordingRetentionDays).toBe(7);
  });

  it("finalizes on its own when no stop comes and the pool does not know the lease", async () => {
    const pool = poolName("safety");
    const lease = crypto.randomUUID();
    const { stub, clock } = await recorderWithClock("dev", pool, lease);
    const startedAt = clock.now;
    await stub.start({ tenant: "dev", pool, leaseId: lease, sessionId: "no-such-session", startedAt });
    clock.now += SAFETY_MS + 1;
    await runDurableObjectAlarm(stub);
    expect((await stub.status())?.state).toBe("stopped");
    const stored = (await (await env.RECORDINGS.get(manifestKey("dev", pool, lease)))!.json()) as RecordingManifest;
    expect(stored).toMatchObject({ lease, startedAt, endedAt: clock.now, frames: 0 });
  });
});

describe("deleteRecordings", () => {
  it("deletes a pool's recordings and nothing else", async () => {
    const pool = poolName("del");
    const [a, b] = [crypto.randomUUID(), crypto.randomUUID()];
    const keep = [chunkKey("dev", `${pool}x`, a, 1), chunkKey("dev2", pool, a, 1), manifestKey("dev2", pool, b)];
    const gone = [chunkKey("dev", pool, a, 1), chunkKey("dev", pool, a, 2), manifestKey("dev", pool, a), manifestKey("dev", pool, b)];
    for (const key of [...keep, ...gone]) await env.RECORDINGS.put(key, "{}");
    expect(await deleteRecordings(env.RECORDINGS, "dev", pool)).toBe(gone.length);
    for (const key of gone) expect(await env.RECORDINGS.head(key)).toBeNull();
    for (const key of keep) expect(await env.RECORDINGS.head(key)).not.toBeNull();
    expect(await deleteRecordings(env.RECORDINGS, "dev", pool)).toBe(0);
  });
});
