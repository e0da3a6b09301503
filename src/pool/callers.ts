/**
 * The callers of `acquire`, kept in memory: who is waiting for which lease, and
 * who was answered with which lease. This is the only place the pool object
 * keeps anything about a caller in memory, and all of it may be lost with the
 * object without breaking a guarantee: a restart also ends the callers' HTTP
 * requests, and `recover` fails the leases they were waiting for; a lease
 * whose caller is not known any more is reclaimed by `connectWithinSeconds`
 * (or, where a pool turned that off, by its TTL).
 *
 * A caller is named by its request id: the lease id the Worker minted for the
 * HTTP request. Usually that is also the lease's id; an Idempotency-Key replay
 * is a second request for the same lease. So a request that goes away gives up
 * the lease only if no other request is waiting for it or was answered with it.
 */
import type { Failure } from "../result";
import type { AcquireView } from "./views";

export type Answer = { ok: true; value: AcquireView } | { ok: false; failure: Failure };

/** How many cancels that overtook their acquire are remembered. */
const EARLY_CANCELS_KEPT = 1000;

/** What a request's cancel did: the lease it waited for is now waited for by nobody, others still wait for it, or the request was not waiting. */
export type Leaving = { kind: "last"; leaseId: string } | { kind: "others" } | { kind: "unknown" };

interface Waiting {
  requestId: string;
  resolve: (answer: Answer) => void;
}

export class Callers {
  /** lease id → the calls waiting for it (a request retried by the Worker may wait twice). */
  private readonly waiting = new Map<string, Waiting[]>();
  /** request id → the lease it waits for. */
  private readonly waitingFor = new Map<string, string>();
  /** lease id → the requests answered with it, while it is active. */
  private readonly holders = new Map<string, Set<string>>();
  /** Cancels that arrived before their acquire (the Worker's two calls race). */
  private readonly early = new Set<string>();

  /** Waits for `leaseId`'s outcome on behalf of `requestId`. */
  wait(leaseId: string, requestId: string, replayed: boolean): Promise<Answer> {
    return new Promise((resolve) => {
      const calls = this.waiting.get(leaseId) ?? [];
      calls.push({ requestId, resolve: (answer) => resolve(answer.ok ? { ok: true, value: { ...answer.value, replayed } } : answer) });
      this.waiting.set(leaseId, calls);
      this.waitingFor.set(requestId, leaseId);
    });
  }

  /** The lease was decided: every call waiting for it is answered (and, if granted, its request holds it). */
  answer(leaseId: string, answer: Answer): void {
    const calls = this.waiting.get(leaseId) ?? [];
    this.waiting.delete(leaseId);
    for (const { requestId, resolve } of calls) {
      this.waitingFor.delete(requestId);
      if (answer.ok) this.held(leaseId, requestId);
      resolve(answer);
    }
  }

  /** `requestId` was answered with the active lease `leaseId`. */
  held(leaseId: string, requestId: string): void {
    const set = this.holders.get(leaseId) ?? new Set<string>();
    set.add(requestId);
    this.holders.set(leaseId, set);
  }

  /** The lease ended: nobody holds it any more. */
  ended(leaseId: string): void {
    this.holders.delete(leaseId);
  }

  /**
   * `requestId` went away while waiting: its calls are answered with
   * `answer` now. The lease should be given up only when no other request
   * waits for it ("last").
   */
  leave(requestId: string, answer: Answer): Leaving {
    const leaseId = this.waitingFor.get(requestId);
    if (leaseId === undefined) return { kind: "unknown" };
    this.waitingFor.delete(requestId);
    const calls = this.waiting.get(leaseId) ?? [];
    const staying = calls.filter((call) => call.requestId !== requestId);
    for (const call of calls) if (call.requestId === requestId) call.resolve(answer);
    if (staying.length > 0) {
      this.waiting.set(leaseId, staying);
      return { kind: "others" };
    }
    this.waiting.delete(leaseId);
    return { kind: "last", leaseId };
  }

  /**
   * `requestId` was answered with a lease but its caller had gone (the answer
   * never left the Worker). Returns the lease when no other request holds it;
   * when nothing is known of the request (the object restarted since), the
   * lease named by the request id itself, as `leaseOf` finds it.
   */
  abandon(requestId: string, leaseOf: (requestId: string) => string | undefined): string | undefined {
    for (const [leaseId, set] of this.holders) {
      if (!set.delete(requestId)) continue;
      if (set.size > 0) return undefined;
      this.holders.delete(leaseId);
      return leaseId;
    }
    return leaseOf(requestId);
  }

  /** Remembers a cancel that arrived before its acquire (bounded). */
  cancelEarly(requestId: string): void {
    this.early.add(requestId);
    if (this.early.size > EARLY_CANCELS_KEPT) this.early.delete(this.early.values().next().value!);
  }

  /** Whether `requestId` was cancelled before it arrived (forgets it). */
  takeEarlyCancel(requestId: string): boolean {
    return this.early.delete(requestId);
  }
}
