/**
 * A minimal CDP client over the binding's DevTools WebSocket
 * (`/v1/devtools/browser/{sessionId}`, the same path the CDP proxy uses), for
 * the pool's own short conversations with a browser: reset and ping, and the
 * Worker's reads and writes of a browser's state (context.ts). It avoids
 * @cloudflare/puppeteer's connect, whose legacy socket path makes the local
 * binding throw on disconnect ("Can't call WebSocket send() after close()"),
 * which under load restarted the local Worker mid-request.
 */
const PLATFORM = "https://fake.host";

export type Send = <T = Record<string, unknown>>(method: string, params?: Record<string, unknown>, sessionId?: string) => Promise<T>;
/** Events the browser sends unasked: `on(method, handler)` until the returned function is called (or the conversation ends). */
export type On = (method: string, handler: (params: any, sessionId: string | undefined) => void) => () => void;

export async function withCdp<T>(binding: Fetcher, sessionId: string, talk: (send: Send, on: On) => Promise<T>): Promise<T> {
  const response = await binding.fetch(`${PLATFORM}/v1/devtools/browser/${encodeURIComponent(sessionId)}`, {
    headers: { Upgrade: "websocket" },
  });
  const socket = response.webSocket;
  if (!socket) {
    await response.body?.cancel();
    throw new Error(`browser ${sessionId} refused a DevTools connection (${response.status})`);
  }
  socket.accept();
  socket.binaryType = "arraybuffer";
  let next = 1;
  let closed: Error | undefined;
  const pending = new Map<number, { resolve: (value: any) => void; reject: (error: Error) => void }>();
  const listeners = new Set<{ method: string; handler: (params: any, sessionId: string | undefined) => void }>();
  socket.addEventListener("message", (event) => {
    const text = typeof event.data === "string" ? event.data : new TextDecoder().decode(event.data);
    const message = JSON.parse(text) as { id?: number; result?: unknown; error?: { message: string }; method?: string; params?: unknown; sessionId?: string };
    if (message.id === undefined && message.method) {
      for (const listener of listeners) if (listener.method === message.method) listener.handler(message.params, message.sessionId);
      return;
    }
    const waiter = message.id === undefined ? undefined : pending.get(message.id);
    if (!waiter) return;
    pending.delete(message.id!);
    if (message.error) waiter.reject(new Error(`CDP: ${message.error.message}`));
    else waiter.resolve(message.result);
  });
  const fail = (error: Error) => {
    closed = error;
    for (const waiter of pending.values()) waiter.reject(error);
    pending.clear();
  };
  socket.addEventListener("close", (event) => fail(new Error(`DevTools connection closed (${event.code})`)));
  socket.addEventListener("error", () => fail(new Error("DevTools connection failed")));
  const send: Send = (method, params = {}, session) =>
    new Promise((resolve, reject) => {
      if (closed) return reject(closed);
      const id = next++;
      pending.set(id, { resolve, reject: (error) => reject(error.message.startsWith("CDP: ") ? new Error(`CDP ${method}: ${error.message.slice(5)}`) : error) });
      socket.send(JSON.stringify({ id, method, params, ...(session ? { sessionId: session } : {}) }));
    });
  const on: On = (method, handler) => {
    const listener = { method, handler };
    listeners.add(listener);
    return () => listeners.delete(listener);
  };
  try {
    return await talk(send, on);
  } finally {
    try {
      socket.close(1000, "done");
    } catch {
      // already closed
    }
  }
}
