/**
 * The pool's calls to the account's capacity governor (src/governor): a
 * permit before every launch, the launch's outcome after it, permits given
 * back when browsers end, and a periodic list of the permits the pool holds
 * (so the governor drops what a lost call left behind, and a pool that died
 * returns its permits by their expiry). The warm path, an idle session handed
 * to a caller, never asks the governor anything.
 *
 * The governor is one object for the whole account, so it can be slow or
 * unreachable. Every call has a short deadline, and a pool that cannot reach
 * it never blocks: it launches within a small local budget
 * (GOVERNOR_FALLBACK_SESSIONS live browsers, default 2), says so in its view
 * (`account.governor: "unreachable"`) and counts it, and the next list it
 * sends once the governor answers again adopts what it launched meanwhile.
 */
import type { AccountGlance, LaunchOutcome, PermitAnswer } from "../governor/object";
import { message, withDeadline } from "../deadline";
import { log } from "../log";
import type { Failure } from "../result";
import { governorOf } from "../stubs";

/** A call to the governor that takes longer is treated as unreachable. */
export const GOVERNOR_TIMEOUT_MS = 3_000;
/** How soon a pool over its local budget tries the governor again. */
export const FALLBACK_RETRY_MS = 5_000;
/** Live browsers a pool may hold while the governor cannot be reached (Worker var GOVERNOR_FALLBACK_SESSIONS). */
export const DEFAULT_FALLBACK_SESSIONS = 2;

export type PermitDecision = { ok: true; fallback: boolean } | { ok: false; reason: string; retryAfterMs: number; failure?: Failure };

export interface AccountView {
  governor: "ok" | "unreachable" | "unknown";
  /** Since when the governor has not answered (ISO), while unreachable. */
  unreachableSince: string | null;
  /** What the governor last said about the account (null before it said anything). */
  limit: number | null;
  used: number | null;
  headroom: number | null;
  breaker: AccountGlance["breaker"] | null;
}

export class AccountLink {
  /** Which governor object: the account's ("account"); tests give a pool one of its own. */
  governorName = "account";
  private glance: AccountGlance | null = null;
  private unreachableSince: number | null = null;
  /** Permit requests not answered yet (tests wait for them before moving the clock). */
  private readonly asking = new Set<Promise<unknown>>();

  constructor(
    private readonly deps: {
      env: () => Env;
      tenant: () => string;
      pool: () => string;
      clock: () => number;
      /** Browsers the pool holds now (launching ones included). */
      live: () => number;
      /** Deadline of each call (GOVERNOR_TIMEOUT_MS; tests shorten it). */
      timeoutMs: () => number;
    },
  ) {}

  private governor() {
    return governorOf(this.deps.env(), this.governorName);
  }

  private call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    return withDeadline((async () => fn())(), this.deps.timeoutMs(), `the account's capacity governor (${what})`);
  }

  /** A permit id is unique in the account: the pool's name and its session row. */
  permitId(row: number): string {
    return `${this.deps.tenant()}/${this.deps.pool()}/${row}`;
  }

  /** Asks for the permit of the launch of `row` (warm: no caller waits for it). Never throws. */
  request(row: number, warm: boolean): Promise<PermitDecision> {
    const asked = this.ask(row, warm);
    this.asking.add(asked);
    void asked.finally(() => this.asking.delete(asked));
    return asked;
  }

  /** Resolves when every permit request made so far has been answered (or given up). */
  async answered(): Promise<void> {
    while (this.asking.size > 0) await Promise.allSettled([...this.asking]);
  }

  private async ask(row: number, warm: boolean): Promise<PermitDecision> {
    try {
      const ask = { tenant: this.deps.tenant(), pool: this.deps.pool(), permitId: this.permitId(row), kind: warm ? "warm" : "demand" } as const;
      // The RPC stub's type of a union answer is not the union itself: read it as the governor declares it.
      const answer = await this.call("acquire", async () => (await this.governor().acquire(ask)) as PermitAnswer);
      this.reached(answer.glance);
      if (answer.granted) return { ok: true, fallback: false };
      return {
        ok: false,
        reason: answer.reason,
        retryAfterMs: answer.retryAfterMs,
        ...(answer.reason === "breaker_open"
          ? {
              failure: {
                status: 503,
                code: "browser_unavailable",
                detail: "launches keep failing across the account, so its circuit breaker is open; idle sessions are still served",
                retryAfter: Math.max(1, Math.ceil(answer.retryAfterMs / 1000)),
              },
            }
          : {}),
      } as PermitDecision;
    } catch (error) {
      this.lost(error);
      if (this.deps.live() <= fallbackSessions(this.deps.env())) return { ok: true, fallback: true };
      return { ok: false, reason: "governor_unreachable", retryAfterMs: FALLBACK_RETRY_MS };
    }
  }

  /** Tells the governor how a permitted launch ended. Never throws. */
  async settle(row: number, outcome: LaunchOutcome): Promise<void> {
    try {
      this.reached(await this.call("settle", () => this.governor().settle(this.deps.tenant(), this.deps.pool(), this.permitId(row), outcome)));
    } catch (error) {
      this.lost(error);
    }
  }

  /** Gives back the permits of browsers that ended (the next `sync` repairs a call that is lost). Never throws. */
  async release(rows: number[]): Promise<void> {
    if (rows.length === 0) return;
    try {
      await this.call("release", () => this.governor().release(this.deps.tenant(), this.deps.pool(), rows.map((row) => this.permitId(row))));
    } catch (error) {
      this.lost(error);
    }
  }

  /** The pool's whole list of live permits; answers how many browsers the governor asks it to shed (0 if it did not answer). */
  async sync(rows: number[]): Promise<number> {
    try {
      const answer = await this.call("sync", () => this.governor().sync(this.deps.tenant(), this.deps.pool(), rows.map((row) => this.permitId(row))));
      this.reached(answer.glance);
      return answer.shed;
    } catch (error) {
      this.lost(error);
      return 0;
    }
  }

  view(): AccountView {
    const glance = this.glance;
    return {
      governor: this.unreachableSince !== null ? "unreachable" : glance ? "ok" : "unknown",
      unreachableSince: this.unreachableSince === null ? null : new Date(this.unreachableSince).toISOString(),
      limit: glance?.limit ?? null,
      used: glance?.used ?? null,
      headroom: glance?.headroom ?? null,
      breaker: glance?.breaker ?? null,
    };
  }

  /** Whether the governor failed to answer its last call. */
  unreachable(): boolean {
    return this.unreachableSince !== null;
  }

  private reached(glance: AccountGlance): void {
    this.glance = glance;
    if (this.unreachableSince !== null) log("governor_reached", { pool: `${this.deps.tenant()}/${this.deps.pool()}` });
    this.unreachableSince = null;
  }

  private lost(error: unknown): void {
    if (this.unreachableSince === null) {
      this.unreachableSince = this.deps.clock();
      log("governor_unreachable", { pool: `${this.deps.tenant()}/${this.deps.pool()}`, error: message(error) });
    }
  }
}

/** The local budget of a pool that cannot reach the governor: Worker var GOVERNOR_FALLBACK_SESSIONS (0 or more), else 2. */
export function fallbackSessions(env: Env): number {
  const raw: string | undefined = env.GOVERNOR_FALLBACK_SESSIONS;
  const value = Number(raw);
  return raw !== undefined && raw !== "" && Number.isInteger(value) && value >= 0 ? value : DEFAULT_FALLBACK_SESSIONS;
}
