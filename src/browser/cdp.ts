/**
 * A minimal CDP client over the binding's DevTools WebSocket
 * (`/v1/devtools/browser/{sessionId}`, the same path the CDP proxy uses), for
 * the pool's own short conversations with a browser: reset and ping. It avoids
 * @cloudflare/puppeteer's connect, whose legacy socket path makes the local
 * binding throw on disconnect ("Can't call WebSocket send() after close()"),
 * which under load restarted the local Worker mid-request.
 */
const PLATFORM = "https://fake.host";

export type Send = <T = Record<string, unknown>>(method: string, params?: Record<string, unknown>, sessionId?: string) => Promise<T>;

export async function withCdp<T>(binding: Fetcher, sessionId: string, talk: (send: Send) => Promise<T>): Promise<T> {
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
  socket.addEventListener("message", (event) => {
    const text = typeof event.data === "string" ? event.data : new TextDecoder().decode(event.data);
    const message = JSON.parse(text) as { id?: number; result?: unknown; error?: { message: string } };
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
      pending.set(id, { resolve, reject });
      socket.send(JSON.stringify({ id, method, params, ...(session ? { sessionId: session } : {}) }));
    });
  try {
    return await talk(send);
  } finally {
    try {
      socket.close(1000, "done");
    } catch {
      // already closed
    }
  }
}
