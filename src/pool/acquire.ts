/**
 * The pool object's `acquire`: what a request for a lease is answered with.
 * A retried call (the same lease id) gets the lease of its first attempt, or
 * why it ended; an Idempotency-Key of the same API key within
 * IDEMPOTENCY_TTL_MS replays its lease, or is refused if the body differs; any
 * other request is a new lease, granted, queued or refused by machine.ts
 * (`requestLease`), its caller then kept waiting in callers.ts until it is
 * decided. A pool that does not exist yet is created first (lifecycle.ts).
 */
import { fail, type Result } from "../result";
import { beingDeleted, type Lifecycle } from "./lifecycle";
import { requestLease } from "./machine";
import type { LeaseRow } from "./schema";
import { IDEMPOTENCY_TTL_MS, type PoolShell } from "./shell";
import type { AcquireInput, AcquireView } from "./views";

export async function acquireLease(shell: PoolShell, lifecycle: Lifecycle, input: AcquireInput): Promise<Result<AcquireView>> {
  if (shell.state() === "deleting") return fail(beingDeleted());
  if (!shell.serving()) {
    const created = await lifecycle.createForAcquire(input.tenant, input.pool);
    if (!created.ok) return created;
    if (!shell.serving()) return fail(beingDeleted());
  }
  const config = shell.config();
  const ttlSeconds = input.ttlSeconds ?? config.defaultTtlSeconds;
  if (ttlSeconds > config.maxTtlSeconds) {
    return fail({ status: 400, code: "invalid_request", detail: `ttlSeconds must be at most maxTtlSeconds (${config.maxTtlSeconds})` });
  }
  if (shell.callers.takeEarlyCancel(input.leaseId)) {
    return fail({ status: 409, code: "lease_not_active", detail: "the request was cancelled" });
  }
  // Idempotency-Keys belong to the API key that sent them: another key's identical key is another request.
  const key = input.idempotencyKey === undefined ? null : `${input.owner} ${input.idempotencyKey}`;
  const fingerprint = input.fingerprint ?? "";
  const outcome = shell.transition((step) => {
    // The Worker mints the lease id per HTTP request, so an acquire naming a
    // lease that exists is that request retried (its first answer was lost
    // with a broken call or an object reset): it gets the same lease.
    const same = step.db.lease(input.leaseId);
    if (same) return { kind: "repeat" as const, lease: same };
    if (key) {
      const prior = step.db.idempotent(key);
      if (prior && prior.created_at > step.now - IDEMPOTENCY_TTL_MS) {
        if (prior.fingerprint !== fingerprint) return { kind: "conflict" as const };
        const lease = step.db.lease(prior.lease_id);
        if (lease) {
          if (input.tokenHash && (lease.status === "waiting" || lease.status === "active")) {
            // A replay's answer carries new URLs: they replace the first answer's, as a connect token does.
            step.db.updateLease(lease.id, { token_hash: input.tokenHash, ...(input.viewerTokenHash ? { viewer_hash: input.viewerTokenHash } : {}) });
          }
          return { kind: "replay" as const, lease };
        }
      }
    }
    const result = requestLease(step, {
      id: input.leaseId,
      owner: input.owner,
      labels: input.labels ?? {},
      ttlMs: ttlSeconds * 1000,
      waitMs: (input.waitSeconds ?? 0) * 1000,
      idempotencyKey: key,
      tokenHash: input.tokenHash ?? null,
      ...(input.priority ? { priority: input.priority } : {}),
      ...(input.record === undefined ? {} : { record: input.record }),
      ...(input.persistProfile ? { persistProfile: input.persistProfile } : {}),
      ...(input.viewerTokenHash ? { viewerHash: input.viewerTokenHash } : {}),
    });
    if (key && result.kind !== "rejected") step.db.rememberIdempotent(key, input.leaseId, fingerprint, step.now);
    return result;
  });
  switch (outcome.kind) {
    case "conflict":
      return fail({
        status: 409,
        code: "idempotency_key_reused",
        detail: "this Idempotency-Key was used with a different request body within 24 h",
      });
    case "repeat":
      return repeated(shell, outcome.lease, input.leaseId);
    case "replay":
      return answered(shell, outcome.lease, input.leaseId, true);
    case "rejected":
      return fail(outcome.failure);
    case "granted":
    case "waiting":
      return answered(shell, outcome.lease, input.leaseId, false);
  }
}

/** The answer to a request for `lease`: at once if it is decided, else when it is. */
function answered(shell: PoolShell, lease: LeaseRow, requestId: string, replayed: boolean): Promise<Result<AcquireView>> | Result<AcquireView> {
  if (lease.status === "waiting") return shell.callers.wait(lease.id, requestId, replayed);
  if (lease.status === "active") shell.callers.held(lease.id, requestId);
  return { ok: true, value: { lease: shell.view(lease), replayed } };
}

/** An acquire retried with the lease id of its first attempt: that attempt's lease, or why it ended. */
function repeated(shell: PoolShell, lease: LeaseRow, requestId: string): Promise<Result<AcquireView>> | Result<AcquireView> {
  if (lease.status === "waiting" || lease.status === "active") return answered(shell, lease, requestId, false);
  if (lease.status === "failed") {
    return fail({
      status: 503,
      code: "browser_unavailable",
      detail: `this request's lease failed before it could be answered (${lease.end_reason ?? "failed"}); retry`,
      retryAfter: 1,
    });
  }
  return fail({ status: 409, code: "lease_not_active", detail: `this request's lease has already ended (${lease.end_reason ?? lease.status})` });
}
