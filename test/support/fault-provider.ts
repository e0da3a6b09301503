/**
 * A browser provider for fault injection: launches that succeed, fail, hit the
 * platform limit, hang, or wait for the test to decide; browsers that crash
 * from outside; closes that fail. Every launch is announced as an event the
 * test can await (`nextLaunch()`), so race tests control the order in which
 * the pool object's awaits resolve without sleeping.
 *
 * It never stands in for the real browser in feature tests: those run real
 * Chromium through the BROWSER binding.
 */
import type { BrowserProvider, LiveSession, PlatformLimits } from "../../src/browser/provider";
import { PlatformLimitError } from "../../src/browser/provider";
import type { StoredState } from "../../src/browser/state";

export type LaunchPlan =
  | { kind: "ok" }
  | { kind: "fail"; message?: string }
  | { kind: "limit"; retryAfterSeconds?: number }
  | { kind: "hang" }
  /** The launch waits until the test calls `succeed()` or `fail()` on it. */
  | { kind: "manual" };

/** One answer of list() (`listPlan`). */
export type ListStep = "hang" | "empty" | "manual" | `omit:${string}`;

/** A close, reset or ping the test decides (when `manualIo` is on). */
export interface PendingIo {
  kind: "close" | "reset" | "ping";
  sessionId: string;
  /** Does what the platform would (a close ends the browser; a reset or ping of a dead browser fails). */
  succeed(): void;
  fail(message?: string): void;
}

export interface PendingLaunch {
  /** Completes the launch; returns the new session id. */
  succeed(): string;
  fail(message?: string): void;
}

let sequence = 0;

export class FaultProvider implements BrowserProvider {
  /** Browsers alive on the fake platform. */
  readonly live = new Map<string, LiveSession>();
  readonly closed: string[] = [];
  readonly resets: string[] = [];
  readonly pings: string[] = [];
  launches = 0;
  /** Outcomes for the next launches, in order; when empty, `defaultPlan` applies. */
  plan: LaunchPlan[] = [];
  defaultPlan: LaunchPlan = { kind: "ok" };
  failCloses = 0;
  failResets = 0;
  /** When on, closes, resets and pings wait for the test (`takeIo`) instead of completing at once. */
  manualIo = false;
  /**
   * How the next list() calls answer, in order; when empty, list() answers every
   * live browser, as always. "hang": never answers; "empty": answers []
   * (the platform's view lagging); "omit:<id>": every live browser but that one;
   * "manual": answers what is live when the test calls `answerList()`.
   */
  listPlan: ListStep[] = [];
  private pendingLists: Array<() => void> = [];
  readonly probes: string[] = [];
  /** Probes answer "unknown" (reject) while this is on: the platform does not say. */
  probesFail = false;
  /**
   * CDP connections one browser accepts at once (undefined: any number). The
   * platform accepted one per session before September 2026: a ping, reset or
   * check holds one while it runs, and so does every `connect`.
   */
  maxConnections: number | undefined = undefined;
  /** Open CDP connections per session (the pool's own conversations and clients'). */
  readonly connections = new Map<string, number>();
  /** Connects refused (the browser was gone, or busy with another connection). */
  refusedConnects = 0;
  /**
   * When set, a browser that hears no devtools command (launch, ping, reset,
   * an open connection) for this long on `clock` is ended, as the platform's
   * keep_alive does. Checked whenever the provider is used.
   */
  keepAliveMs: number | undefined = undefined;
  clock: () => number = () => Date.now();
  private readonly activeAt = new Map<string, number>();
  /** What limits() answers (the platform's figures); `limitsFail` makes it reject (the platform does not say). */
  platformLimits: PlatformLimits = { maxConcurrentSessions: 120, allowedBrowserAcquisitions: 120, timeUntilNextAllowedBrowserAcquisition: 0 };
  limitsFail = false;
  limitsAsked = 0;
  /** The next calls of these kinds throw synchronously (a bug in an effect's code path), once each. */
  throwNext: Array<"close" | "reset" | "ping" | "launch"> = [];
  private pending: PendingLaunch[] = [];
  private pendingIo: PendingIo[] = [];
  private launchListeners: Array<(launch: PendingLaunch) => void> = [];

  launch(): Promise<string> {
    this.throwIfPlanned("launch");
    return this.launchAsync();
  }

  private async launchAsync(): Promise<string> {
    this.launches += 1;
    const plan = this.plan.shift() ?? this.defaultPlan;
    switch (plan.kind) {
      case "ok":
        return this.start();
      case "fail":
        throw new Error(plan.message ?? "injected launch failure");
      case "limit":
        throw new PlatformLimitError("Unable to create new browser: code: 429: rate limit", plan.retryAfterSeconds ?? 5);
      case "hang":
        return new Promise<string>(() => {});
      case "manual":
        return new Promise<string>((resolve, reject) => {
          const launch: PendingLaunch = {
            succeed: () => {
              const id = this.start();
              resolve(id);
              return id;
            },
            fail: (message = "injected launch failure") => reject(new Error(message)),
          };
          const listener = this.launchListeners.shift();
          if (listener) listener(launch);
          else this.pending.push(launch);
        });
    }
  }

  /** Resolves with the next manual launch the pool starts (or one already started). */
  nextLaunch(): Promise<PendingLaunch> {
    const launch = this.pending.shift();
    if (launch) return Promise.resolve(launch);
    return new Promise((resolve) => this.launchListeners.push(resolve));
  }

  /** Manual launches started and not yet taken by the test. */
  get pendingLaunches(): number {
    return this.pending.length;
  }

  /** Takes one of the manual launches waiting for a decision (index wraps), for any-order resolution. */
  takeLaunch(index: number): PendingLaunch | undefined {
    if (this.pending.length === 0) return undefined;
    return this.pending.splice(index % this.pending.length, 1)[0];
  }

  close(sessionId: string): Promise<void> {
    this.throwIfPlanned("close");
    return this.io("close", sessionId, () => {
      if (this.failCloses > 0) {
        this.failCloses -= 1;
        throw new Error("injected close failure");
      }
      this.closed.push(sessionId);
      this.live.delete(sessionId);
    });
  }

  reset(sessionId: string): Promise<void> {
    this.throwIfPlanned("reset");
    return this.io("reset", sessionId, () => {
      if (this.failResets > 0) {
        this.failResets -= 1;
        throw new Error("injected reset failure");
      }
      if (!this.live.has(sessionId)) throw new Error(`session ${sessionId} is gone`);
      this.resets.push(sessionId);
      this.states.delete(sessionId);
    });
  }

  /** Each browser's state as applied (until its reset); `stateHangs` makes reads and writes never answer. */
  readonly states = new Map<string, StoredState>();
  stateHangs = false;

  applyState(sessionId: string, state: StoredState): Promise<void> {
    if (this.stateHangs) return new Promise<never>(() => {});
    if (!this.live.has(sessionId)) return Promise.reject(new Error(`session ${sessionId} is gone`));
    this.states.set(sessionId, structuredClone(state));
    return Promise.resolve();
  }

  readState(sessionId: string): Promise<StoredState> {
    if (this.stateHangs) return new Promise<never>(() => {});
    if (!this.live.has(sessionId)) return Promise.reject(new Error(`session ${sessionId} is gone`));
    return Promise.resolve(structuredClone(this.states.get(sessionId) ?? { cookies: [], localStorage: {} }));
  }

  ping(sessionId: string): Promise<void> {
    this.throwIfPlanned("ping");
    return this.io("ping", sessionId, () => {
      if (!this.live.has(sessionId)) throw new Error(`session ${sessionId} is gone`);
      this.pings.push(sessionId);
    });
  }

  /** Closes, resets and pings started and not yet decided by the test. */
  get pendingIoCount(): number {
    return this.pendingIo.length;
  }

  /** Takes the first reset or ping of `sessionId` waiting for a decision (the pool's own conversation with that browser). */
  takeConversationOf(sessionId: string): PendingIo | undefined {
    const index = this.pendingIo.findIndex((io) => io.sessionId === sessionId && io.kind !== "close");
    return index < 0 ? undefined : this.pendingIo.splice(index, 1)[0];
  }

  /** Takes one of the closes, resets or pings waiting for a decision (index wraps). */
  takeIo(index: number): PendingIo | undefined {
    if (this.pendingIo.length === 0) return undefined;
    return this.pendingIo.splice(index % this.pendingIo.length, 1)[0];
  }

  private io(kind: PendingIo["kind"], sessionId: string, effect: () => void): Promise<void> {
    this.expire();
    // A ping or reset speaks CDP: it holds a connection to the browser while it runs.
    const talks = kind !== "close";
    if (talks) {
      try {
        this.openConnection(sessionId);
      } catch (error) {
        return Promise.reject(error);
      }
    }
    const done = () => {
      if (talks) this.closeConnection(sessionId);
    };
    const act = () => {
      this.touch(sessionId);
      effect();
    };
    if (!this.manualIo) {
      try {
        act();
        return Promise.resolve();
      } catch (error) {
        return Promise.reject(error);
      } finally {
        done();
      }
    }
    return new Promise<void>((resolve, reject) => {
      this.pendingIo.push({
        kind,
        sessionId,
        succeed: () => {
          try {
            act();
            resolve();
          } catch (error) {
            reject(error);
          } finally {
            done();
          }
        },
        fail: (message = `injected ${kind} failure`) => {
          done();
          reject(new Error(message));
        },
      });
    });
  }

  async limits(): Promise<PlatformLimits> {
    this.limitsAsked += 1;
    if (this.limitsFail) throw new Error("injected limits failure");
    return { ...this.platformLimits };
  }

  async probe(sessionId: string): Promise<boolean> {
    this.expire();
    this.probes.push(sessionId);
    if (this.probesFail) throw new Error("injected probe failure: the platform did not say");
    return this.live.has(sessionId);
  }

  /**
   * A client's CDP connection: a socket whose far end answers every command
   * with an empty result, open until either end closes it. Refused when the
   * browser is gone or already has `maxConnections`.
   */
  async connect(sessionId: string): Promise<WebSocket> {
    this.expire();
    this.openConnection(sessionId);
    const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
    server.accept();
    let open = true;
    const close = () => {
      if (!open) return;
      open = false;
      this.closeConnection(sessionId);
    };
    server.addEventListener("message", (event) => {
      this.touch(sessionId);
      const { id } = JSON.parse(String(event.data)) as { id?: number };
      if (id !== undefined) server.send(JSON.stringify({ id, result: {} }));
    });
    server.addEventListener("close", () => {
      close();
      try {
        server.close(1000, "closed");
      } catch {
        // already closed
      }
    });
    return client;
  }

  /** Something else holds one of the browser's connections until the returned function is called. */
  occupy(sessionId: string): () => void {
    this.openConnection(sessionId);
    let held = true;
    return () => {
      if (held) this.closeConnection(sessionId);
      held = false;
    };
  }

  private openConnection(sessionId: string): void {
    const open = this.connections.get(sessionId) ?? 0;
    if (!this.live.has(sessionId) || (this.maxConnections !== undefined && open >= this.maxConnections)) {
      this.refusedConnects += 1;
      throw new Error(`browser ${sessionId} refused a DevTools connection`);
    }
    this.connections.set(sessionId, open + 1);
    this.touch(sessionId);
  }

  private closeConnection(sessionId: string): void {
    const open = (this.connections.get(sessionId) ?? 1) - 1;
    if (open > 0) this.connections.set(sessionId, open);
    else this.connections.delete(sessionId);
    this.touch(sessionId);
  }

  private touch(sessionId: string): void {
    this.activeAt.set(sessionId, this.clock());
  }

  /** The platform's keep_alive: browsers idle (no command, no open connection) for keepAliveMs end. */
  expire(): void {
    if (this.keepAliveMs === undefined) return;
    const now = this.clock();
    for (const sessionId of [...this.live.keys()]) {
      if ((this.connections.get(sessionId) ?? 0) > 0) continue;
      if (now - (this.activeAt.get(sessionId) ?? now) >= this.keepAliveMs) this.live.delete(sessionId);
    }
  }

  private throwIfPlanned(kind: "close" | "reset" | "ping" | "launch"): void {
    const index = this.throwNext.indexOf(kind);
    if (index < 0) return;
    this.throwNext.splice(index, 1);
    throw new Error(`injected ${kind} that throws synchronously`);
  }

  async list(): Promise<LiveSession[]> {
    this.expire();
    const step = this.listPlan.shift();
    if (step === "hang") return new Promise<LiveSession[]>(() => {});
    if (step === "manual") return new Promise<LiveSession[]>((resolve) => this.pendingLists.push(() => resolve([...this.live.values()])));
    if (step === "empty") return [];
    const all = [...this.live.values()];
    if (step !== undefined) return all.filter((s) => s.sessionId !== step.slice("omit:".length));
    return all;
  }

  /** Answers the oldest list() waiting on a "manual" step (call from inside the object). Returns whether one was waiting. */
  answerList(): boolean {
    const answer = this.pendingLists.shift();
    answer?.();
    return answer !== undefined;
  }

  /** list() calls waiting on a "manual" step. */
  get pendingListCount(): number {
    return this.pendingLists.length;
  }

  /** A browser dies from outside (crash, platform kill). */
  crash(sessionId: string): void {
    this.live.delete(sessionId);
  }

  /** A browser the pool never launched appears on the platform (another pool's, or an orphan). */
  spawnForeign(): string {
    return this.start();
  }

  private start(): string {
    sequence += 1;
    const sessionId = `fake-${sequence}-${Math.random().toString(36).slice(2, 8)}`;
    this.live.set(sessionId, { sessionId, startTime: Date.now(), connected: false });
    this.touch(sessionId);
    return sessionId;
  }
}
