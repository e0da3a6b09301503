/**
 * A minimal CDP client over the broker's connect socket, for tests inside
 * workerd: opens the lease's connectUrl through the real Worker (SELF), sends
 * commands and awaits their answers and the socket's close by event, never by
 * sleeping.
 */
import { SELF } from "cloudflare:test";

export interface CdpSocket {
  socket: WebSocket;
  /** Sends a CDP command and resolves with its result (rejects on a CDP error or if the socket closes first). */
  send<T = any>(method: string, params?: Record<string, unknown>, sessionId?: string): Promise<T>;
  /** Resolves with the params of the next event `method` (of `sessionId`, if given). */
  next<T = any>(method: string, sessionId?: string): Promise<T>;
  /** Resolves when the socket closes, with the code and reason the broker sent. */
  closed: Promise<{ code: number; reason: string; at: number }>;
}

/** The connectUrl with its scheme and host replaced for SELF (the Worker under test). */
export function viaSelf(connectUrl: string): string {
  const url = new URL(connectUrl);
  return `https://broker.test${url.pathname}${url.search}`;
}

/** Tries to open a connect socket; returns the HTTP answer when the broker refuses. */
export async function tryConnect(connectUrl: string): Promise<{ status: number; body: any; cdp?: CdpSocket }> {
  const response = await SELF.fetch(viaSelf(connectUrl), { headers: { Upgrade: "websocket" } });
  if (!response.webSocket) {
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : undefined };
  }
  const socket = response.webSocket;
  socket.accept();
  let next = 1;
  const pending = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>();
  const listeners: { method: string; sessionId: string | undefined; resolve: (params: any) => void }[] = [];
  socket.addEventListener("message", (event) => {
    const message = JSON.parse(typeof event.data === "string" ? event.data : new TextDecoder().decode(event.data));
    if (message.method) {
      const index = listeners.findIndex((l) => l.method === message.method && (l.sessionId === undefined || l.sessionId === message.sessionId));
      if (index >= 0) listeners.splice(index, 1)[0]!.resolve(message.params);
      return;
    }
    const waiter = message.id === undefined ? undefined : pending.get(message.id);
    if (!waiter) return;
    pending.delete(message.id);
    if (message.error) waiter.reject(new Error(`${message.error.code}: ${message.error.message}`));
    else waiter.resolve(message.result);
  });
  const closed = new Promise<{ code: number; reason: string; at: number }>((resolve) => {
    socket.addEventListener("close", (event) => {
      for (const waiter of pending.values()) waiter.reject(new Error(`socket closed (${event.code})`));
      pending.clear();
      resolve({ code: event.code, reason: event.reason, at: Date.now() });
    });
  });
  const cdp: CdpSocket = {
    socket,
    closed,
    next(method, sessionId) {
      return new Promise((resolve) => listeners.push({ method, sessionId, resolve }));
    },
    send(method, params = {}, sessionId) {
      const id = next++;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        socket.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
      });
    },
  };
  return { status: response.status, body: undefined, cdp };
}

export async function connect(connectUrl: string): Promise<CdpSocket> {
  const attempt = await tryConnect(connectUrl);
  if (!attempt.cdp) throw new Error(`connect refused: ${attempt.status} ${JSON.stringify(attempt.body)}`);
  return attempt.cdp;
}

/**
 * Opens a page on `html` (as a data: URL) and returns its target id and an
 * attached session, once the page has loaded.
 */
export async function openPage(cdp: CdpSocket, html: string): Promise<{ targetId: string; sessionId: string }> {
  const { targetId } = await cdp.send<{ targetId: string }>("Target.createTarget", { url: "about:blank" });
  const { sessionId } = await cdp.send<{ sessionId: string }>("Target.attachToTarget", { targetId, flatten: true });
  await cdp.send("Page.enable", {}, sessionId);
  const loaded = cdp.next("Page.loadEventFired", sessionId);
  const navigated = await cdp.send<{ errorText?: string }>("Page.navigate", { url: `data:text/html,${encodeURIComponent(html)}` }, sessionId);
  if (navigated.errorText) throw new Error(`navigation failed: ${navigated.errorText}`);
  await loaded;
  return { targetId, sessionId };
}

/** URLs of the browser's page targets. */
export async function pageUrls(cdp: CdpSocket): Promise<string[]> {
  const { targetInfos } = await cdp.send<{ targetInfos: { type: string; url: string }[] }>("Target.getTargets");
  return targetInfos.filter((t) => t.type === "page").map((t) => t.url);
}
