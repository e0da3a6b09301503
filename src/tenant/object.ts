/**
 * TenantObject: one Durable Object per tenant. It owns what belongs to the
 * tenant as a whole rather than to one pool:
 *
 * - its managed API keys (stored only as SHA-256 digests). Every request made
 *   with a managed key is authenticated here, not from a cache, so a revoked
 *   key stops working with the very next request;
 * - its quotas: how many pools it may have, and how many browser sessions all
 *   its pools together may hold. The session quota is enforced on capacity:
 *   each pool claims its `maxSessions` here before it is created or grown, and
 *   a pool never holds more live sessions than its `maxSessions` (a pool
 *   invariant), so the tenant's live sessions never exceed the quota. Nothing on
 *   the acquire path crosses objects, so no acquire can leave a quota "reserved"
 *   and never given back: the incident this broker exists to prevent, moved up
 *   a level;
 * - its weight: its share of the account's browsers, relative to other
 *   tenants', when the account is full (the capacity governor, src/governor,
 *   reads it with `weightOf` and caches it);
 * - how long its leases' recordings are kept (`recordingRetentionDays`, read
 *   by each lease's recorder, src/recorder, when the recording ends) and its
 *   saved profiles (`profileRetentionDays`, read by src/profiles when one is
 *   written). The quota's fields and how they are kept: quota.ts;
 * - the fallback per-key rate limiter, used where the Rate Limiting binding is
 *   absent (ratelimit.ts).
 *
 * Every change to keys and quotas is logged (`key_created`, `key_rotated`,
 * `key_revoked`, `quota_set`): the audit trail, never with a secret.
 *
 * Its SQLite tables and the key row: schema.ts.
 */
import { DurableObject } from "cloudflare:workers";
import type { Failure, Result } from "../result";
import { registryOf } from "../stubs";
import { log } from "../log";
import { keyHint, mintKey, newKeyId } from "./keys";
import { type Quota, type QuotaDefaults, type QuotaPatch, quotaWrites, readQuota, refuseClaim } from "./quota";
import { FallbackLimiter, type RateRule } from "./ratelimit";
import { hasSchema, type KeyRow, migrate } from "./schema";

// Importers of these from here predate quota.ts and ratelimit.ts.
export { DEFAULT_RECORDING_RETENTION_DAYS, DEFAULT_WEIGHT } from "./quota";
export type { RateRule } from "./ratelimit";

/** Active (unrevoked) keys one tenant may have at once. */
export const MAX_ACTIVE_KEYS = 50;
/** How long a rotated key's previous secret may stay valid, at most. */
export const MAX_ROTATION_GRACE_SECONDS = 7 * 24 * 3600;
/** `lastUsedAt` is written at most this often per key: reads stay reads. */
const LAST_USED_RESOLUTION_MS = 60_000;

export interface KeyView {
  id: string;
  tenant: string;
  name: string;
  /** The key's first characters, to tell keys apart; never enough to use one. */
  hint: string;
  status: "active" | "revoked";
  createdAt: string;
  rotatedAt: string | null;
  /** Until when the secret before the last rotation is still accepted; null if it is not. */
  previousValidUntil: string | null;
  revokedAt: string | null;
  lastUsedAt: string | null;
}

/** A key as created or rotated: the only answer that carries the secret. */
export interface IssuedKey extends KeyView {
  key: string;
}

export interface TenantView {
  tenant: string;
  quota: Quota;
  /** Which quota fields are the deployment's defaults (TENANT_MAX_POOLS, TENANT_MAX_SESSIONS, weight 1, retention 7 and 30 days) rather than set for this tenant. */
  defaults: QuotaDefaults;
  usage: { pools: number; sessions: number };
  keys: { active: number; revoked: number };
}

export type Authentication =
  | { ok: true; keyId: string }
  | { ok: false; reason: "invalid" }
  | { ok: false; reason: "rate_limited"; retryAfterSeconds: number };

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export class TenantObject extends DurableObject<Env> {
  /** The time source; tests replace it to move past rotation grace periods without sleeping. */
  clock: () => number = () => Date.now();
  /** Tests hold a granted claim's answer here (after it is recorded) to reorder a pool's concurrent resizes. */
  afterClaim: ((pool: string, maxSessions: number) => Promise<void>) | undefined;
  private readonly limiter = new FallbackLimiter();
  /** Whether the tables exist. They are created by the first write, not on construction: a request bearing a made-up key or token names a tenant that does not exist, and only reading must never leave an object with storage behind. */
  private schema = false;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.schema = hasSchema(ctx.storage.sql);
  }

  /** Whether this tenant exists: it has keys, or pools. Reads only. */
  async known(): Promise<boolean> {
    return this.schema && this.sql(`SELECT 1 FROM keys UNION ALL SELECT 1 FROM pools LIMIT 1`).length > 0;
  }

  /** Whether `pool` is one of this tenant's pools (it has claimed capacity here). Reads only: creates no storage. */
  async hasPool(pool: string): Promise<boolean> {
    return this.schema && this.sql(`SELECT 1 FROM pools WHERE pool = ? LIMIT 1`, pool).length > 0;
  }

  // ---- authentication (every request made with a managed key) -----------------

  /**
   * Which key `digest` is, if it is a valid key of this tenant: current secret,
   * or the previous one within its rotation grace; never a revoked key. With
   * `rate`, also counts the request against the key's fallback rate limit.
   */
  async authenticate(digest: string, rate?: RateRule): Promise<Authentication> {
    if (!this.schema) return { ok: false, reason: "invalid" };
    const now = this.clock();
    const row = this.sql<KeyRow>(
      `SELECT * FROM keys WHERE revoked_at IS NULL AND (digest = ? OR (previous_digest = ? AND previous_until > ?)) LIMIT 1`,
      digest,
      digest,
      now,
    )[0];
    if (!row) return { ok: false, reason: "invalid" };
    if (row.last_used_at === null || now - row.last_used_at >= LAST_USED_RESOLUTION_MS) {
      this.ctx.storage.sql.exec(`UPDATE keys SET last_used_at = ? WHERE id = ?`, now, row.id);
    }
    if (rate) {
      const retryAfterSeconds = this.limiter.count(row.id, rate, now);
      if (retryAfterSeconds !== null) return { ok: false, reason: "rate_limited", retryAfterSeconds };
    }
    return { ok: true, keyId: row.id };
  }

  /** The fallback limiter alone, for keys that are not managed here (API_KEYS). Null when the request may pass. */
  async rateCheck(keyId: string, rate: RateRule): Promise<number | null> {
    return this.limiter.count(keyId, rate, this.clock());
  }

  // ---- keys (admin API) ----------------------------------------------------------

  async createKey(tenant: string, name: string): Promise<Result<IssuedKey>> {
    this.remember(tenant);
    const active = this.sql<{ n: number }>(`SELECT COUNT(*) AS n FROM keys WHERE revoked_at IS NULL`)[0]!.n;
    if (active >= MAX_ACTIVE_KEYS) {
      return fail(409, "too_many_keys", `a tenant may have at most ${MAX_ACTIVE_KEYS} active keys; revoke one first`);
    }
    const { key, digest } = mintKey(tenant);
    const id = newKeyId();
    this.ctx.storage.sql.exec(
      `INSERT INTO keys (id, name, hint, digest, created_at) VALUES (?, ?, ?, ?, ?)`,
      id,
      name,
      keyHint(key),
      digest,
      this.clock(),
    );
    await this.register();
    log("key_created", { tenant, key: id, name });
    return { ok: true, value: { ...this.keyView(id)!, key } };
  }

  async listKeys(): Promise<{ keys: KeyView[] }> {
    if (!this.schema) return { keys: [] };
    const rows = this.sql<KeyRow>(`SELECT * FROM keys ORDER BY created_at, id`);
    return { keys: rows.map((row) => this.viewOf(row)) };
  }

  async getKey(id: string): Promise<Result<KeyView>> {
    const view = this.keyView(id);
    return view ? { ok: true, value: view } : notFoundKey();
  }

  /**
   * A new secret for the same key (same id, name and leases). The old secret
   * stays valid for `graceSeconds` (0: not at all), so a fleet can roll over
   * without downtime; only the latest previous secret is kept.
   */
  async rotateKey(id: string, graceSeconds: number): Promise<Result<IssuedKey>> {
    const row = this.row(id);
    if (!row) return notFoundKey();
    if (row.revoked_at !== null) return fail(409, "key_revoked", "a revoked key cannot be rotated; create a new key");
    const now = this.clock();
    const { key, digest } = mintKey(this.tenant());
    this.ctx.storage.sql.exec(
      `UPDATE keys SET digest = ?, hint = ?, rotated_at = ?, previous_digest = ?, previous_until = ? WHERE id = ?`,
      digest,
      keyHint(key),
      now,
      graceSeconds > 0 ? row.digest : null,
      graceSeconds > 0 ? now + graceSeconds * 1000 : null,
      id,
    );
    log("key_rotated", { tenant: this.tenant(), key: id, graceSeconds });
    return { ok: true, value: { ...this.keyView(id)!, key } };
  }

  /** Revokes a key, both its secrets, at once (idempotent). Its leases keep running until they end or expire. */
  async revokeKey(id: string): Promise<Result<KeyView>> {
    const row = this.row(id);
    if (!row) return notFoundKey();
    if (row.revoked_at === null) {
      this.ctx.storage.sql.exec(`UPDATE keys SET revoked_at = ?, previous_digest = NULL, previous_until = NULL WHERE id = ?`, this.clock(), id);
      this.limiter.forget(id);
      log("key_revoked", { tenant: this.tenant(), key: id });
    }
    return { ok: true, value: this.keyView(id)! };
  }

  // ---- quotas -------------------------------------------------------------------

  async describe(tenant: string): Promise<TenantView> {
    const { quota, defaults } = this.quota();
    if (!this.schema) return { tenant, quota, defaults, usage: { pools: 0, sessions: 0 }, keys: { active: 0, revoked: 0 } };
    const usage = this.sql<{ pools: number; sessions: number | null }>(`SELECT COUNT(*) AS pools, SUM(max_sessions) AS sessions FROM pools`)[0]!;
    const keys = this.sql<{ active: number | null; revoked: number | null }>(
      `SELECT SUM(revoked_at IS NULL) AS active, SUM(revoked_at IS NOT NULL) AS revoked FROM keys`,
    )[0]!;
    return {
      tenant,
      quota,
      defaults,
      usage: { pools: usage.pools, sessions: usage.sessions ?? 0 },
      keys: { active: keys.active ?? 0, revoked: keys.revoked ?? 0 },
    };
  }

  /** Sets (a number) or resets to the default (null) each quota field given. Lowering below usage refuses nothing that exists; it only refuses what comes next. */
  async setQuota(tenant: string, patch: QuotaPatch): Promise<TenantView> {
    this.remember(tenant);
    for (const { key, value } of quotaWrites(patch)) {
      if (value === null) this.ctx.storage.sql.exec(`DELETE FROM meta WHERE key = ?`, key);
      else this.setMeta(key, value);
    }
    await this.register();
    log("quota_set", { tenant, ...patch });
    return this.describe(tenant);
  }

  /** The tenant's weight, for the account's capacity governor. Reads only: creates no storage. */
  async weightOf(): Promise<number> {
    return this.quota().quota.weight;
  }

  /** Days the tenant's recordings are kept, for a lease's recorder when its recording ends. Reads only: creates no storage. */
  async recordingRetentionDays(): Promise<number> {
    return this.quota().quota.recordingRetentionDays;
  }

  /** Days the tenant's profiles are kept after their last write (at most), for src/profiles. Reads only: creates no storage. */
  async profileRetentionDays(): Promise<number> {
    return this.quota().quota.profileRetentionDays;
  }

  /**
   * A pool of this tenant asks for `maxSessions` of capacity: granted if the
   * tenant's pools (counting this one, and this one at its new size) stay
   * within the quota. Idempotent: a claim states the pool's size, it does not
   * add to it, so a retried or repeated claim never counts twice.
   */
  async claimPool(tenant: string, pool: string, maxSessions: number): Promise<Result<null>> {
    this.remember(tenant);
    const current = this.sql<{ max_sessions: number }>(`SELECT max_sessions FROM pools WHERE pool = ?`, pool)[0]?.max_sessions;
    const pools = this.sql<{ n: number }>(`SELECT COUNT(*) AS n FROM pools`)[0]!.n;
    const others = this.sql<{ n: number | null }>(`SELECT SUM(max_sessions) AS n FROM pools WHERE pool != ?`, pool)[0]!.n ?? 0;
    const refusal = refuseClaim(tenant, this.quota().quota, { maxSessions, current, pools, others });
    if (refusal !== null) return fail(403, "quota_exceeded", refusal);
    this.record(pool, maxSessions);
    await this.afterClaim?.(pool, maxSessions);
    return { ok: true, value: null };
  }

  /** A pool states its size without asking: it shrank, or it existed before quotas (never refused). */
  async reportPool(tenant: string, pool: string, maxSessions: number): Promise<void> {
    this.remember(tenant);
    this.record(pool, maxSessions);
  }

  /** A pool was deleted: its capacity and its place among the tenant's pools are free again. Idempotent. */
  async releasePool(pool: string): Promise<void> {
    if (this.schema) this.ctx.storage.sql.exec(`DELETE FROM pools WHERE pool = ?`, pool);
  }

  /**
   * Makes the account's registry list this tenant (GET /v1/admin/tenants),
   * once. Never throws: if the registry cannot be reached, the next key or
   * quota change tries again (a tenant with pools is listed through them anyway).
   */
  private async register(): Promise<void> {
    if (this.meta("registered") === "1") return;
    try {
      await registryOf(this.env).trackTenant(this.tenant(), this.clock());
      this.setMeta("registered", "1");
    } catch (error) {
      console.error(JSON.stringify({ event: "tenant_register_failed", tenant: this.tenant(), error: error instanceof Error ? error.message : String(error) }));
    }
  }

  // ---- storage ----------------------------------------------------------------

  private record(pool: string, maxSessions: number): void {
    this.ctx.storage.sql.exec(
      `INSERT INTO pools (pool, max_sessions, updated_at) VALUES (?, ?, ?)
       ON CONFLICT (pool) DO UPDATE SET max_sessions = excluded.max_sessions, updated_at = excluded.updated_at`,
      pool,
      maxSessions,
      this.clock(),
    );
  }

  /** The tenant's quota, and which of its fields are the deployment's defaults (no value set for this tenant). */
  private quota(): { quota: Quota; defaults: QuotaDefaults } {
    return readQuota(this.env, (key) => (this.schema ? this.meta(key) : undefined));
  }

  /** Creates the tables if need be and keeps the tenant's name (the object's id is only a hash of it). Called by every write. */
  private remember(tenant: string): void {
    if (!this.schema) {
      migrate(this.ctx.storage.sql);
      this.schema = true;
    }
    if (this.meta("tenant") === undefined) this.setMeta("tenant", tenant);
  }

  private tenant(): string {
    return (this.schema && this.meta("tenant")) || "";
  }

  private row(id: string): KeyRow | undefined {
    if (!this.schema) return undefined;
    return this.sql<KeyRow>(`SELECT * FROM keys WHERE id = ?`, id)[0];
  }

  private keyView(id: string): KeyView | undefined {
    const row = this.row(id);
    return row ? this.viewOf(row) : undefined;
  }

  private viewOf(row: KeyRow): KeyView {
    const now = this.clock();
    const previousValid = row.previous_until !== null && row.previous_until > now;
    return {
      id: row.id,
      tenant: this.tenant(),
      name: row.name,
      hint: row.hint,
      status: row.revoked_at === null ? "active" : "revoked",
      createdAt: iso(row.created_at)!,
      rotatedAt: iso(row.rotated_at),
      previousValidUntil: previousValid ? iso(row.previous_until) : null,
      revokedAt: iso(row.revoked_at),
      lastUsedAt: iso(row.last_used_at),
    };
  }

  private meta(key: string): string | undefined {
    return this.sql<{ value: string }>(`SELECT value FROM meta WHERE key = ?`, key)[0]?.value;
  }

  private setMeta(key: string, value: string): void {
    this.ctx.storage.sql.exec(`INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value);
  }

  private sql<T extends Record<string, SqlStorageValue>>(query: string, ...bindings: SqlStorageValue[]): T[] {
    return this.ctx.storage.sql.exec<T>(query, ...bindings).toArray();
  }
}

function fail<T>(status: Failure["status"], code: Failure["code"], detail: string): Result<T> {
  return { ok: false, failure: { status, code, detail } };
}

function notFoundKey<T>(): Result<T> {
  return fail(404, "not_found", "no such key for this tenant");
}
