/**
 * The schema's migrations on real SQLite: the tallies added in version 4 start
 * from the rows a version-3 pool already holds, and the triggers keep them
 * equal to the rows through inserts, status changes and deletes.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { PoolObject } from "../../src/pool/object";
import { migrate, SCHEMA_VERSION } from "../../src/pool/schema";

function tallies(sql: SqlStorage): Record<string, number> {
  return Object.fromEntries(
    sql
      .exec<{ kind: string; state: string; n: number }>(`SELECT kind, state, n FROM tallies`)
      .toArray()
      .filter((r) => r.n !== 0)
      .map((r) => [`${r.kind}/${r.state}`, r.n]),
  );
}

function insertLease(sql: SqlStorage, id: string, seq: number, status: string): void {
  sql.exec(`INSERT INTO leases (id, seq, status, owner, ttl_ms, created_at) VALUES (?, ?, ?, 'test', 1000, 0)`, id, seq, status);
}

describe("schema migrations", () => {
  it("version 4 counts the rows a version-3 pool already has, and its triggers keep counting", async () => {
    const stub = env.POOL.get(env.POOL.idFromName(`schema/${crypto.randomUUID()}`));
    await runInDurableObject(stub, (_object: PoolObject, state) => {
      const sql = state.storage.sql;
      migrate(state.storage);
      expect(SCHEMA_VERSION).toBeGreaterThanOrEqual(4);
      // Back to version 3, holding rows written before tallies existed.
      state.storage.transactionSync(() => {
        for (const trigger of sql.exec<{ name: string }>(`SELECT name FROM sqlite_master WHERE type = 'trigger'`).toArray()) {
          sql.exec(`DROP TRIGGER ${trigger.name}`);
        }
        // Everything versions 4 and later added.
        for (const table of ["tallies", "counters", "histograms"]) sql.exec(`DROP TABLE ${table}`);
        for (const index of ["leases_ended", "sessions_ended", "leases_unconnected", "sessions_unforgotten", "sessions_lost", "leases_waiting_rank"]) {
          sql.exec(`DROP INDEX ${index}`);
        }
        for (const column of ["priority", "rank", "wait_ms", "record", "persist_profile", "viewer_hash"]) sql.exec(`ALTER TABLE leases DROP COLUMN ${column}`);
        // Everything versions 9 and later added.
        sql.exec(`DROP TABLE viewers`);
        sql.exec(`ALTER TABLE connections DROP COLUMN kind`);
        for (const column of ["alive_at", "missed_at"]) sql.exec(`ALTER TABLE sessions DROP COLUMN ${column}`);
        sql.exec(`ALTER TABLE leases DROP COLUMN connected_at`);
        sql.exec(`UPDATE schema_version SET version = 3`);
        sql.exec(`INSERT INTO sessions (state, created_at, deadline) VALUES ('idle', 0, 1), ('idle', 0, 1), ('leased', 0, NULL), ('closed', 0, NULL)`);
        insertLease(sql, "a", 1, "active");
        insertLease(sql, "b", 2, "waiting");
        insertLease(sql, "c", 3, "waiting");
        insertLease(sql, "d", 4, "released");
      });

      migrate(state.storage);
      expect(sql.exec<{ version: number }>(`SELECT version FROM schema_version`).one().version).toBe(SCHEMA_VERSION);
      expect(tallies(sql)).toEqual({
        "session/idle": 2,
        "session/leased": 1,
        "session/closed": 1,
        "lease/active": 1,
        "lease/waiting": 2,
        "lease/released": 1,
      });

      sql.exec(`UPDATE leases SET status = 'active' WHERE id = 'b'`);
      sql.exec(`UPDATE leases SET owner = 'someone' WHERE id = 'c'`); // not a status change
      sql.exec(`DELETE FROM leases WHERE id = 'd'`);
      insertLease(sql, "e", 5, "failed");
      sql.exec(`UPDATE sessions SET state = 'leased' WHERE state = 'idle'`);
      expect(tallies(sql)).toEqual({
        "session/leased": 3,
        "session/closed": 1,
        "lease/active": 2,
        "lease/waiting": 1,
        "lease/failed": 1,
      });
      // Running the migrations again changes nothing.
      migrate(state.storage);
      expect(tallies(sql)).toMatchObject({ "lease/active": 2, "lease/waiting": 1 });
    });
  });

  it("version 6 counts leases granted before it as connected, and asks nothing of the registry for history", async () => {
    const stub = env.POOL.get(env.POOL.idFromName(`schema/${crypto.randomUUID()}`));
    await runInDurableObject(stub, (_object: PoolObject, state) => {
      const sql = state.storage.sql;
      migrate(state.storage);
      state.storage.transactionSync(() => {
        for (const index of ["leases_unconnected", "sessions_unforgotten", "sessions_lost", "leases_waiting_rank"]) sql.exec(`DROP INDEX ${index}`);
        for (const column of ["priority", "rank", "wait_ms", "record", "persist_profile", "viewer_hash"]) sql.exec(`ALTER TABLE leases DROP COLUMN ${column}`);
        // Everything versions 9 and later added.
        sql.exec(`DROP TABLE viewers`);
        sql.exec(`ALTER TABLE connections DROP COLUMN kind`);
        for (const column of ["alive_at", "missed_at"]) sql.exec(`ALTER TABLE sessions DROP COLUMN ${column}`);
        sql.exec(`ALTER TABLE leases DROP COLUMN connected_at`);
        sql.exec(`UPDATE schema_version SET version = 5`);
        sql.exec(`INSERT INTO sessions (session_id, state, created_at, registered) VALUES ('a', 'leased', 0, 1), ('b', 'closed', 0, 1), (NULL, 'failed', 0, 0)`);
        sql.exec(`UPDATE sessions SET end_reason = 'object_restarted' WHERE state = 'failed'`);
        sql.exec(`INSERT INTO leases (id, seq, status, session_row, owner, ttl_ms, created_at, granted_at) VALUES ('l', 1, 'active', 1, 'test', 1000, 0, 7)`);
      });
      migrate(state.storage);
      expect(sql.exec(`SELECT connected_at FROM leases WHERE id = 'l'`).one()).toEqual({ connected_at: 7 });
      expect(sql.exec(`SELECT state, registered FROM sessions ORDER BY id`).toArray()).toEqual([
        { state: "leased", registered: 1 },
        { state: "closed", registered: 2 },
        { state: "failed", registered: 2 },
      ]);
    });
  });

  it("a pool object that was never created has no tables: reading it writes nothing", async () => {
    const stub = env.POOL.get(env.POOL.idFromName(`schema/${crypto.randomUUID()}`));
    expect((await stub.describe()).ok).toBe(false);
    expect((await stub.getLease("nope")).ok).toBe(false);
    expect(await stub.cancel(crypto.randomUUID())).toBe(false);
    const tables = await runInDurableObject(stub, (_object: PoolObject, state) =>
      state.storage.sql.exec(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' ESCAPE '\\'`).toArray(),
    );
    expect(tables).toEqual([]);
  });
});
