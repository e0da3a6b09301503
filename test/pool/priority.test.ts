/**
 * Priority with ageing (docs/design.md, "Waiting and fairness"; machine.ts
 * PRIORITY_AGEING_MS): a waiter's rank is its arrival moved PRIORITY_AGEING_MS
 * earlier for `high` and later for `low`; the queue is served by rank, first
 * come, first served within a priority, and a `low` caller that has waited
 * longer than PRIORITY_AGEING_MS outranks a `normal` one arriving now, so low
 * never starves. Through the machine (one pool slot, freed by a release), and
 * through the HTTP API (`priority` in the acquire body).
 */
import { describe, expect, it, vi } from "vitest";
import { type LeaseRequest, PRIORITY_AGEING_MS, releaseLease, resetSucceeded } from "../../src/pool/machine";
import { call } from "../support/http";
import { type Machine, withMachine } from "../support/machine";
import { faultPool } from "../support/pool";

/** A caller who queues behind the held session, one millisecond after the previous. */
function arrive(m: Machine, priority?: LeaseRequest["priority"]): string {
  m.now += 1;
  const { result } = m.request({ waitMs: 120_000, ...(priority ? { priority } : {}) });
  expect(result.kind).toBe("waiting");
  if (result.kind === "rejected") throw new Error(result.failure.detail);
  return result.lease.id;
}

/** The holder of the pool's one session releases it; once reset, it goes to whoever the queue serves next, whose lease id is returned. */
function releaseHeld(m: Machine, holder: string): string {
  const lease = m.lease(holder);
  m.run((s) => releaseLease(s, holder));
  m.run((s) => resetSucceeded(s, lease.session_row!));
  const next = m.db.session(lease.session_row!)!;
  expect(next.state).toBe("leased");
  return next.lease_id!;
}

describe("priority with ageing", () => {
  it("serves a high-priority caller before a normal one that queued earlier", () =>
    withMachine({ maxSessions: 1 }, (m) => {
      const held = m.leased();
      const normal = arrive(m);
      const high = arrive(m, "high");

      expect(releaseHeld(m, held.lease.id)).toBe(high);
      expect(m.lease(normal).status).toBe("waiting");
      expect(m.violations()).toEqual([]);
    }));

  it("serves callers of one priority in the order they arrived", () =>
    withMachine({ maxSessions: 1 }, (m) => {
      let holder = m.leased().lease.id;
      const lows = [arrive(m, "low"), arrive(m, "low"), arrive(m, "low")];
      const served: string[] = [];
      for (let i = 0; i < lows.length; i += 1) {
        holder = releaseHeld(m, holder);
        served.push(holder);
      }
      expect(served).toEqual(lows);
      expect(m.violations()).toEqual([]);
    }));

  it("serves a low caller that has waited longer than PRIORITY_AGEING_MS before a normal one arriving now", () =>
    withMachine({ maxSessions: 1, defaultTtlSeconds: 600 }, (m) => {
      const held = m.leased({ ttlMs: 600_000 });
      const low = arrive(m, "low");
      m.now += PRIORITY_AGEING_MS;
      const normal = arrive(m);

      expect(releaseHeld(m, held.lease.id)).toBe(low);
      expect(m.lease(normal).status).toBe("waiting");
      expect(m.violations()).toEqual([]);
    }));

  it("serves a normal caller arriving now before a low one that has waited less than PRIORITY_AGEING_MS", () =>
    withMachine({ maxSessions: 1, defaultTtlSeconds: 600 }, (m) => {
      const held = m.leased({ ttlMs: 600_000 });
      const low = arrive(m, "low");
      m.now += PRIORITY_AGEING_MS - 1_000;
      const normal = arrive(m);

      expect(releaseHeld(m, held.lease.id)).toBe(normal);
      expect(m.lease(low).status).toBe("waiting");
      expect(m.violations()).toEqual([]);
    }));
});

describe("priority through the HTTP API", () => {
  it("serves an acquire with priority high before a normal one that queued first", async () => {
    const pool = await faultPool({ maxSessions: 1 });
    const leases = `/v1/pools/${pool.name}/leases`;
    const held = await call(leases, { method: "POST", body: { ttlSeconds: 60 } });
    expect(held.status).toBe(201);

    const normal = call(leases, { method: "POST", body: { waitSeconds: 60 } });
    await vi.waitFor(async () => expect((await pool.counts()).waiting).toBe(1));
    const high = call(leases, { method: "POST", body: { waitSeconds: 60, priority: "high" } });
    await vi.waitFor(async () => expect((await pool.counts()).waiting).toBe(2));

    expect((await call(`${leases}/${held.body.id}`, { method: "DELETE" })).status).toBe(200);
    const [who, first] = await Promise.race([high.then((reply) => ["high", reply] as const), normal.then((reply) => ["normal", reply] as const)]);
    expect({ who, status: first.status }).toEqual({ who: "high", status: 201 });
    expect((await pool.counts()).waiting).toBe(1);

    expect((await call(`${leases}/${first.body.id}`, { method: "DELETE" })).status).toBe(200);
    expect((await normal).status).toBe(201);
    await pool.expectConsistent();
  });

  it("answers an unknown priority with 400 invalid_request problem+json", async () => {
    const pool = await faultPool({ maxSessions: 1 });
    const reply = await call(`/v1/pools/${pool.name}/leases`, { method: "POST", body: { priority: "urgent" } });
    expect(reply.status).toBe(400);
    expect(reply.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(reply.body.code).toBe("invalid_request");
    expect(await pool.counts()).toMatchObject({ launching: 0, leased: 0, waiting: 0 });
  });
});
