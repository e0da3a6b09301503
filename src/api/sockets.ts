/**
 * Closing a WebSocket the Worker holds (a proxied CDP client, a viewer, the
 * browser's end of either). A close code read from one socket is not always
 * one that may be sent on another: 1005, 1006 and 1015 are receive-only, and
 * the runtime throws on them, so they become a plain 1000. Closing a socket
 * that already closed is not an error here.
 */

/** Closes with `code` where the protocol allows sending it (else 1000), the reason cut to 120 characters (a close frame holds 123 bytes of it). */
export function closeQuietly(socket: WebSocket, code: number, reason: string): void {
  const sendable = code === 1000 || (code >= 1001 && code <= 1014 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999);
  try {
    if (sendable) socket.close(code, reason.slice(0, 120));
    else socket.close(1000, "peer closed");
  } catch {
    // Already closed.
  }
}
