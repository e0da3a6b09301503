/**
 * A recorded lease's replay: `GET /v1/pools/{pool}/leases/{id}/recording`
 * (API key; the lease's tenant only, since recordings are kept under the
 * tenant's prefix). The recording is read from R2 (src/recorder/store.ts)
 * once its manifest exists, so it outlives the lease's row in the pool (kept
 * 24 h) for the tenant's retention. Answers the replay page (page.ts), or with
 * `Accept: application/json` the manifest and the frames in order.
 *
 * Without a manifest the pool is asked about the lease, to say why: no such
 * lease (404), still running (409 recording_in_progress), or ended without a
 * recording to show yet (404: not recorded, being finalized, or past its
 * retention).
 */
import { Hono } from "hono";
import type { z } from "zod";
import { readFrames, readManifest } from "../../recorder/store";
import type { AuthVariables } from "../auth";
import { poolCall } from "../calls";
import { ApiError } from "../errors";
import { LeaseId, PoolName, type Recording } from "../schemas";
import { parse } from "../validate";
import { REPLAY_CSP, replayPage } from "./page";

export const recording = new Hono<{ Bindings: Env; Variables: AuthVariables }>();

recording.get("/pools/:pool/leases/:id/recording", async (c) => {
  const pool = parse(PoolName, c.req.param("pool"), "path.pool");
  const id = parse(LeaseId, c.req.param("id"), "path.id");
  const tenant = c.get("tenant");
  const manifest = await readManifest(c.env.RECORDINGS, tenant, pool, id);
  if (!manifest) {
    const lease = await poolCall(c.env, tenant, pool, "getLease", "repeatable", (stub) => stub.getLease(id));
    if (!lease.ok) throw new ApiError(404, "not_found", "no such lease in this pool, and no recording of it");
    const { status } = lease.value;
    const recorded = (lease.value as { record?: boolean }).record;
    if ((status === "active" || status === "waiting") && recorded !== false) {
      throw new ApiError(409, "recording_in_progress", "the lease is still running: its recording can be replayed once the lease ends");
    }
    throw new ApiError(
      404,
      "not_found",
      recorded === false
        ? "this lease was not recorded (acquire with record: true, or set the pool's record default)"
        : "no recording of this lease: it was not recorded, its recording is still being finalized (ask again in a moment), or its retention has passed",
    );
  }
  const frames = await readFrames(c.env.RECORDINGS, manifest);
  c.header("Cache-Control", "private, no-store");
  if ((c.req.header("accept") ?? "").includes("application/json")) {
    const body: z.infer<typeof Recording> = { manifest, frames };
    return c.json(body);
  }
  c.header("Content-Security-Policy", REPLAY_CSP);
  c.header("Referrer-Policy", "no-referrer");
  return c.html(replayPage(manifest, frames));
});
