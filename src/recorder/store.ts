/**
 * Where recordings live in R2 (binding RECORDINGS), and the only code that
 * names their keys. One recorded lease is a prefix of objects:
 *
 *   recordings/{tenant}/{pool}/{leaseId}/chunk-000001.json   {frames:[{t, data}]}, in order
 *   recordings/{tenant}/{pool}/{leaseId}/manifest.json       RecordingManifest, written last
 *
 * A recording exists for readers once its manifest does: chunks without a
 * manifest are a recording still being made (or one whose recorder never
 * finished: its safety alarm finalizes it). Pool names cannot contain "/", so
 * `recordings/{tenant}/{pool}/` holds exactly one pool's recordings.
 *
 * Every R2 call here has a deadline (an R2 call cannot be cancelled: a late
 * answer is ignored by whoever gave up on it).
 */
import { withDeadline } from "../deadline";

/** How long one R2 call may take. */
export const R2_TIMEOUT_MS = 10_000;
/** Keys R2 lists per page and deletes per call (its limit for both). */
const R2_BATCH = 1_000;
/** Objects `deleteRecordings` deletes per call at most, so one call's time stays bounded. */
export const MAX_DELETED_PER_CALL = 10_000;

/** One kept screencast frame: when it was on screen (epoch ms) and the JPEG, base64. */
export interface RecordedFrame {
  t: number;
  data: string;
}

/** A value in a manifest's event detail: what JSON holds (not `unknown`, which an RPC answer cannot be typed with; not recursive, which makes callers' types too deep). */
export type JsonValue = string | number | boolean | null | object;

/** A journal event of the lease, shown on the replay's timeline. */
export interface RecordingEvent {
  at: string;
  event: string;
  detail?: { [key: string]: JsonValue };
}

/** What a finished recording is: `recordings/{tenant}/{pool}/{lease}/manifest.json`. Times are epoch ms. */
export interface RecordingManifest {
  tenant: string;
  pool: string;
  lease: string;
  startedAt: number;
  endedAt: number;
  /** Frames kept, in `chunks` chunk objects numbered from 1. */
  frames: number;
  /** Base64 characters of the frames kept (what the chunks hold, without their JSON). */
  bytes: number;
  chunks: number;
  /** Frames were dropped because the recording reached RECORDING_MAX_BYTES. */
  truncated: boolean;
  /** The frame rate the recording was paced to (at most; a page that does not repaint sends fewer). */
  fps: number;
  events: RecordingEvent[];
  /** When the recording is deleted (the tenant's retention after endedAt). */
  expiresAt: number;
}

export function leasePrefix(tenant: string, pool: string, leaseId: string): string {
  return `recordings/${tenant}/${pool}/${leaseId}/`;
}

export function poolPrefix(tenant: string, pool: string): string {
  return `recordings/${tenant}/${pool}/`;
}

export function chunkKey(tenant: string, pool: string, leaseId: string, n: number): string {
  return `${leasePrefix(tenant, pool, leaseId)}chunk-${String(n).padStart(6, "0")}.json`;
}

export function manifestKey(tenant: string, pool: string, leaseId: string): string {
  return `${leasePrefix(tenant, pool, leaseId)}manifest.json`;
}

export async function writeChunk(bucket: R2Bucket, tenant: string, pool: string, leaseId: string, n: number, frames: RecordedFrame[]): Promise<void> {
  const key = chunkKey(tenant, pool, leaseId, n);
  await withDeadline(bucket.put(key, JSON.stringify({ frames }), { httpMetadata: { contentType: "application/json" } }), R2_TIMEOUT_MS, `R2 put ${key}`);
}

export async function writeManifest(bucket: R2Bucket, manifest: RecordingManifest): Promise<void> {
  const key = manifestKey(manifest.tenant, manifest.pool, manifest.lease);
  await withDeadline(bucket.put(key, JSON.stringify(manifest), { httpMetadata: { contentType: "application/json" } }), R2_TIMEOUT_MS, `R2 put ${key}`);
}

/** The lease's manifest, or null while there is none (never recorded, being finalized, or past its retention). */
export async function readManifest(bucket: R2Bucket, tenant: string, pool: string, leaseId: string): Promise<RecordingManifest | null> {
  const key = manifestKey(tenant, pool, leaseId);
  const object = await withDeadline(bucket.get(key), R2_TIMEOUT_MS, `R2 get ${key}`);
  return object ? ((await withDeadline(object.json(), R2_TIMEOUT_MS, `R2 read ${key}`)) as RecordingManifest) : null;
}

/**
 * The recording's frames in order: chunk 1 to `manifest.chunks`, read a few
 * at a time. A chunk that is missing (deleted meanwhile by the retention) ends
 * the list there.
 */
export async function readFrames(bucket: R2Bucket, manifest: RecordingManifest): Promise<RecordedFrame[]> {
  const parallel = 4;
  const frames: RecordedFrame[] = [];
  for (let first = 1; first <= manifest.chunks; first += parallel) {
    const numbers = Array.from({ length: Math.min(parallel, manifest.chunks - first + 1) }, (_, i) => first + i);
    const chunks = await Promise.all(
      numbers.map(async (n) => {
        const key = chunkKey(manifest.tenant, manifest.pool, manifest.lease, n);
        const object = await withDeadline(bucket.get(key), R2_TIMEOUT_MS, `R2 get ${key}`);
        return object ? ((await withDeadline(object.json(), R2_TIMEOUT_MS, `R2 read ${key}`)) as { frames: RecordedFrame[] }) : null;
      }),
    );
    for (const chunk of chunks) {
      if (!chunk) return frames;
      frames.push(...chunk.frames);
    }
  }
  return frames;
}

/**
 * Deletes the objects under `prefix`, a page at a time, at most `limit` of
 * them; answers how many it deleted and whether any may remain.
 */
export async function deletePrefix(bucket: R2Bucket, prefix: string, limit: number): Promise<{ deleted: number; more: boolean }> {
  let deleted = 0;
  while (deleted < limit) {
    // Each page is listed from the start: what the previous page held is gone (R2's list is strongly consistent).
    const page = await withDeadline(bucket.list({ prefix, limit: Math.min(R2_BATCH, limit - deleted) }), R2_TIMEOUT_MS, `R2 list ${prefix}`);
    const keys = page.objects.map((o) => o.key);
    if (keys.length > 0) await withDeadline(bucket.delete(keys), R2_TIMEOUT_MS, `R2 delete under ${prefix}`);
    deleted += keys.length;
    if (!page.truncated || keys.length === 0) return { deleted, more: false };
  }
  return { deleted, more: true };
}

/**
 * Deletes a pool's recordings (every lease's chunks and manifest): for the
 * pool's deletion. At most MAX_DELETED_PER_CALL objects per call, so a call
 * is bounded in time: call again until it answers 0. Recorders of those
 * leases find nothing left to delete when their retention ends.
 */
export async function deleteRecordings(bucket: R2Bucket, tenant: string, pool: string): Promise<number> {
  return (await deletePrefix(bucket, poolPrefix(tenant, pool), MAX_DELETED_PER_CALL)).deleted;
}
