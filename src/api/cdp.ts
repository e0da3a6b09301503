/**
 * `GET /v1/pools/{pool}/leases/{id}/cdp?token=…`: the lease's `connectUrl`.
 *
 * The route takes no API key, so anyone may call it with any names. It is
 * rate limited per client address (RATE_LIMITER, where bound), and it reaches
 * a pool object only for a pool the token's tenant has (asked of the tenant's
 * object, which creates no storage for a read): a made-up tenant or pool name
 * is a 404 that instantiates no pool object.
 *
 * The pool object checks the token and registers the socket before anything
 * is opened; the Worker then opens a WebSocket to the leased browser through
 * the binding and pipes the two, both ways, text and binary, passing close
 * codes on. Data never goes through the pool object: it only decides. While
 * the socket is open the Worker keeps a `watchConnection` call outstanding,
 * which the pool object answers the moment the lease ends (release,
 * release-all, expiry, browser gone); both ends are then closed at once and the
 * Worker reports the connection closed, which is what lets a released browser
 * be reset and handed to the next lease.
 */
import type { Context } from "hono";
import { providerFactory } from "../browser/factory";
import type { BrowserProvider } from "../browser/provider";
import { withDeadline } from "../deadline";
import { log } from "../log";
import { poolCall } from "./calls";
import { isTenantPool, rateLimited, rateRule } from "./auth";
import { ApiError } from "./errors";
import { closeQuietly } from "./sockets";
import { LeaseId, PoolName } from "./schemas";
import { poolOf } from "../stubs";
import { tokenHash, tokenTenant } from "../token";
import { parse, unwrap } from "./validate";

/** Pauses between attempts to open the upstream socket (about 1 s in all). */
const UPSTREAM_RETRY_PAUSES_MS = [0, 100, 250, 600];
/** How long one attempt to open the upstream socket may take. */
const UPSTREAM_CONNECT_TIMEOUT_MS = 10_000;
/** Close code sent to a CDP client when its lease ends (application range 4000-4999). */
export const LEASE_ENDED_CLOSE_CODE = 4001;

const badToken = (detail: string) => new ApiError(401, "unauthorized", detail);

/** The rate-limit bucket of a CDP request: its client address (set by Cloudflare's edge), or one shared bucket without it. */
export function cdpRateKey(request: Request): string {
  return `cdp:${request.headers.get("cf-connecting-ip") ?? "unknown"}`;
}

/** A request on a lease's token routes (CDP, viewer): who it names, checked as far as the Worker can without the pool object. */
export interface TokenRequest {
  pool: string;
  leaseId: string;
  token: string;
  tenant: string;
}

/**
 * The first steps of every route that takes a lease's token instead of an
 * API key: counted per client address (with the RATE_LIMITER binding, where
 * bound) before anything else is done for it, names validated, and the
 * token's tenant asked whether the pool is one of its own. A token naming a
 * tenant that does not exist, or a pool that is not its tenant's, cannot
 * match any lease; answering here, from the tenant's object, keeps arbitrary
 * names from ever instantiating a pool object.
 */
export async function tokenRequest(c: Context<{ Bindings: Env }>, what: string, hint: string): Promise<TokenRequest> {
  const rate = rateRule(c.env);
  const limiter = c.env.RATE_LIMITER as RateLimit | undefined;
  if (rate && limiter) {
    const { success } = await limiter.limit({ key: cdpRateKey(c.req.raw) });
    if (!success) throw rateLimited(rate.periodMs / 1000, rate, "this client address");
  }
  const pool = parse(PoolName, c.req.param("pool"), "path.pool");
  const leaseId = parse(LeaseId, c.req.param("id"), "path.id");
  const token = c.req.query("token");
  if (!token) throw badToken(`add the lease's ${what} (?token=…): ${hint}`);
  const tenant = tokenTenant(token);
  if (tenant === undefined) throw badToken(`the ${what} is malformed`);
  if (!(await isTenantPool(c.env, tenant, pool))) throw new ApiError(404, "not_found", "lease not found");
  return { pool, leaseId, token, tenant };
}

export async function cdpHandler(c: Context<{ Bindings: Env }>): Promise<Response> {
  // Where a connect's time goes (in the cdp_opened line): the token's checks, the pool's grant, the browser's socket.
  const started = Date.now();
  const { pool, leaseId, token, tenant } = await tokenRequest(c, "connect token", "connect to the connectUrl the lease was created with");
  const checked = Date.now();
  const stub = () => poolOf(c.env, tenant, pool);
  const upgrade = (c.req.header("upgrade") ?? "").toLowerCase() === "websocket";
  // Made once: with `upgrade` it registers a socket, which a repeat would register twice.
  const grant = unwrap(await poolCall(c.env, tenant, pool, "openConnection", "once", (s) => s.openConnection(leaseId, tokenHash(token), upgrade)));
  if (!upgrade) {
    throw new ApiError(426, "upgrade_required", "this endpoint speaks CDP over WebSocket: connect with Puppeteer's browserWSEndpoint or Playwright's connectOverCDP", {
      Upgrade: "websocket",
    });
  }
  const connectionId = grant.connectionId!;

  const granted = Date.now();
  const browser = await connectUpstream(providerFactory.create(c.env), grant.sessionId);
  if (!browser) {
    // Refused every time: the pool asks the platform whether the browser is gone
    // (then the lease has ended), rather than leaving an active lease on a dead browser.
    const { gone } = await poolCall(c.env, tenant, pool, "connectFailed", "once", (s) => s.connectFailed(connectionId)).catch(() => ({ gone: false }));
    log("cdp_upstream_failed", { pool, leaseId, gone });
    if (gone) throw new ApiError(502, "browser_gone", "the leased browser is gone, so the lease has ended (endReason browser_gone); acquire a new lease");
    throw ApiError.retryable(503, "browser_busy", "the leased browser did not accept a CDP connection; retry in a moment", 1);
  }

  const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
  server.accept();
  browser.accept();
  pipe(server, browser, {
    stub,
    connectionId,
    onEnd: (by) => log("cdp_closed", { pool, leaseId, connectionId, by }),
  });
  log("cdp_opened", { pool, leaseId, connectionId, ms: { token: checked - started, grant: granted - checked, upstream: Date.now() - granted } });
  return new Response(null, { status: 101, webSocket: client });
}

/**
 * Opens the upstream CDP socket, retrying a refusal for a moment: a platform
 * that allows one connection per session refuses while the pool's own short
 * conversation with the browser (a keep-alive ping) is still closing.
 * Undefined if every attempt was refused.
 */
export async function connectUpstream(provider: BrowserProvider, sessionId: string): Promise<WebSocket | undefined> {
  for (const pause of UPSTREAM_RETRY_PAUSES_MS) {
    if (pause > 0) await scheduler.wait(pause);
    try {
      return await withDeadline(provider.connect(sessionId), UPSTREAM_CONNECT_TIMEOUT_MS, "the browser's CDP socket");
    } catch {
      // refused, or no answer in time: try again, then give up
    }
  }
  return undefined;
}

/** What the pipe needs of the pool object (a stub; tests may pass their own). */
export interface ConnectionControl {
  watchConnection(connectionId: string): Promise<{ reason: string }>;
  closeConnection(connectionId: string): Promise<void>;
}

export interface PipeOptions {
  stub: () => ConnectionControl;
  connectionId: string;
  onEnd: (by: string) => void;
}

/** Pipes two accepted sockets until either closes or the lease ends. */
export function pipe(client: WebSocket, browser: WebSocket, { stub, connectionId, onEnd }: PipeOptions): void {
  // With current compatibility dates binary frames arrive as Blob, which send()
  // would turn into the text "[object Blob]"; receive them as bytes instead.
  client.binaryType = "arraybuffer";
  browser.binaryType = "arraybuffer";
  let ended = false;
  const end = (by: string, code: number, reason: string) => {
    if (ended) return;
    ended = true;
    closeQuietly(client, code, reason);
    closeQuietly(browser, code, reason);
    onEnd(by);
    void reportClosed(stub, connectionId);
  };

  client.addEventListener("message", (event) => forward(browser, event.data));
  browser.addEventListener("message", (event) => forward(client, event.data));
  client.addEventListener("close", (event) => end("client", event.code, event.reason));
  browser.addEventListener("close", (event) => end("browser", event.code, event.reason));
  client.addEventListener("error", () => end("client_error", 1011, "client connection failed"));
  browser.addEventListener("error", () => end("browser_error", 1011, "browser connection failed"));
  watchLease(stub, connectionId, () => ended, end);
}

/**
 * Keeps a `watchConnection` call outstanding while a proxied socket lives; it
 * is answered when the lease ends, and `end` closes the socket. A failed call
 * (object restarted, deploy) is asked again; the registration is in SQL.
 */
export function watchLease(stub: () => ConnectionControl, connectionId: string, ended: () => boolean, end: (by: string, code: number, reason: string) => void): void {
  void (async () => {
    for (let attempt = 0; !ended(); attempt += 1) {
      try {
        const { reason } = await stub().watchConnection(connectionId);
        end("lease", LEASE_ENDED_CLOSE_CODE, `lease ${reason}`);
        return;
      } catch {
        if (ended()) return;
        if (attempt >= 5) {
          end("broker", 1011, "lost track of the lease");
          return;
        }
        await scheduler.wait(100 * 2 ** attempt);
      }
    }
  })();
}

/** Tells the pool object a proxied socket is gone; retried across an object restart. */
export async function reportClosed(stub: () => ConnectionControl, connectionId: string): Promise<void> {
  for (let attempt = 0; attempt < 4; attempt += 1) {
    try {
      await stub().closeConnection(connectionId);
      return;
    } catch {
      await scheduler.wait(100 * 2 ** attempt);
    }
  }
}

function forward(to: WebSocket, data: string | ArrayBuffer): void {
  try {
    to.send(data);
  } catch {
    // The other end is closing; its close event ends the pipe.
  }
}
