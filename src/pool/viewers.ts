/**
 * Live viewers of a lease, as the pool object keeps track of them: the viewer
 * URLs handed out (each a token of its own, stored only as its SHA-256, like a
 * connect token) and the viewer sockets the Worker streams. The Worker streams
 * the browser's screencast to a viewer over its own CDP connection (src/api/viewer);
 * the pool only decides who may watch, and drive, which lease.
 *
 * A viewer is never the lessee: its sockets have their own budget
 * (MAX_VIEWERS_PER_LEASE) beside the lessee's CDP connections, and opening one
 * never counts as the lessee connecting (connectWithinSeconds). A viewer token
 * dies with its lease: it is refused as soon as the lease is no longer active,
 * and an open viewer is told to stop by the same `watchConnection` a CDP client
 * waits on. A released browser is reset only after every socket of its lease,
 * viewers' included, is gone.
 */
import { fail, type Result } from "../result";
import { notFound, tick } from "./machine";
import type { PoolShell } from "./shell";

/** Viewer sockets one lease may have open at once. */
export const MAX_VIEWERS_PER_LEASE = 4;

export interface ViewerGrant {
  /** Null when only checking (no socket registered). */
  connectionId: string | null;
  sessionId: string;
  interactive: boolean;
}

export class Viewers {
  constructor(private readonly shell: PoolShell) {}

  /** Records a viewer URL's token for a lease that is waiting or active: when the lease ends the URL stops working. */
  mint(leaseId: string, tokenHash: string, interactive: boolean): Result<{ interactive: boolean; expiresAt: number | null }> {
    const { shell } = this;
    const lease = shell.serving() ? shell.db.lease(leaseId) : undefined;
    if (!lease) return fail(notFound("lease"));
    if (lease.status !== "active" && lease.status !== "waiting") {
      return fail({ status: 409, code: "lease_not_active", detail: `lease is ${lease.status}; a viewer can only watch a lease that has not ended` });
    }
    const now = shell.clock();
    shell.atomically(() => {
      shell.db.insertViewer({ token_hash: tokenHash, lease_id: leaseId, interactive: interactive ? 1 : 0, created_at: now });
      shell.db.journal(now, "viewer_issued", leaseId, lease.session_row, { interactive });
    });
    return { ok: true, value: { interactive, expiresAt: lease.expires_at } };
  }

  /**
   * Checks a viewer token for a lease: 404 unknown lease, 401 a token not
   * issued for it, 409 the lease is not active. With `register`, records the
   * viewer socket the Worker is about to open (409 too_many_connections past
   * MAX_VIEWERS_PER_LEASE).
   */
  open(leaseId: string, tokenHash: string, register: boolean): Result<ViewerGrant> {
    const { shell } = this;
    const lease = shell.serving() ? shell.db.lease(leaseId) : undefined;
    if (!lease) return fail(notFound("lease"));
    // The lease's own (view-only) viewer is in its row; minted ones are rows of `viewers`. Compared and
    // looked up by the hash of a 256-bit secret: nothing about the token leaks through timing.
    const viewer = lease.viewer_hash === tokenHash ? { interactive: 0 } : shell.db.viewer(tokenHash);
    if (!viewer || ("lease_id" in viewer && viewer.lease_id !== leaseId)) {
      return fail({ status: 401, code: "unauthorized", detail: "the viewer token is not valid for this lease" });
    }
    if (lease.status === "active" && lease.expires_at! <= shell.clock()) shell.transition(tick);
    const current = shell.db.lease(leaseId)!;
    if (current.status !== "active") {
      return fail({ status: 409, code: "lease_not_active", detail: `lease is ${current.status}; the viewer stopped when it ended` });
    }
    const interactive = viewer.interactive === 1;
    if (!register) return { ok: true, value: { connectionId: null, sessionId: current.session_id!, interactive } };
    if (shell.db.connectionsOf(leaseId, "viewer") >= MAX_VIEWERS_PER_LEASE) {
      return fail({ status: 409, code: "too_many_connections", detail: `a lease may have at most ${MAX_VIEWERS_PER_LEASE} viewers open at once` });
    }
    const connectionId = crypto.randomUUID();
    const now = shell.clock();
    shell.atomically(() => {
      shell.db.insertConnection({ id: connectionId, lease_id: leaseId, opened_at: now, kind: "viewer" });
      shell.db.journal(now, "viewer_opened", leaseId, current.session_row, { connectionId, interactive });
    });
    return { ok: true, value: { connectionId, sessionId: current.session_id!, interactive } };
  }
}
