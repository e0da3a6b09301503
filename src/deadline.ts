/**
 * Deadlines on I/O. A Durable Object that awaits a call which never answers
 * (a platform list that hangs, an RPC to an object that is overloaded) stops
 * doing whatever came after the await; if that was the alarm, every later
 * deadline of the object waits with it. So nothing the broker's objects await
 * on the platform or on another object is awaited without one of these.
 */

/** The error a call gets when its deadline passes first. */
export class DeadlineExceeded extends Error {
  constructor(
    readonly what: string,
    readonly ms: number,
  ) {
    super(`${what} did not answer within ${ms} ms`);
    this.name = "DeadlineExceeded";
  }
}

/**
 * Settles like `work`, or rejects with `DeadlineExceeded` once `ms` have passed.
 * The work itself is not cancelled (a platform call cannot be); whoever started
 * it must be ready for its late outcome. The timer never outlives the race.
 */
export function withDeadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeadlineExceeded(what, ms)), ms);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

/** A caught value as text, for logs and problem details. */
export function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
