/**
 * Expired profiles deleted in bulk. A read already treats a profile past its
 * `expiresAt` as absent and deletes it; this deletes the ones nobody reads
 * again, so a profile's logins do not outlive the tenant's retention in R2.
 *
 * It runs from the account registry's alarm (src/registry/object.ts), a
 * bounded pass at a time: at most SWEEP_BATCH objects listed (and deleted)
 * per pass, continuing after the last key the previous pass reached, so every
 * profile of every tenant is looked at in turn however many there are. A full
 * round starts at most every SWEEP_INTERVAL_MS. The registry's alarm runs
 * while it watches browsers (from the first the account launches); once a
 * pass has seen profiles it also wakes for the next round when it has no
 * browsers to watch. Where the alarm never ran, expired profiles are still
 * absent to every read, just not yet deleted.
 */
import { message, withDeadline } from "../deadline";
import { log } from "../log";
import { isExpired, metaOf, PROFILES_PREFIX, R2_TIMEOUT_MS } from "./store";

/** Objects one pass lists at most (R2's page and bulk-delete limit). */
export const SWEEP_BATCH = 1_000;
/** A new round over all profiles starts at most this often. */
export const SWEEP_INTERVAL_MS = 60 * 60_000;

export interface SweepPass {
  /** Profile objects listed. */
  scanned: number;
  /** Expired ones deleted. */
  deleted: number;
  /** The last key listed when more may follow (where the next pass continues); null when the round is complete. */
  next: string | null;
  /** Whether any unexpired profile was seen in this pass. */
  kept: boolean;
}

/** One bounded pass: lists up to `limit` profile objects after `after` (from the start without), deletes the expired ones. */
export async function sweepExpired(bucket: R2Bucket, now: number, after?: string, limit = SWEEP_BATCH): Promise<SweepPass> {
  const listed = await withDeadline(
    bucket.list({ prefix: PROFILES_PREFIX, limit: Math.min(limit, SWEEP_BATCH), include: ["customMetadata"], ...(after ? { startAfter: after } : {}) }),
    R2_TIMEOUT_MS,
    "R2 list of profiles",
  );
  const expired: string[] = [];
  let kept = false;
  for (const object of listed.objects) {
    const meta = metaOf(object.key, object.customMetadata);
    if (meta && isExpired(meta, now)) expired.push(object.key);
    else kept = true;
  }
  if (expired.length > 0) await withDeadline(bucket.delete(expired), R2_TIMEOUT_MS, "R2 delete of expired profiles");
  const last = listed.objects[listed.objects.length - 1]?.key;
  return { scanned: listed.objects.length, deleted: expired.length, next: listed.truncated && last ? last : null, kept };
}

/** What the sweep keeps between passes, in its host's storage (the registry's `meta`). */
export interface SweepHost {
  /** Absent where the deployment has no PROFILES binding. */
  bucket: R2Bucket | undefined;
  now: number;
  read(key: string): string | undefined;
  write(key: string, value: string): void;
}

/**
 * Runs a pass if one is due, and says when the next one is wanted: in ms from
 * now, or null when the last round found no profiles (nothing to wake for).
 * Throws if R2 fails; the next call tries the same pass again.
 */
export async function expireProfiles(host: SweepHost): Promise<number | null> {
  if (!host.bucket) return null;
  const bucket = host.bucket;
  const due = Number(host.read("profiles_due_at") ?? 0);
  const seen = host.read("profiles_seen") === "1";
  if (host.now < due) return seen ? due - host.now : null;
  const after = host.read("profiles_after") || undefined;
  const pass = await sweepExpired(bucket, host.now, after);
  // Within a round, whether any profile was kept so far; a new round starts from this pass.
  const keptInRound = pass.kept || (after !== undefined && host.read("profiles_kept") === "1");
  if (pass.deleted > 0) log("profiles_expired", { count: pass.deleted, scanned: pass.scanned });
  if (pass.next !== null) {
    host.write("profiles_after", pass.next);
    host.write("profiles_kept", keptInRound ? "1" : "0");
    host.write("profiles_due_at", String(host.now));
    host.write("profiles_seen", "1");
    return 0;
  }
  host.write("profiles_after", "");
  host.write("profiles_kept", "0");
  host.write("profiles_due_at", String(host.now + SWEEP_INTERVAL_MS));
  host.write("profiles_seen", keptInRound ? "1" : "0");
  return keptInRound ? SWEEP_INTERVAL_MS : null;
}

/** `expireProfiles` that never throws (logged): for an alarm that must go on. */
export async function expireProfilesSafely(host: SweepHost): Promise<number | null> {
  // A deployment without the PROFILES binding keeps no profiles: nothing to sweep, nothing to log.
  if (!host.bucket) return null;
  try {
    return await expireProfiles(host);
  } catch (error) {
    log("profile_sweep_failed", { error: message(error) });
    return host.read("profiles_seen") === "1" ? SWEEP_INTERVAL_MS : null;
  }
}
