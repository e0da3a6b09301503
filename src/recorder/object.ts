/**
 * LeaseRecorder: one Durable Object per recorded lease (named
 * `{tenant}/{pool}/{leaseId}`, see recorderOf). The pool calls `start` when it
 * grants a recorded lease and `stop` when the lease ends; between the two the
 * recorder screencasts the leased browser over a CDP connection of its own
 * (capture.ts) and keeps the frames in R2 (store.ts): buffered, written as a
 * chunk every CHUNK_FRAMES frames or CHUNK_MS, at most RECORDING_MAX_BYTES in
 * all. `stop` writes the manifest, which is what makes the recording exist
 * for readers, and arms the alarm at its expiry: the retention then deletes
 * the lease's R2 objects and this object's storage.
 *
 * The recorder keeps the browser's lessee in charge: it only watches. If the
 * browser goes away first, it keeps what it has and waits for `stop`. A `stop`
 * never comes only if the pool died, so while recording its alarm looks every
 * WATCH_MS (reconnecting after a restart of this object, which loses only the
 * unflushed frames), and at the safety deadline asks the pool whether the
 * lease still runs; if not (or the pool does not answer), it finalizes on its own.
 *
 * Every await on the platform, R2 or another object has a deadline.
 */
import { DurableObject } from "cloudflare:workers";
import { providerFactory } from "../browser/factory";
import type { BrowserProvider } from "../browser/provider";
import { message, withDeadline } from "../deadline";
import { log } from "../log";
import { poolOf, tenantOf } from "../stubs";
import { DEFAULT_RECORDING_RETENTION_DAYS } from "../tenant/object";
import { ScreencastCapture } from "./capture";
import { hasSchema, migrate, type RecordingRow } from "./schema";
import { deletePrefix, type JsonValue, leasePrefix, type RecordedFrame, type RecordingEvent, type RecordingManifest, writeChunk, writeManifest } from "./store";

export type { RecordingEvent, RecordingManifest } from "./store";

/** A journal event of the lease as the pool gives it to `stop` (its detail is parsed JSON). */
export interface JournalEvent {
  at: string;
  event: string;
  detail?: Record<string, unknown>;
}

/** What the pool tells the recorder when it grants a recorded lease. */
export interface RecordingSpec {
  tenant: string;
  pool: string;
  leaseId: string;
  sessionId: string;
  /** Epoch ms the lease was granted. */
  startedAt: number;
}

export interface RecorderStatus {
  state: "recording" | "stopped";
  frames: number;
  bytes: number;
  chunks: number;
  truncated: boolean;
  /** Frames kept in memory, not yet in R2. */
  buffered: number;
  /** A screencast is running now. */
  capturing: boolean;
  expiresAt: number | null;
}

/** Frames per second unless RECORDING_FPS says otherwise. */
export const DEFAULT_RECORDING_FPS = 2;
/** Bytes (base64 characters) of frames one recording keeps unless RECORDING_MAX_BYTES says otherwise: 25 MiB. */
export const DEFAULT_RECORDING_MAX_BYTES = 25 * 1024 * 1024;
/** A chunk is written once this many frames are buffered… */
export const CHUNK_FRAMES = 20;
/** …or this long after the first of them was buffered. */
export const CHUNK_MS = 5_000;
/** While recording, the alarm looks this often (reconnect after a restart, flush, the safety deadline). */
const WATCH_MS = 60_000;
/** The safety deadline after start: the longest lease (the pool's maxTtlSeconds is at most 1 h) plus a margin. */
export const SAFETY_MS = 70 * 60_000;
/** The most journal events a manifest keeps (a lease's journal is a few dozen rows). */
const MAX_EVENTS = 1_000;
/** R2 objects the retention deletes per alarm run; more are deleted by the next run, a second later. */
const DELETE_PER_ALARM = 5_000;
const CONNECT_TIMEOUT_MS = 10_000;
const OBJECT_TIMEOUT_MS = 5_000;

function positive(value: string | undefined, fallback: number): number {
  const parsed = Number(value);
  return Number.isFinite(parsed) && parsed > 0 ? parsed : fallback;
}

export class LeaseRecorder extends DurableObject<Env> {
  /** The time source (frame times, pacing, deadlines, retention); tests move it past a recording's expiry. */
  clock: () => number = providerFactory.now ?? (() => Date.now());
  /** From RECORDING_FPS and RECORDING_MAX_BYTES; tests set them directly. */
  fps: number;
  maxBytes: number;
  private provider: BrowserProvider;
  private schema = false;
  private capture: ScreencastCapture | undefined;
  private buffer: RecordedFrame[] = [];
  private bufferedBytes = 0;
  private lastT = 0;
  private flushTimer: ReturnType<typeof setTimeout> | undefined;
  /** Chunk writes, one after another (each numbers its chunk from the counters the previous one left). */
  private writing: Promise<void> = Promise.resolve();
  private opening: Promise<void> | undefined;
  private stopping: Promise<RecordingManifest | null> | undefined;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.provider = providerFactory.create(env);
    this.fps = Math.min(positive(env.RECORDING_FPS, DEFAULT_RECORDING_FPS), 30);
    this.maxBytes = positive(env.RECORDING_MAX_BYTES, DEFAULT_RECORDING_MAX_BYTES);
    ctx.blockConcurrencyWhile(async () => {
      // Tables exist from the first start until the retention deletes them; a read never creates them.
      this.schema = hasSchema(ctx.storage.sql);
      if (this.schema) migrate(ctx.storage.sql);
    });
  }

  /**
   * Starts recording the lease's browser. Idempotent: a repeated start (or one
   * after a restart of this object) reconnects only if nothing is capturing;
   * a recording that ended stays ended. A browser that cannot be reached is
   * logged, not thrown: the recording then has what it has.
   */
  async start(spec: RecordingSpec): Promise<void> {
    if (!this.schema) {
      migrate(this.ctx.storage.sql);
      this.schema = true;
    }
    const now = this.clock();
    this.ctx.storage.sql.exec(
      `INSERT INTO recording (id, tenant, pool, lease, session_id, started_at, state, safety_at) VALUES (1, ?, ?, ?, ?, ?, 'recording', ?)
       ON CONFLICT (id) DO NOTHING`,
      spec.tenant,
      spec.pool,
      spec.leaseId,
      spec.sessionId,
      spec.startedAt,
      now + SAFETY_MS,
    );
    const row = this.row()!;
    if (row.state === "stopped") return;
    await this.armAt(Math.min(now + WATCH_MS, row.safety_at));
    await this.open();
  }

  /**
   * Ends the recording: keeps the last frame, stops the screencast, closes the
   * socket, flushes, writes the manifest (with the lease's journal `events`)
   * and arms the retention. Idempotent: a stopped recording answers its
   * manifest; a recorder never started (or whose retention passed) answers
   * null. Throws if R2 did not take the frames or the manifest: call again.
   */
  async stop(events: JournalEvent[], endedAt: number): Promise<RecordingManifest | null> {
    this.stopping ??= this.finalize(events, endedAt).finally(() => {
      this.stopping = undefined;
    });
    return this.stopping;
  }

  async status(): Promise<RecorderStatus | null> {
    const row = this.row();
    if (!row) return null;
    return {
      state: row.state,
      frames: row.frames,
      bytes: row.bytes,
      chunks: row.chunks,
      truncated: row.truncated === 1,
      buffered: this.buffer.length,
      capturing: this.capture !== undefined,
      expiresAt: row.expires_at,
    };
  }

  override async alarm(): Promise<void> {
    const row = this.row();
    if (!row) return;
    const now = this.clock();
    if (row.state === "stopped") {
      if (row.expires_at !== null && now < row.expires_at) return this.armAt(row.expires_at);
      const { deleted, more } = await deletePrefix(this.env.RECORDINGS, leasePrefix(row.tenant, row.pool, row.lease), DELETE_PER_ALARM);
      if (more) return this.armAt(now + 1_000);
      await this.ctx.storage.deleteAlarm();
      await this.ctx.storage.deleteAll();
      this.schema = false;
      log("recording_deleted", { tenant: row.tenant, pool: row.pool, lease: row.lease, objects: deleted });
      return;
    }
    if (now >= row.safety_at) {
      if (await this.leaseRuns(row)) {
        this.ctx.storage.sql.exec(`UPDATE recording SET safety_at = ? WHERE id = 1`, now + SAFETY_MS);
      } else {
        log("recording_finalized_unstopped", { tenant: row.tenant, pool: row.pool, lease: row.lease });
        await this.stop([], now);
        return;
      }
    }
    await this.open();
    await this.flush();
    const current = this.row();
    if (current?.state === "recording") await this.armAt(Math.min(now + WATCH_MS, current.safety_at));
  }

  // ---- capture

  /** Connects and starts the screencast unless one runs or nothing more is to be captured. One at a time. */
  private async open(): Promise<void> {
    if (this.capture) return;
    this.opening ??= this.openCapture().finally(() => {
      this.opening = undefined;
    });
    return this.opening;
  }

  private async openCapture(): Promise<void> {
    const row = this.row();
    if (!row || row.state !== "recording" || row.capture_over === 1) return;
    this.lastT = Math.max(this.lastT, row.last_t);
    let socket: WebSocket;
    let gaveUp = false;
    const connecting = this.provider.connect(row.session_id);
    // A socket that arrives after its deadline is closed at once: nobody would read it.
    connecting.then((late) => gaveUp && closeLate(late)).catch(() => {});
    try {
      socket = await withDeadline(connecting, CONNECT_TIMEOUT_MS, "the recorder's browser connection");
    } catch (error) {
      gaveUp = true;
      log("recording_connect_failed", { tenant: row.tenant, pool: row.pool, lease: row.lease, error: message(error) });
      return;
    }
    // A stop (or the size bound) may have come meanwhile.
    const now = this.row();
    if (!now || now.state !== "recording" || now.capture_over === 1 || this.capture) {
      closeLate(socket);
      return;
    }
    const capture = new ScreencastCapture(socket, {
      fps: this.fps,
      now: () => this.clock(),
      onFrame: (t, data) => this.keep(t, data),
      onClosed: (reason) => {
        if (this.capture !== capture) return;
        this.capture = undefined;
        // The browser is gone: keep what was captured and wait for stop.
        this.captureOver();
        log("recording_browser_closed", { tenant: row.tenant, pool: row.pool, lease: row.lease, reason });
        void this.flush();
      },
    });
    this.capture = capture;
    try {
      await capture.start();
      log("recording_started", { tenant: row.tenant, pool: row.pool, lease: row.lease });
    } catch (error) {
      log("recording_start_failed", { tenant: row.tenant, pool: row.pool, lease: row.lease, error: message(error) });
      if (this.capture === capture) this.capture = undefined;
      await capture.stop();
    }
  }

  /** A frame the capture kept: buffered, unless the recording is full. */
  private keep(t: number, data: string): void {
    const row = this.row();
    if (!row || row.truncated === 1) return;
    if (row.bytes + this.bufferedBytes + data.length > this.maxBytes) {
      // Full: nothing more is kept, so nothing more is captured.
      this.ctx.storage.sql.exec(`UPDATE recording SET truncated = 1, capture_over = 1 WHERE id = 1`);
      const capture = this.capture;
      this.capture = undefined;
      void capture?.stop();
      log("recording_truncated", { tenant: row.tenant, pool: row.pool, lease: row.lease, bytes: row.bytes + this.bufferedBytes });
      return;
    }
    // Strictly increasing, even if the clock stands still or went back across a restart.
    this.lastT = Math.max(t, this.lastT + 1);
    this.buffer.push({ t: this.lastT, data });
    this.bufferedBytes += data.length;
    if (this.buffer.length >= CHUNK_FRAMES) void this.flush();
    else
      this.flushTimer ??= setTimeout(() => {
        this.flushTimer = undefined;
        void this.flush();
      }, CHUNK_MS);
  }

  /** Writes the buffered frames as the next chunk; resolves once every write asked for so far is done. Never throws. */
  private flush(): Promise<void> {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (this.buffer.length > 0) {
      const frames = this.buffer.splice(0);
      const bytes = frames.reduce((sum, f) => sum + f.data.length, 0);
      this.bufferedBytes -= bytes;
      this.writing = this.writing.then(() => this.write(frames, bytes));
    }
    return this.writing;
  }

  private async write(frames: RecordedFrame[], bytes: number): Promise<void> {
    const row = this.row();
    if (!row) return;
    const n = row.chunks + 1;
    try {
      await writeChunk(this.env.RECORDINGS, row.tenant, row.pool, row.lease, n, frames);
    } catch (error) {
      // Put back in front: the next flush tries them again (they still count against the size bound).
      this.buffer.unshift(...frames);
      this.bufferedBytes += bytes;
      log("recording_chunk_failed", { tenant: row.tenant, pool: row.pool, lease: row.lease, chunk: n, error: message(error) });
      return;
    }
    this.ctx.storage.sql.exec(
      `UPDATE recording SET chunks = ?, frames = frames + ?, bytes = bytes + ?, last_t = MAX(last_t, ?) WHERE id = 1`,
      n,
      frames.length,
      bytes,
      frames[frames.length - 1]!.t,
    );
  }

  // ---- the end

  private async finalize(events: JournalEvent[], endedAt: number): Promise<RecordingManifest | null> {
    const row = this.row();
    if (!row) return null;
    if (row.state === "stopped") return JSON.parse(row.manifest!) as RecordingManifest;
    this.captureOver();
    const capture = this.capture;
    this.capture = undefined;
    await capture?.stop();
    await this.flush();
    if (this.buffer.length > 0) throw new Error(`R2 did not take the last ${this.buffer.length} frames of the recording; stop again`);
    const days = await withDeadline(tenantOf(this.env, row.tenant).recordingRetentionDays(), OBJECT_TIMEOUT_MS, "the tenant's retention").catch((error) => {
      log("recording_retention_unknown", { tenant: row.tenant, error: message(error), days: DEFAULT_RECORDING_RETENTION_DAYS });
      return DEFAULT_RECORDING_RETENTION_DAYS;
    });
    const counts = this.row()!;
    if (counts.state === "stopped") return JSON.parse(counts.manifest!) as RecordingManifest;
    const ended = Number.isFinite(endedAt) ? endedAt : this.clock();
    const manifest: RecordingManifest = {
      tenant: counts.tenant,
      pool: counts.pool,
      lease: counts.lease,
      startedAt: counts.started_at,
      endedAt: ended,
      frames: counts.frames,
      bytes: counts.bytes,
      chunks: counts.chunks,
      truncated: counts.truncated === 1,
      fps: this.fps,
      events: events.slice(0, MAX_EVENTS).map(recordingEvent),
      expiresAt: ended + days * 86_400_000,
    };
    await writeManifest(this.env.RECORDINGS, manifest);
    this.ctx.storage.sql.exec(`UPDATE recording SET state = 'stopped', expires_at = ?, manifest = ? WHERE id = 1`, manifest.expiresAt, JSON.stringify(manifest));
    await this.armAt(manifest.expiresAt);
    log("recording_stopped", { tenant: manifest.tenant, pool: manifest.pool, lease: manifest.lease, frames: manifest.frames, bytes: manifest.bytes, truncated: manifest.truncated });
    return manifest;
  }

  /** Whether the pool says the lease still runs (so no stop is owed yet); false when the pool does not answer. */
  private async leaseRuns(row: RecordingRow): Promise<boolean> {
    try {
      const pool = poolOf(this.env, row.tenant, row.pool);
      const lease: { ok: boolean; value?: { status: string } } = await withDeadline(Promise.resolve(pool.getLease(row.lease)), OBJECT_TIMEOUT_MS, "the lease's pool");
      return lease.ok && (lease.value?.status === "active" || lease.value?.status === "waiting");
    } catch {
      return false;
    }
  }

  private captureOver(): void {
    this.ctx.storage.sql.exec(`UPDATE recording SET capture_over = 1 WHERE id = 1`);
  }

  private async armAt(at: number): Promise<void> {
    await this.ctx.storage.setAlarm(at);
  }

  private row(): RecordingRow | undefined {
    if (!this.schema) return undefined;
    return this.ctx.storage.sql.exec<RecordingRow>(`SELECT * FROM recording WHERE id = 1`).toArray()[0];
  }
}

function closeLate(socket: WebSocket): void {
  try {
    socket.accept();
    socket.close(1000, "not needed");
  } catch {
    // already closed
  }
}

/** A journal event as the manifest keeps it: its detail as the JSON it came from. */
function recordingEvent(e: JournalEvent): RecordingEvent {
  const detail = e.detail ? (JSON.parse(JSON.stringify(e.detail)) as { [key: string]: JsonValue }) : undefined;
  return { at: String(e.at), event: String(e.event), ...(detail ? { detail } : {}) };
}
