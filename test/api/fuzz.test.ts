/**
 * Hostile input, property-based (fast-check): malformed JSON, wrong types, huge
 * and fractional numbers, unknown fields, odd content types, path tricks and
 * bad queries against every endpoint that takes input. Every answer must be a
 * 4xx application/problem+json with a code and a detail (never a 5xx), and
 * nothing may change: the pool's config, counts and leases are the same after.
 */
import { SELF } from "cloudflare:test";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { badLeaseId, badPoolName, badSeconds, expectProblem, FUZZ_RUNS as RUNS, malformedJson, oddContentType, unknownFieldOf } from "../support/fuzz";
import { call, poolName } from "../support/http";

let pool = "";
let leaseId = "";

async function snapshot() {
  const described = await call(`/v1/pools/${pool}`);
  const leases = await call(`/v1/pools/${pool}/leases?limit=100`);
  const { config, counts, consistent } = described.body;
  return { config, counts, consistent, leases: leases.body.leases.map((l: any) => [l.id, l.status, l.expiresAt, JSON.stringify(l.labels)]) };
}

const unknownField = unknownFieldOf("ttlSeconds", "waitSeconds", "labels");

beforeAll(async () => {
  pool = poolName("fuzz");
  expect((await call(`/v1/pools/${pool}`, { method: "PUT", body: { maxSessions: 1, maxTtlSeconds: 600 } })).status).toBe(200);
  const lease = await call(`/v1/pools/${pool}/leases`, { method: "POST", body: { ttlSeconds: 600, labels: { job: "fuzz" } } });
  expect(lease.status).toBe(201);
  leaseId = lease.body.id;
});

describe("hostile input", () => {
  it("bodies of the wrong shape, type or size are refused with 400/413/415, and change nothing", async () => {
    const before = await snapshot();
    const targets = () => [
      ["POST", `/v1/pools/${pool}/leases`],
      ["POST", `/v1/pools/${pool}/leases/${leaseId}/renew`],
      // A refused body must not release the lease it names.
      ["POST", `/v1/pools/${pool}/leases/${leaseId}/next`],
      ["PUT", `/v1/pools/${pool}`],
    ] as const;
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.record({ kind: fc.constant("bad-type"), field: fc.constantFrom("ttlSeconds", "waitSeconds", "maxSessions", "minIdle", "maxWaiters"), value: badSeconds }),
          fc.record({ kind: fc.constant("unknown-field"), field: unknownField, value: fc.jsonValue() }),
          fc.record({ kind: fc.constant("malformed"), text: malformedJson }),
          fc.record({ kind: fc.constant("content-type"), type: oddContentType, text: fc.constantFrom('{"ttlSeconds":30}', "ttlSeconds=30") }),
          fc.record({ kind: fc.constant("huge"), size: fc.integer({ min: 16 * 1024 + 1, max: 64 * 1024 }) }),
          fc.record({ kind: fc.constant("labels"), labels: fc.oneof(fc.dictionary(fc.string({ minLength: 64, maxLength: 80 }), fc.string(), { minKeys: 1, maxKeys: 2 }), fc.dictionary(fc.constantFrom("a", "b"), fc.string({ minLength: 257, maxLength: 300 }), { minKeys: 1 }), fc.array(fc.string())) }),
        ),
        fc.nat(2),
        async (input, target) => {
          const [method, path] = targets()[target]!;
          switch (input.kind) {
            case "bad-type":
              // Fields foreign to an endpoint are refused as unknown; known ones for their value.
              return expectProblem(method, path, { body: JSON.stringify({ [input.field]: input.value }), contentType: "application/json" });
            case "unknown-field":
              return expectProblem(method, path, { body: JSON.stringify({ [input.field]: input.value }), contentType: "application/json" });
            case "malformed":
              return expectProblem(method, path, { body: input.text, contentType: "application/json" });
            case "content-type":
              return expectProblem(method, path, { body: input.text, contentType: input.type });
            case "huge":
              return expectProblem(method, path, { body: JSON.stringify({ labels: { a: "x".repeat(input.size) } }), contentType: "application/json" });
            case "labels":
              return expectProblem(method, target === 2 ? `/v1/pools/${pool}/leases` : path, {
                body: JSON.stringify({ labels: input.labels }),
                contentType: "application/json",
              });
          }
        },
      ),
      { numRuns: RUNS },
    );
    expect(await snapshot()).toEqual(before);
  });

  it("bad pool names, lease ids and queries are refused with 400/404, and change nothing", async () => {
    const before = await snapshot();
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          badPoolName.map((name) => ["GET", `/v1/pools/${name}`] as const),
          badPoolName.map((name) => ["POST", `/v1/pools/${name}/leases`] as const),
          badPoolName.map((name) => ["PUT", `/v1/pools/${name}`] as const),
          badPoolName.map((name) => ["DELETE", `/v1/pools/${name}`] as const),
          badLeaseId.map((id) => ["DELETE", `/v1/pools/${pool}/leases/${id}`] as const),
          badLeaseId.map((id) => ["POST", `/v1/pools/${pool}/leases/${id}/renew`] as const),
          badLeaseId.map((id) => ["POST", `/v1/pools/${pool}/leases/${id}/next`] as const),
          badLeaseId.map((id) => ["GET", `/v1/pools/${pool}/leases/${id}/events`] as const),
          fc.uuid().map((id) => ["DELETE", `/v1/pools/${pool}/leases/${id}`] as const),
          fc
            .record({ status: fc.string({ maxLength: 10 }), limit: fc.oneof(fc.integer({ max: 0 }), fc.integer({ min: 101 }), fc.string({ minLength: 1 })) })
            .map((q) => ["GET", `/v1/pools/${pool}/leases?status=${encodeURIComponent(q.status)}&limit=${encodeURIComponent(String(q.limit))}`] as const),
          fc.string({ minLength: 1, maxLength: 10 }).map((k) => ["GET", `/v1/pools?${encodeURIComponent(k)}=1`] as const),
          fc.string({ minLength: 1, maxLength: 40 }).map((k) => ["POST", `/v1/pools/${pool}/leases`, { "idempotency-key": k }] as const),
        ),
        async (request) => {
          const [method, path] = request;
          if (request.length === 3) {
            // Idempotency-Key outside 1-255 visible ASCII characters is refused; valid ones are skipped.
            const key = request[2]["idempotency-key"];
            // (fetch trims a header value, so judge what the broker will see)
            fc.pre(!/^[\x21-\x7e]{1,255}$/.test(key.trim()));
            const response = await SELF.fetch(`https://broker.test${path}`, {
              method,
              headers: { authorization: "Bearer dev-key", "idempotency-key": key },
            }).catch(() => undefined);
            // Headers a fetch client cannot even send are not the broker's to judge.
            if (!response) return;
            await response.body?.cancel();
            expect(response.status).toBe(400);
            return;
          }
          if (method === "GET" && path.startsWith(`/v1/pools/${pool}/leases?status=`)) {
            fc.pre(!/status=(waiting|active|released|expired|failed)&/.test(path) || /limit=(0|-|1\d\d[1-9]|[2-9]\d\d)/.test(path) || /limit=[^&]*[^0-9]/.test(path));
          }
          await expectProblem(method, path);
        },
      ),
      { numRuns: RUNS },
    );
    expect(await snapshot()).toEqual(before);
  });
});
