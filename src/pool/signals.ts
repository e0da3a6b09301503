/**
 * Callbacks keyed by lease id, each called (and dropped) once: how the pool
 * tells the Workers proxying a lease's CDP sockets that the lease ended, and a
 * reset that the lease's last socket closed. In memory only: a Worker whose
 * call failed with the object asks again, and a reset that was waiting gives up.
 */
export class Signals<T> {
  private readonly byLease = new Map<string, Set<(value: T) => void>>();

  wait(leaseId: string): Promise<T> {
    return new Promise((resolve) => {
      const set = this.byLease.get(leaseId) ?? new Set();
      set.add(resolve);
      this.byLease.set(leaseId, set);
    });
  }

  /** Like `wait`, but gives `fallback` after `ms` if nothing was signalled. */
  waitAtMost(leaseId: string, ms: number, fallback: T): Promise<T> {
    return new Promise((resolve) => {
      const set = this.byLease.get(leaseId) ?? new Set();
      const timer = setTimeout(() => {
        set.delete(finish);
        if (set.size === 0 && this.byLease.get(leaseId) === set) this.byLease.delete(leaseId);
        resolve(fallback);
      }, ms);
      const finish = (value: T) => {
        clearTimeout(timer);
        resolve(value);
      };
      set.add(finish);
      this.byLease.set(leaseId, set);
    });
  }

  signal(leaseId: string, value: T): void {
    const set = this.byLease.get(leaseId);
    this.byLease.delete(leaseId);
    for (const resolve of set ?? []) resolve(value);
  }
}
