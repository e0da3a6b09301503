/**
 * The I/O a transition asks for, performed: launches, closes, resets, checks,
 * pings and probes against the browser platform, the registry's calls, and
 * the answers to waiting callers. Each effect runs on its own (one whose code
 * throws is recorded as that effect's failure and never keeps the others from
 * running), each has a deadline, and each outcome is fed back to the machine
 * as another transition through the shell, which drops it if the pool's
 * storage was deleted since the effect started.
 */
import { PlatformLimitError } from "../browser/provider";
import { message, withDeadline } from "../deadline";
import { log } from "../log";
import {
  CHECK_TIMEOUT_MS,
  checkFailed,
  checkPassed,
  CLOSE_TIMEOUT_MS,
  closeFailed,
  closeSucceeded,
  type Effect,
  type ProfileSave,
  launchFailed,
  launchSucceeded,
  registered,
  registryDone,
  RESET_TIMEOUT_MS,
  resetFailed,
  resetSucceeded,
  type Step,
  tick,
} from "./machine";
import { pingFailed, pingSucceeded, probeAnswered } from "./liveness";
import { launchDeferred } from "./permits";
import { eventView } from "./views";
import type { PoolShell } from "./shell";
import { markProfileFailed, saveProfile } from "../profiles/store";

/**
 * How long a released session waits for its lease's sockets to close before it
 * is reset for the next lease. If a socket is still registered after this, the
 * session is closed instead of reused: it is never handed on while a client of
 * the previous lease may still be connected.
 */
export const DISCONNECT_GRACE_MS = 2_000;
/**
 * How long reading an ending lease's browser state, and then writing it to
 * its profile, may each take: within the reset's or close's own 15 s.
 */
export const SAVE_TIMEOUT_MS = 5_000;

export class Effects {
  /** The pool's own CDP conversation with a browser (ping, check, reset), by session id: a client's connect waits for it. */
  readonly talking = new Map<string, Promise<unknown>>();
  /** Probes under way, so a reconciliation can answer once the suspects it found are decided. */
  private readonly probes = new Set<Promise<unknown>>();

  constructor(private readonly shell: PoolShell) {}

  /** Resolves when every probe started so far has been answered (or given up). */
  async probesDone(): Promise<void> {
    await Promise.allSettled([...this.probes]);
  }

  /** Performs each effect on its own: one that throws is logged and counted as failed, and the others still run. */
  perform(effects: Effect[]): void {
    const epoch = this.shell.currentEpoch();
    for (const effect of effects) {
      try {
        this.start(effect, epoch);
      } catch (error) {
        log("effect_failed", { pool: this.shell.name(), effect: effect.kind, error: message(error) });
        this.startFailed(effect, epoch, message(error));
      }
    }
  }

  private start(effect: Effect, epoch: number): void {
    switch (effect.kind) {
      case "launch":
        this.shell.track(this.launch(effect.row, effect.warm, epoch));
        break;
      case "returnPermits":
        this.shell.track(this.shell.account.release(effect.rows));
        break;
      case "close":
        this.shell.track(
          this.io(
            epoch,
            async () => {
              if (effect.save) await this.saveProfile(effect.save, effect.sessionId, epoch);
              await this.shell.provider.close(effect.sessionId);
            },
            CLOSE_TIMEOUT_MS,
            "a close",
            (s) => closeSucceeded(s, effect.row),
            (s, m) => closeFailed(s, effect.row, m),
          ),
        );
        break;
      case "reset":
        this.shell.track(
          this.io(
            epoch,
            async () => {
              // Never clean (and so never hand on) a browser a client of the last lease still drives.
              if (!(await this.untilDisconnected(effect.leaseId, DISCONNECT_GRACE_MS))) {
                throw new Error(`a CDP client of lease ${effect.leaseId} was still connected ${DISCONNECT_GRACE_MS} ms after it ended`);
              }
              if (effect.save) await this.saveProfile(effect.save, effect.sessionId, epoch);
              await this.talk(effect.sessionId, () => this.shell.provider.reset(effect.sessionId));
            },
            RESET_TIMEOUT_MS,
            "a reset",
            (s) => resetSucceeded(s, effect.row),
            (s, m) => resetFailed(s, effect.row, m),
          ),
        );
        break;
      case "check":
        this.shell.track(
          this.io(epoch, () => this.talk(effect.sessionId, () => this.shell.provider.ping(effect.sessionId)), CHECK_TIMEOUT_MS, "a check", (s) =>
            checkPassed(s, effect.row), (s, m) => checkFailed(s, effect.row, m),
          ),
        );
        break;
      case "ping":
        this.shell.track(
          this.io(epoch, () => this.talk(effect.sessionId, () => this.shell.provider.ping(effect.sessionId)), CLOSE_TIMEOUT_MS, "a ping", (s) =>
            pingSucceeded(s, effect.row), (s, m) => pingFailed(s, effect.row, m),
          ),
        );
        break;
      case "probe": {
        const probe = this.shell.probe(effect.sessionId).then(
          (alive) => this.shell.after(epoch, (s) => probeAnswered(s, effect.row, alive)),
          // The platform did not say: the session stays suspect; a later list decides.
          (error) => log("probe_failed", { pool: this.shell.name(), sessionId: effect.sessionId, error: message(error) }),
        );
        this.probes.add(probe);
        void probe.finally(() => this.probes.delete(probe));
        this.shell.track(probe);
        break;
      }
      case "disconnect":
        this.shell.leaseEnded.signal(effect.leaseId, { reason: effect.reason });
        this.shell.callers.ended(effect.leaseId);
        break;
      // The registry calls are retried by tick until acknowledged.
      case "register":
        this.shell.track(this.shell.rpc(() => this.shell.registry().track(effect.sessionId, this.shell.name()), "the session registry").then(() => this.shell.after(epoch, (s) => registered(s, effect.row))));
        break;
      case "forget":
        this.shell.track(this.shell.rpc(() => this.shell.registry().forget(effect.sessionId), "the session registry").then(() => this.shell.after(epoch, (s) => registryDone(s, [effect.row]))));
        break;
      case "reportLost":
        this.shell.track(
          this.shell.rpc(() => this.shell.registry().lostLaunches(this.shell.name(), effect.windows), "the session registry").then(() =>
            this.shell.after(epoch, (s) => registryDone(s, effect.rows)),
          ),
        );
        break;
      // A recording is best effort: the recorder finalizes on its own alarm if a stop is lost.
      case "record": {
        const spec = { tenant: this.shell.tenant, pool: this.shell.poolName, leaseId: effect.leaseId, sessionId: effect.sessionId, startedAt: this.shell.clock() };
        this.shell.track(this.shell.rpc(() => this.shell.recorder(effect.leaseId).start(spec), "the lease's recorder"));
        break;
      }
      case "stopRecording": {
        const events = this.shell.db.journalFor(effect.leaseId).map(eventView);
        const endedAt = this.shell.clock();
        this.shell.track(this.shell.rpc(() => this.shell.recorder(effect.leaseId).stop(events, endedAt), "the lease's recorder"));
        break;
      }
      case "grant": {
        const lease = this.shell.db.lease(effect.leaseId);
        if (lease) this.shell.callers.answer(effect.leaseId, { ok: true, value: { lease: this.shell.view(lease), replayed: false } });
        break;
      }
      case "reject":
        this.shell.callers.answer(effect.leaseId, { ok: false, failure: effect.failure });
        break;
    }
  }

  /**
   * Saves an ending lease's browser state to its profile (persistProfile),
   * before the reset or close that loses it. Best effort within
   * SAVE_TIMEOUT_MS, and never a reason to fail the reset or close: a failure
   * is journalled (`profile_save_failed`) and marks the profile FAILED (its
   * previous state is kept), so the caller can see it did not happen.
   */
  private async saveProfile(save: ProfileSave, sessionId: string, epoch: number): Promise<void> {
    const { tenant } = this.shell;
    try {
      const state = await withDeadline(
        this.talk(sessionId, () => this.shell.provider.readState(sessionId)),
        SAVE_TIMEOUT_MS,
        "reading the browser state",
      );
      const meta = await withDeadline(saveProfile(this.shell.env(), tenant, save.profile, state, { sourceSessionId: save.leaseId }), SAVE_TIMEOUT_MS, "saving the profile");
      this.shell.after(epoch, (s) => s.db.journal(s.now, "profile_saved", save.leaseId, null, { profile: save.profile, bytes: meta.bytes }));
    } catch (error) {
      log("profile_save_failed", { pool: this.shell.name(), lease: save.leaseId, profile: save.profile, error: message(error) });
      this.shell.after(epoch, (s) => s.db.journal(s.now, "profile_save_failed", save.leaseId, null, { profile: save.profile, error: message(error) }));
      await withDeadline(markProfileFailed(this.shell.env(), tenant, save.profile, message(error)), 2_000, "marking the profile failed").catch(() => undefined);
    }
  }

  /** An effect could not even be started: its failure is recorded as if it had failed (the rest are retried by tick). */
  private startFailed(effect: Effect, epoch: number, error: string): void {
    const outcome: ((s: Step) => void) | undefined =
      effect.kind === "launch"
        ? (s) => launchFailed(s, effect.row, { message: error, platformLimited: false })
        : effect.kind === "close"
          ? (s) => closeFailed(s, effect.row, error)
          : effect.kind === "reset"
            ? (s) => resetFailed(s, effect.row, error)
            : effect.kind === "check"
              ? (s) => checkFailed(s, effect.row, error)
              : effect.kind === "ping"
                ? (s) => pingFailed(s, effect.row, error)
                : undefined;
    if (!outcome) return;
    try {
      this.shell.after(epoch, outcome);
    } catch (failure) {
      log("effect_failed", { pool: this.shell.name(), effect: effect.kind, error: message(failure) });
    }
  }

  /**
   * Starts a launch, once the account's governor gave its permit (account.ts;
   * without one the launch is deferred, and its caller waits on). Its outcome
   * is recorded whenever the platform answers, even after the deadline (a late
   * browser is then closed), and told to the governor. The deadline itself is
   * enforced by `tick`, from the alarm and from a timer here, whichever is first.
   */
  private launch(row: number, warm: boolean, epoch: number): Promise<unknown> {
    const timeoutMs = this.shell.config().launchTimeoutSeconds * 1000;
    const { account, provider } = this.shell;
    const attempt = (async () => {
      const permit = await account.request(row, warm);
      if (!this.shell.current(epoch)) return;
      if (!permit.ok) {
        this.shell.after(epoch, (s) => launchDeferred(s, row, permit));
        return;
      }
      if (permit.fallback) this.shell.after(epoch, (s) => s.db.count("governor_fallback", {}));
      // The launch may have timed out (and its permit been given back) while the permit was asked for.
      if (this.shell.db.session(row)?.state !== "launching") {
        await account.release([row]);
        return;
      }
      try {
        const sessionId = await provider.launch({ keepAliveMs: this.shell.keepAliveMs });
        this.shell.track(account.settle(row, { kind: "launched" }));
        this.shell.after(epoch, (s) => launchSucceeded(s, row, sessionId));
      } catch (error) {
        if (!(error instanceof PlatformLimitError)) {
          this.shell.track(account.settle(row, { kind: "failed" }));
          this.shell.after(epoch, (s) => launchFailed(s, row, { message: message(error), platformLimited: false }));
          return;
        }
        // The platform refused for its limits: back off by as long as it says.
        const platform = await withDeadline(provider.limits(), CHECK_TIMEOUT_MS, "the platform's limits").catch(() => undefined);
        const waitMs = platform ? platform.timeUntilNextAllowedBrowserAcquisition : 0;
        const retryAfterSeconds = Math.max(1, waitMs > 0 ? Math.ceil(waitMs / 1000) : error.retryAfterSeconds);
        this.shell.track(account.settle(row, { kind: "limited", retryAfterMs: retryAfterSeconds * 1000, ...(platform ? { platform } : {}) }));
        this.shell.after(epoch, (s) => launchFailed(s, row, { message: message(error), platformLimited: true, retryAfterSeconds }));
      }
    })();
    return raceDeadline(attempt, timeoutMs + 50, () => this.shell.after(epoch, tick));
  }

  /** An effect's I/O with its deadline; its outcome (success, failure, or the deadline) becomes a transition. */
  private io(
    epoch: number,
    op: () => Promise<void>,
    timeoutMs: number,
    what: string,
    ok: (step: Step) => void,
    failed: (step: Step, message: string) => void,
  ): Promise<void> {
    return withDeadline((async () => op())(), timeoutMs, what).then(
      () => this.shell.after(epoch, ok),
      (error) => this.shell.after(epoch, (s) => failed(s, message(error))),
    );
  }

  /** Runs the pool's own CDP conversation with a browser, so a client's connect can wait for it to end. */
  private talk<T>(sessionId: string, op: () => Promise<T>): Promise<T> {
    const conversation = (async () => op())();
    this.talking.set(sessionId, conversation);
    const done = () => {
      if (this.talking.get(sessionId) === conversation) this.talking.delete(sessionId);
    };
    conversation.then(done, done);
    return conversation;
  }

  /** True once no socket of the lease is open; false if one still is after `ms`. */
  private async untilDisconnected(leaseId: string, ms: number): Promise<boolean> {
    if (this.shell.db.connectionsOf(leaseId) === 0) return true;
    return this.shell.leaseDrained.waitAtMost(leaseId, ms, false);
  }
}

/** Settles with `work`, or with `onDeadline()` if `work` takes longer than `ms`; the timer never outlives the race. */
function raceDeadline<T>(work: Promise<T>, ms: number, onDeadline: () => T): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<T>((resolve, reject) => {
    timer = setTimeout(() => {
      try {
        resolve(onDeadline());
      } catch (error) {
        reject(error);
      }
    }, ms);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}
