/**
 * The live viewer's routes. A lease's `viewerUrl` is
 * `GET /v1/pools/{pool}/leases/{id}/viewer?token=…`: a page (page.ts) that
 * opens `…/viewer/stream?token=…`, a WebSocket on which the Worker streams the
 * leased browser's screencast over a CDP connection of its own (engine.ts).
 *
 * Like the CDP route these take the lease's viewer token instead of an API
 * key (a person opens the URL in a browser), rate limited per client address;
 * the pool object decides whether the token may watch (viewers.ts). The
 * stream is registered with the pool before it opens, is closed within a
 * moment of the lease ending (the same `watchConnection` a CDP client waits
 * on), and is reported closed, so a released browser is reset only after its
 * viewers are gone.
 *
 * `?compact=1` (on both) is the thumbnail the operators' dashboard embeds:
 * the page keeps only the screen and a thin status line, and the stream sends
 * at most THUMBNAIL_MAX_FPS frames a second.
 */
import type { Context } from "hono";
import { providerFactory } from "../../browser/factory";
import { log } from "../../log";
import { poolOf } from "../../stubs";
import { tokenHash } from "../../token";
import { poolCall } from "../calls";
import { connectUpstream, reportClosed, tokenRequest, watchLease } from "../cdp";
import { ApiError } from "../errors";
import { unwrap } from "../validate";
import { serveViewer } from "./engine";
import { viewerPage } from "./page";

/** Frames per second a compact viewer (a thumbnail) is sent at most: enough to see the page move, a fifth of a full viewer's default. */
const THUMBNAIL_MAX_FPS = 2;

const HINT = "open the viewerUrl the lease was created with, or mint one with POST /v1/pools/{pool}/leases/{id}/viewer";

/** The viewer page, served only for a token that may watch an active lease. */
export async function viewerPageHandler(c: Context<{ Bindings: Env }>): Promise<Response> {
  const { pool, leaseId, token, tenant } = await tokenRequest(c, "viewer token", HINT);
  const grant = unwrap(await poolCall(c.env, tenant, pool, "openViewer", "repeatable", (s) => s.openViewer(leaseId, tokenHash(token), false)));
  const compact = c.req.query("compact") === "1";
  const streamUrl = `/v1/pools/${pool}/leases/${leaseId}/viewer/stream?token=${encodeURIComponent(token)}${compact ? "&compact=1" : ""}`;
  const html = viewerPage({ streamUrl, interactive: grant.interactive, lease: leaseId, pool, compact });
  return c.html(html, 200, {
    // The page holds its token in its URL: it must not be cached, nor leak through a Referer.
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
  });
}

/** The viewer's stream: the screencast of the leased browser, and (interactive) the person's input back to it. */
export async function viewerStreamHandler(c: Context<{ Bindings: Env }>): Promise<Response> {
  const { pool, leaseId, token, tenant } = await tokenRequest(c, "viewer token", HINT);
  const upgrade = (c.req.header("upgrade") ?? "").toLowerCase() === "websocket";
  if (!upgrade) {
    throw new ApiError(426, "upgrade_required", "the viewer's stream is a WebSocket: open the viewerUrl page, which connects to it", { Upgrade: "websocket" });
  }
  const grant = unwrap(await poolCall(c.env, tenant, pool, "openViewer", "once", (s) => s.openViewer(leaseId, tokenHash(token), true)));
  const connectionId = grant.connectionId!;
  const stub = () => poolOf(c.env, tenant, pool);
  const browser = await connectUpstream(providerFactory.create(c.env), grant.sessionId);
  if (!browser) {
    await reportClosed(stub, connectionId);
    throw ApiError.retryable(503, "browser_busy", "the leased browser did not accept the viewer's connection; retry in a moment", 1);
  }
  const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
  server.accept();
  browser.accept();
  let ended = false;
  const stream = serveViewer(server, browser, {
    interactive: grant.interactive,
    ...(c.req.query("compact") === "1" ? { maxFps: THUMBNAIL_MAX_FPS } : {}),
    onEnd: (by) => {
      if (ended) return;
      ended = true;
      log("viewer_closed", { pool, leaseId, connectionId, by });
      void reportClosed(stub, connectionId);
    },
  });
  watchLease(stub, connectionId, () => ended, (_by, code, reason) => stream.end(code, reason));
  log("viewer_opened", { pool, leaseId, connectionId, interactive: grant.interactive });
  return new Response(null, { status: 101, webSocket: client });
}
