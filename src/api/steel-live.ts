/**
 * Steel's per-session reads (issue 18): `GET /v1/sessions/{id}/events` and
 * `GET /v1/sessions/{id}/live-details`, in Steel's shapes, for a session that
 * is a lease of the tenant's pool named by `namespace` (steel.ts).
 *
 * Events: Steel's are an rrweb recording of the pages; the broker records no
 * DOM, so a session's events are its lease's lifecycle journal (requested,
 * granted, connected, renewed, released, …: the same rows as
 * `GET /v1/pools/{pool}/leases/{id}/events`), oldest first. An rrweb player
 * cannot replay them; a recorded lease's screencast is its recording instead.
 *
 * Live details: the pages of the session's browser, read over CDP at the time
 * of the request, and a fresh view-only viewer URL. `wsUrl` is empty: the
 * connect token is shown only in the answer that creates the session (only
 * its hash is kept), so it cannot be shown again.
 */
import { Hono } from "hono";
import { z } from "zod";
import { withCdp } from "../browser/cdp";
import { message, withDeadline } from "../deadline";
import { log } from "../log";
import type { LeaseEvent, LeaseView } from "../pool/views";
import type { Result } from "../result";
import { mintToken, viewerUrl } from "../token";
import type { AuthVariables } from "./auth";
import { poolCall } from "./calls";
import { ApiError } from "./errors";
import { PoolName } from "./schemas";
import { findSession, SessionId } from "./steel";
import { isTab, type TargetInfo } from "./viewer/tabs";
import { parse, unwrap } from "./validate";

export const steelLive = new Hono<{ Bindings: Env; Variables: AuthVariables }>();

/** How long live-details waits for the browser to list its pages: it is a read someone is waiting on. */
export const LIVE_DETAILS_TIMEOUT_MS = 5_000;
/** The most events one page of `…/events` holds. */
export const MAX_EVENTS_PAGE = 1_000;

/** `<ms>.<n>`: after the n-th event of millisecond `ms` (see `eventsAfter`). */
const POINTER = /^(\d{1,15})\.([1-9]\d{0,8})$/;

const EventsQuery = z
  .object({
    namespace: PoolName.optional(),
    limit: z.coerce.number().int().min(1).max(MAX_EVENTS_PAGE).optional().describe("events per page; all of them when absent"),
    pointer: z.string().regex(POINTER, "not a Next-Cursor this broker gave").optional().describe("the Next-Cursor header of the previous page"),
    compressed: z.enum(["true", "false"]).optional(),
  })
  .strict();

/**
 * The events after `pointer`, and the pointer after the last of `page`.
 *
 * The pointer names an event by its time and its place among the events of
 * that same millisecond, not by its index: the pool keeps only its newest
 * journal rows (JOURNAL_KEEP), so a lease's oldest events may be dropped
 * between two pages, and an index would then skip as many events as were
 * dropped. A time does not move. (Only if the boundary's own millisecond loses
 * events between the pages can its place among them be off.)
 */
export function eventsAfter(events: LeaseEvent[], pointer: string | undefined): LeaseEvent[] {
  if (pointer === undefined) return events;
  const [, ms, nth] = POINTER.exec(pointer)!;
  const at = Number(ms);
  let seen = 0;
  for (let i = 0; i < events.length; i += 1) {
    if (Date.parse(events[i]!.at) === at && ++seen === Number(nth)) return events.slice(i + 1);
  }
  // The boundary event itself is gone: continue after its millisecond.
  return events.filter((event) => Date.parse(event.at) > at);
}

/** The pointer after `last`, the final event of a page taken from `events` (the events a page started from). */
export function pointerAfter(events: LeaseEvent[], last: LeaseEvent): string {
  const at = Date.parse(last.at);
  let nth = 0;
  for (const event of events) {
    if (Date.parse(event.at) === at) nth += 1;
    if (event === last) break;
  }
  return `${at}.${nth}`;
}

steelLive.get("/sessions/:id/events", async (c) => {
  const id = parse(SessionId, c.req.param("id"), "path.id");
  const query = parse(EventsQuery, c.req.query(), "query");
  if (query.compressed === "true") {
    throw new ApiError(400, "invalid_request", "query.compressed: not supported by this broker (its events are the lease's journal, sent as plain JSON); leave it out or send false");
  }
  const tenant = c.get("tenant");
  const { pool } = await findSession(c.env, tenant, id, query.namespace);
  // Typed here: the RPC types erase a value holding `Record<string, unknown>` (an event's detail), which the object sends as plain JSON.
  const answered = (await poolCall(c.env, tenant, pool, "leaseEvents", "repeatable", (stub) => stub.leaseEvents(id))) as Result<{ events: LeaseEvent[] }>;
  const { events } = unwrap(answered);
  const rest = eventsAfter(events, query.pointer);
  const page = query.limit === undefined ? rest : rest.slice(0, query.limit);
  // A pointer counts from the lease's first event kept, so it is computed over all of them.
  if (page.length < rest.length) c.header("Next-Cursor", pointerAfter(events, page[page.length - 1]!));
  return c.json(page);
});

steelLive.get("/sessions/:id/live-details", async (c) => {
  const id = parse(SessionId, c.req.param("id"), "path.id");
  const tenant = c.get("tenant");
  const { lease, pool } = await findSession(c.env, tenant, id, c.req.query("namespace"));
  // As a viewer minted for an ended lease is refused (viewers.ts).
  if (lease.status !== "active" && lease.status !== "waiting") throw notLive(lease);
  const viewer = mintToken(tenant);
  unwrap(await poolCall(c.env, tenant, pool, "mintViewer", "repeatable", (stub) => stub.mintViewer(id, viewer.hash, false)));
  const url = viewerUrl(c.req.url, pool, id, viewer.token);
  // A waiting lease has no browser yet, so no pages.
  const pages = lease.sessionId === null ? [] : await readPages(c.env, tenant, pool, lease.id, lease.sessionId);
  c.header("Cache-Control", "no-store");
  return c.json({
    // The viewer opens on the browser's front tab and can switch tabs itself; it has no per-page or fullscreen URL.
    pages: pages.map((page) => ({ id: page.targetId, url: page.url, title: page.title, favicon: null, sessionViewerUrl: url, sessionViewerFullscreenUrl: url })),
    sessionViewerUrl: url,
    sessionViewerFullscreenUrl: url,
    wsUrl: "",
  });
});

function notLive(lease: LeaseView): ApiError {
  return new ApiError(409, "lease_not_active", `session ${lease.id} is ${lease.status === "failed" ? "failed" : "released"} (lease ${lease.status}): only a live session has pages and a viewer`);
}

/** The browser's pages (the lessee's tabs), read over CDP within LIVE_DETAILS_TIMEOUT_MS. */
async function readPages(env: Env, tenant: string, pool: string, leaseId: string, sessionId: string): Promise<TargetInfo[]> {
  try {
    const { targetInfos } = await withDeadline(
      withCdp(env.BROWSER, sessionId, (send) => send<{ targetInfos: TargetInfo[] }>("Target.getTargets")),
      LIVE_DETAILS_TIMEOUT_MS,
      "reading the session's pages",
    );
    return targetInfos.filter(isTab);
  } catch (error) {
    // The lease may have ended meanwhile (its browser reset or closed): say so rather than blame the browser.
    const now = await poolCall(env, tenant, pool, "getLease", "repeatable", (stub) => stub.getLease(leaseId));
    if (now.ok && now.value.status !== "active") throw notLive(now.value);
    log("live_details_failed", { pool: `${tenant}/${pool}`, lease: leaseId, error: message(error) });
    throw new ApiError(503, "browser_unresponsive", `the session's browser did not list its pages within ${LIVE_DETAILS_TIMEOUT_MS} ms; retry`, { "Retry-After": "1" });
  }
}
