/**
 * What the pool needs from a browser platform, and nothing more. The pool object
 * talks only to this interface, so tests can inject faults (slow, failing or
 * hanging launches, crashed browsers) and benchmarks can measure the broker
 * without Chromium, while `npm start` and the integration tests use the real
 * Browser Rendering binding (rendering.ts).
 */
import type { StoredState } from "./state";

export interface LiveSession {
  sessionId: string;
  /** Epoch ms the platform started it. */
  startTime: number;
  /** True while some client holds a devtools connection to it. */
  connected: boolean;
}

export interface BrowserProvider {
  /** Starts a browser and returns its platform session id, without keeping a connection. */
  launch(options: { keepAliveMs: number }): Promise<string>;
  /** Ends a browser. Resolves when it is gone (a browser already gone counts as closed). */
  close(sessionId: string): Promise<void>;
  /** Makes a used browser fit for the next lease: closes the previous lease's pages and contexts, and forgets its cookies and storage. */
  reset(sessionId: string): Promise<void>;
  /** Sets cookies and localStorage in the browser's default context (context.ts): a lease's `context` or profile, before it is granted. */
  applyState(sessionId: string, state: StoredState): Promise<void>;
  /** The default context's cookies and the localStorage its tabs' origins hold (context.ts). */
  readState(sessionId: string): Promise<StoredState>;
  /** Shows activity so the platform does not kill an idle browser; rejects if the browser is gone. */
  ping(sessionId: string): Promise<void>;
  /** The platform's live sessions (for the whole account, not only this pool's). It can lag or omit. */
  list(): Promise<LiveSession[]>;
  /**
   * Asks the platform about one session without connecting to it (so it never
   * competes with a client's connection): true if it runs, false if it ended or
   * is unknown; rejects when the platform does not say.
   */
  probe(sessionId: string): Promise<boolean>;
  /** Opens a CDP WebSocket to the browser (the lessee's connection, proxied by the Worker); rejects if refused. */
  connect(sessionId: string): Promise<WebSocket>;
  /**
   * What the platform says the account may do now (`puppeteer.limits()`).
   * Asked after a launch was refused for the limits, to back off by as long
   * as the platform says. Locally the binding answers fixed figures that
   * nothing enforces, so the broker never takes its concurrency from here
   * unless the platform has just refused a launch.
   */
  limits(): Promise<PlatformLimits>;
}

export interface PlatformLimits {
  maxConcurrentSessions: number;
  allowedBrowserAcquisitions: number;
  /** Milliseconds until the platform allows the next new browser. */
  timeUntilNextAllowedBrowserAcquisition: number;
}

/** A launch the platform refused because a limit was reached (HTTP 429 at launch). */
export class PlatformLimitError extends Error {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(message);
    this.name = "PlatformLimitError";
  }
}

/**
 * keep_alive passed to the platform at launch by default: the binding's
 * documented maximum, 10 minutes. The platform ends a browser that hears no
 * devtools command for that long.
 */
export const KEEP_ALIVE_MS = 600_000;
/** The longest keep_alive the platform accepts (its REST API: 20 minutes). */
export const MAX_KEEP_ALIVE_MS = 1_200_000;

/** keep_alive to launch with: the Worker var BROWSER_KEEP_ALIVE_SECONDS (60 s to 20 minutes), else KEEP_ALIVE_MS. */
export function keepAliveOf(env: Env): number {
  const seconds = Number((env as { BROWSER_KEEP_ALIVE_SECONDS?: string }).BROWSER_KEEP_ALIVE_SECONDS);
  return Number.isFinite(seconds) && seconds >= 60 ? Math.min(seconds * 1000, MAX_KEEP_ALIVE_MS) : KEEP_ALIVE_MS;
}
