/**
 * Our side of a browser-level CDP socket, for the live viewer's engine
 * (src/api/viewer) and the lease recorder (src/recorder): commands with
 * numbered ids, each answered or failed within COMMAND_TIMEOUT_MS (a browser
 * that stops answering never leaves anyone waiting), and the events the
 * browser sends unasked, handed back to the caller to act on.
 */
import { withDeadline } from "../deadline";

/** How long one CDP command may take before its caller stops waiting for it. */
const COMMAND_TIMEOUT_MS = 5_000;

/** A CDP event (a message that answers no command). */
export interface CdpEvent {
  method?: string;
  params?: any;
  sessionId?: string;
}

type Pending = { resolve: (value: any) => void; reject: (error: Error) => void };

export class CdpChannel {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  constructor(private readonly socket: WebSocket) {}

  /** Sends a command (to a flat session's target with `sessionId`); its answer, or an error, a timeout's included. */
  command<T = any>(method: string, params: Record<string, unknown>, sessionId?: string): Promise<T> {
    const id = this.nextId++;
    const answer = new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      try {
        this.socket.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
      } catch (error) {
        this.pending.delete(id);
        reject(error instanceof Error ? error : new Error(String(error)));
      }
    });
    return withDeadline(answer, COMMAND_TIMEOUT_MS, method).finally(() => this.pending.delete(id));
  }

  /** Reads a message from the browser: an answer settles its command (undefined is returned), an event is returned; unparsable text is dropped. */
  receive(data: string | ArrayBuffer): CdpEvent | undefined {
    let message: CdpEvent & { id?: number; result?: unknown; error?: { message?: string } };
    try {
      message = JSON.parse(typeof data === "string" ? data : new TextDecoder().decode(data));
    } catch {
      return undefined;
    }
    if (message.id === undefined) return message;
    const waiter = this.pending.get(message.id);
    if (!waiter) return undefined;
    this.pending.delete(message.id);
    if (message.error) waiter.reject(new Error(`CDP: ${message.error.message ?? "error"}`));
    else waiter.resolve(message.result);
    return undefined;
  }

  /** Fails every command still waiting: the socket closed (or its user stopped), so no answer will come. */
  failAll(reason = "the browser connection closed"): void {
    for (const waiter of this.pending.values()) waiter.reject(new Error(reason));
    this.pending.clear();
  }
}
