/**
 * A simulated browser platform, for load runs, chaos runs and benchmarks only
 * (never for feature tests, which use real Chromium): launches take a set
 * time and fail or hang at set rates, browsers live in memory. Selected with
 * the Worker variable BROWSER_PROVIDER=simulated (e.g. `wrangler dev --var
 * BROWSER_PROVIDER:simulated`); never set it in production.
 *
 * Sessions live in a module-level map, shared by every pool object of the
 * isolate, so `list()` is account-wide as on the real platform.
 */
import type { BrowserProvider, LiveSession, PlatformLimits } from "./provider";
import { PlatformLimitError } from "./provider";
import type { StoredState } from "./state";

export interface SimulationConfig {
  launchMs: number;
  /** Extra launch time, uniform in [0, launchJitterMs). */
  launchJitterMs: number;
  /** Share of launches that fail (0-1). */
  launchFailRate: number;
  /** Share of launches refused for the platform limit (0-1). */
  launchLimitRate: number;
  /** Most browsers alive at once (the platform's concurrency limit). */
  maxBrowsers: number;
  /** Time a reset (cleaning for the next lease) takes; 0 answers without waiting. */
  resetMs: number;
  /** Time a close takes; 0 answers without waiting. */
  closeMs: number;
  /** The platform's session list never answers (SIM_LIST_HANGS=1): reconciliation must not stall anything. */
  listHangs: boolean;
}

const browsers = new Map<string, LiveSession>();
let counter = 0;
/** The state each simulated browser was given (applyState), until its reset. */
const states = new Map<string, StoredState>();

export function simulationConfig(env: Record<string, unknown>): SimulationConfig {
  const num = (key: string, fallback: number) => {
    const value = Number(env[key]);
    return Number.isFinite(value) && env[key] !== undefined && env[key] !== "" ? value : fallback;
  };
  return {
    launchMs: num("SIM_LAUNCH_MS", 200),
    launchJitterMs: num("SIM_LAUNCH_JITTER_MS", 0),
    launchFailRate: num("SIM_LAUNCH_FAIL_RATE", 0),
    launchLimitRate: num("SIM_LAUNCH_LIMIT_RATE", 0),
    maxBrowsers: num("SIM_MAX_BROWSERS", 120),
    resetMs: num("SIM_RESET_MS", 5),
    closeMs: num("SIM_CLOSE_MS", 5),
    listHangs: env.SIM_LIST_HANGS === "1" || env.SIM_LIST_HANGS === true,
  };
}

export class SimulatedProvider implements BrowserProvider {
  constructor(private readonly config: SimulationConfig) {}

  async launch(): Promise<string> {
    await scheduler.wait(this.config.launchMs + Math.random() * this.config.launchJitterMs);
    const roll = Math.random();
    if (roll < this.config.launchLimitRate || browsers.size >= this.config.maxBrowsers) {
      throw new PlatformLimitError("Unable to create new browser: code: 429: simulated limit", 2);
    }
    if (roll < this.config.launchLimitRate + this.config.launchFailRate) throw new Error("simulated launch failure");
    counter += 1;
    const sessionId = `sim-${counter}-${crypto.randomUUID().slice(0, 8)}`;
    browsers.set(sessionId, { sessionId, startTime: Date.now(), connected: false });
    return sessionId;
  }

  async close(sessionId: string): Promise<void> {
    if (this.config.closeMs > 0) await scheduler.wait(this.config.closeMs);
    browsers.delete(sessionId);
  }

  async reset(sessionId: string): Promise<void> {
    if (this.config.resetMs > 0) await scheduler.wait(this.config.resetMs);
    if (!browsers.has(sessionId)) throw new Error(`browser ${sessionId} is gone`);
    states.delete(sessionId);
  }

  /** A simulated browser keeps the state it was given (in this isolate's memory), so reads give it back, until a reset. */
  async applyState(sessionId: string, state: StoredState): Promise<void> {
    if (!browsers.has(sessionId)) throw new Error(`browser ${sessionId} is gone`);
    states.set(sessionId, structuredClone(state));
  }

  async readState(sessionId: string): Promise<StoredState> {
    if (!browsers.has(sessionId)) throw new Error(`browser ${sessionId} is gone`);
    return structuredClone(states.get(sessionId) ?? { cookies: [], localStorage: {} });
  }

  async ping(sessionId: string): Promise<void> {
    if (!browsers.has(sessionId)) throw new Error(`browser ${sessionId} is gone`);
  }

  async list(): Promise<LiveSession[]> {
    if (this.config.listHangs) return new Promise<never>(() => {});
    return [...browsers.values()];
  }

  async probe(sessionId: string): Promise<boolean> {
    return browsers.has(sessionId);
  }

  async connect(): Promise<WebSocket> {
    throw new Error("simulated browsers cannot be driven over CDP");
  }

  async limits(): Promise<PlatformLimits> {
    return { maxConcurrentSessions: this.config.maxBrowsers, allowedBrowserAcquisitions: Math.max(0, this.config.maxBrowsers - browsers.size), timeUntilNextAllowedBrowserAcquisition: 0 };
  }
}
