/**
 * The pool object's one alarm, kept no later than the earliest deadline in SQL.
 *
 * Nothing here trusts a copy of the alarm time kept in memory: every request
 * reads the alarm storage actually has (a cheap local read) and moves it
 * earlier when it is missing or later than the deadline. So an alarm that was
 * deleted or lost behind the pool's back is restored by the next transition
 * that has a deadline, and a `setAlarm` that fails is retried (with backoff,
 * and again by every later request) instead of being logged and forgotten.
 *
 * Requests are applied one at a time, earliest first: two overlapping reads
 * could otherwise both see no alarm and the later `setAlarm` would win,
 * leaving the earlier deadline without an alarm. The alarm is only ever moved
 * earlier here; an alarm that fires early finds nothing due and the handler
 * re-arms at the true deadline with `rearm`, which writes unconditionally.
 */
import { log } from "../log";
import { message } from "../deadline";

/** First retry delay after a failed setAlarm; doubled up to RETRY_MAX_MS. */
const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 5_000;

export class AlarmSchedule {
  /** The earliest time asked for and not yet written. */
  private wanted: number | null = null;
  /** Whether the next write must happen even if storage already has an earlier alarm (see rearm). */
  private forced = false;
  private running: Promise<void> | undefined;
  private retryDelayMs = RETRY_MIN_MS;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly storage: DurableObjectStorage,
    private readonly name: () => string,
  ) {}

  /** Makes sure the alarm fires no later than `at`. Never throws; returns once it is set (or the attempt failed and a retry is scheduled). */
  request(at: number): Promise<void> {
    this.wanted = this.wanted === null ? at : Math.min(this.wanted, at);
    this.running ??= this.apply().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /**
   * Sets the alarm to `at` (or to an earlier time asked for meanwhile) whatever
   * it is now: the alarm handler's last step, since while the handler runs the
   * stored alarm may still read as the one firing. Queued with `request`, so a
   * deadline committed after the handler computed `at` is applied after it.
   */
  rearm(at: number | null): Promise<void> {
    if (at === null) return this.running ?? Promise.resolve();
    this.forced = true;
    return this.request(at);
  }

  /** Forgets pending work (the pool's storage is being deleted). */
  cancel(): void {
    this.wanted = null;
    this.forced = false;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }

  private async apply(): Promise<void> {
    while (this.wanted !== null) {
      const target = this.wanted;
      const forced = this.forced;
      this.wanted = null;
      this.forced = false;
      try {
        const actual = forced ? null : await this.storage.getAlarm();
        if (actual === null || actual > target) await this.storage.setAlarm(target);
        this.retryDelayMs = RETRY_MIN_MS;
      } catch (error) {
        log("alarm_set_failed", { pool: this.name(), at: target, error: message(error) });
        this.forced ||= forced;
        this.retryLater(target);
        return;
      }
    }
  }

  private retryLater(at: number): void {
    const delay = this.retryDelayMs;
    this.retryDelayMs = Math.min(RETRY_MAX_MS, this.retryDelayMs * 2);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.request(at);
    }, delay);
  }
}
