/**
 * The CDP sockets the Worker proxies for a lease, as the pool object keeps
 * track of them. Bytes never pass through the pool: the Worker opens the
 * upstream socket and pipes it; the pool decides who may connect, registers
 * each socket before it opens (in the same synchronous step as the token
 * check, so a lease that ends a moment later knows to wait for it), tells the
 * Worker when the lease ends, and forgets the socket when the Worker reports
 * it closed. A released browser is reset only after its lease's sockets are
 * gone (see the reset effect in shell.ts).
 */
import { withDeadline } from "../deadline";
import { fail, type Result } from "../result";
import { probeAnswered } from "./liveness";
import { notFound, tick } from "./machine";
import type { PoolShell } from "./shell";
import type { ConnectGrant } from "./views";

/** CDP sockets one lease may have open at once (each is a proxied WebSocket). */
export const MAX_CONNECTIONS_PER_LEASE = 8;
/**
 * How long a client's connect waits for the pool's own conversation with the
 * browser (a keep-alive ping, a check, a reset) to end: a platform that allows
 * one connection per session would refuse the client meanwhile.
 */
const TALK_WAIT_MS = 3_000;

export class Connections {
  constructor(private readonly shell: PoolShell) {}

  /**
   * Checks a connect token for a lease: 404 unknown lease, 401 wrong token, 409
   * lease not active. With `register`, records the socket the Worker is about to
   * open, and the lease's first connection. Before answering, it lets the
   * pool's own conversation with the browser finish (at most TALK_WAIT_MS).
   */
  async open(leaseId: string, tokenHash: string, register: boolean): Promise<Result<ConnectGrant>> {
    const { shell } = this;
    const lease = shell.serving() ? shell.db.lease(leaseId) : undefined;
    if (!lease) return fail(notFound("lease"));
    if (!lease.token_hash || !sameHash(lease.token_hash, tokenHash)) {
      return fail({ status: 401, code: "unauthorized", detail: "the connect token is not valid for this lease" });
    }
    const talk = lease.session_id ? shell.effects.talking.get(lease.session_id) : undefined;
    if (register && talk) await withDeadline(talk, TALK_WAIT_MS, "the pool's own CDP conversation").catch(() => undefined);
    if (!shell.serving()) return fail(notFound("lease"));
    const before = shell.db.lease(leaseId)!;
    if (before.status === "active" && before.expires_at! <= shell.clock()) shell.transition(tick);
    const current = shell.db.lease(leaseId)!;
    if (current.status !== "active") {
      return fail({ status: 409, code: "lease_not_active", detail: `lease is ${current.status}; only an active lease can be connected to` });
    }
    if (!register) return { ok: true, value: { connectionId: null, sessionId: current.session_id! } };
    if (shell.db.connectionsOf(leaseId, "client") >= MAX_CONNECTIONS_PER_LEASE) {
      return fail({
        status: 409,
        code: "too_many_connections",
        detail: `a lease may have at most ${MAX_CONNECTIONS_PER_LEASE} CDP connections open at once`,
      });
    }
    const connectionId = crypto.randomUUID();
    const now = shell.clock();
    shell.atomically(() => {
      shell.db.insertConnection({ id: connectionId, lease_id: leaseId, opened_at: now, kind: "client" });
      if (current.connected_at === null) shell.db.updateLease(leaseId, { connected_at: now });
      shell.db.journal(now, "connected", leaseId, current.session_row, { connectionId });
    });
    return { ok: true, value: { connectionId, sessionId: current.session_id! } };
  }

  /**
   * The browser refused the connection the Worker opened for `connectionId`.
   * A refusal alone proves nothing (a platform busy with another connection
   * refuses too), so the platform is asked directly: if the session is gone,
   * its lease fails with browser_gone and its slot is freed (`gone: true`);
   * otherwise the client may try again. The connection is forgotten either way.
   */
  async failed(connectionId: string): Promise<{ gone: boolean }> {
    const { shell } = this;
    const row = shell.serving() ? shell.db.connection(connectionId) : undefined;
    if (!row) return { gone: false };
    const lease = shell.db.lease(row.lease_id);
    shell.atomically(() => {
      shell.db.deleteConnection(connectionId);
      shell.db.journal(shell.clock(), "connect_failed", row.lease_id, lease?.session_row ?? null, { connectionId });
      // Nobody has connected yet after all: connectWithinSeconds still applies.
      if (lease?.connected_at === row.opened_at && shell.db.connectionsOf(row.lease_id) === 0) shell.db.updateLease(row.lease_id, { connected_at: null });
    });
    if (shell.db.connectionsOf(row.lease_id) === 0) shell.leaseDrained.signal(row.lease_id, true);
    if (lease?.status !== "active" || lease.session_row === null || !lease.session_id) return { gone: false };
    const epoch = shell.currentEpoch();
    const alive = await shell.probe(lease.session_id).catch(() => undefined);
    if (alive !== false || !shell.current(epoch)) return { gone: false };
    shell.transition((step) => probeAnswered(step, lease.session_row!, false));
    return { gone: true };
  }

  /**
   * Resolves when the connection's lease ends (at once if it already has, or if
   * the connection is unknown). The Worker keeps this call open for as long as
   * it proxies the socket; if the object restarts the call fails and the Worker
   * asks again, and the connection's row, kept in SQL, is still there.
   */
  async watch(connectionId: string): Promise<{ reason: string }> {
    const { shell } = this;
    const row = shell.serving() ? shell.db.connection(connectionId) : undefined;
    if (!row) return { reason: "disconnected" };
    const lease = shell.db.lease(row.lease_id);
    if (lease?.status !== "active") return { reason: lease?.end_reason ?? "ended" };
    return shell.leaseEnded.wait(row.lease_id);
  }

  /** The Worker closed both ends of a proxied socket. Idempotent. */
  async close(connectionId: string): Promise<void> {
    const { shell } = this;
    const row = shell.state() !== "none" ? shell.db.connection(connectionId) : undefined;
    if (!row) return;
    const now = shell.clock();
    shell.atomically(() => {
      shell.db.deleteConnection(connectionId);
      shell.db.journal(now, "disconnected", row.lease_id, null, { connectionId, connectedMs: now - row.opened_at });
    });
    if (shell.db.connectionsOf(row.lease_id) === 0) shell.leaseDrained.signal(row.lease_id, true);
  }
}

/** Compares two SHA-256 hex digests in constant time. */
function sameHash(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  const encoder = new TextEncoder();
  return crypto.subtle.timingSafeEqual(encoder.encode(a), encoder.encode(b));
}
