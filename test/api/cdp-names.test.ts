/**
 * The CDP route takes no API key, only a connect token that names its tenant,
 * so anyone may send it any pool name. It reaches a pool object only for a
 * pool its tenant has (the tenant object's `pools` table), and it is rate
 * limited per client address. Pool objects are counted with
 * listDurableObjectIds, which lists every pool object ever instantiated (even
 * one that only read), and calls with the stub hook (./stub-faults.ts).
 */
import { createExecutionContext, env, listDurableObjectIds, runInDurableObject, SELF, waitOnExecutionContext } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import { encodeTenant } from "../../src/token";
import worker from "../../src/index";
import { DEV2_KEY, newPool } from "../support/http";
import { poolStub } from "../support/pool";
import { newTenant } from "../support/tenants";
import { type FaultRule, type Faults, injectFaults } from "./stub-faults";

type TestEnv = Env & { TIGHT_RATE_LIMITER: RateLimit };
const testEnv = env as TestEnv;

/** A well-formed connect token of `tenant` (it matches no lease). */
const tokenOf = (tenant: string) => `${encodeTenant(tenant)}.${"A".repeat(43)}`;

let faults: Faults | undefined;
afterEach(() => {
  faults?.restore();
  faults = undefined;
});

/** Counts the Worker's calls of `method` on pool objects (and fails none). */
function counting(kind: FaultRule["kind"], method: string): FaultRule {
  const rule: FaultRule = { kind, method, times: 0 };
  faults = injectFaults(rule);
  return rule;
}

const ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789-";
/** A valid pool name (`^[a-z0-9][a-z0-9-]{0,62}$`), 8 to 63 characters, random enough to be no pool's. */
function randomName(): string {
  const length = 8 + Math.floor(Math.random() * 56);
  let name = ALPHABET[Math.floor(Math.random() * 36)]!;
  while (name.length < length) name += ALPHABET[Math.floor(Math.random() * ALPHABET.length)]!;
  return name;
}

async function cdp(pool: string, token: string, headers: Record<string, string> = {}) {
  const response = await SELF.fetch(`https://broker.test/v1/pools/${pool}/leases/${crypto.randomUUID()}/cdp?token=${token}`, {
    headers: { upgrade: "websocket", ...headers },
  });
  const body = (await response.json()) as { code?: string; detail?: string };
  return { status: response.status, body };
}

async function poolObjectIds(): Promise<Set<string>> {
  return new Set((await listDurableObjectIds(env.POOL)).map((id) => id.toString()));
}

const poolId = (tenant: string, pool: string) => env.POOL.idFromName(`${tenant}/${pool}`).toString();

describe("the CDP route and pool names", () => {
  it("listDurableObjectIds sees a pool object that was only asked a question (the check below can fail)", async () => {
    const name = randomName();
    expect(await poolObjectIds()).not.toContain(poolId("dev", name));
    expect(await poolStub("dev", name).describe()).toMatchObject({ ok: false, failure: { status: 404 } });
    expect(await poolObjectIds()).toContain(poolId("dev", name));
  });

  it("1,000 random pool names with a token of an existing tenant all answer 404 and leave no pool object behind", async () => {
    const openings = counting("pool", "openConnection");
    const names = Array.from({ length: 1000 }, randomName);
    const before = await poolObjectIds();
    const token = tokenOf("dev");
    const statuses = new Map<string, number>();
    for (let i = 0; i < names.length; i += 50) {
      const replies = await Promise.all(names.slice(i, i + 50).map((name) => cdp(name, token)));
      for (const reply of replies) {
        const key = `${reply.status} ${reply.body.code} ${reply.body.detail}`;
        statuses.set(key, (statuses.get(key) ?? 0) + 1);
      }
    }
    expect(Object.fromEntries(statuses)).toEqual({ "404 not_found lease not found": 1000 });
    expect(faults!.calls(openings)).toBe(0);
    const after = await poolObjectIds();
    const created = names.filter((name) => after.has(poolId("dev", name)) && !before.has(poolId("dev", name)));
    expect(created).toEqual([]);
  });

  it("another tenant's pool name is not one of this tenant's: 404 before any pool object", async () => {
    const name = await newPool("cdp-other", {}, DEV2_KEY);
    const openings = counting("pool", "openConnection");
    const reply = await cdp(name, tokenOf("dev"));
    expect({ status: reply.status, code: reply.body.code }).toEqual({ status: 404, code: "not_found" });
    expect(faults!.calls(openings)).toBe(0);
    expect(await poolObjectIds()).not.toContain(poolId("dev", name));
  });

  it("a pool of the token's tenant is asked, for API_KEYS and managed tenants alike", async () => {
    const devPool = await newPool("cdp-known");
    const { tenant, key } = await newTenant("cdp-managed");
    const managedPool = await newPool("cdp-known", {}, key);
    const openings = counting("pool", "openConnection");
    for (const [owner, pool] of [["dev", devPool], [tenant, managedPool]] as const) {
      const reply = await cdp(pool, tokenOf(owner));
      // The pool object answers: it has no such lease.
      expect({ status: reply.status, code: reply.body.code }).toEqual({ status: 404, code: "not_found" });
    }
    expect(faults!.calls(openings)).toBe(2);
  });

  it("a tenant that does not exist is answered without a pool object, and without creating the tenant", async () => {
    const tenant = `nobody-${crypto.randomUUID().slice(0, 8)}`;
    const name = randomName();
    const reply = await cdp(name, tokenOf(tenant));
    expect({ status: reply.status, code: reply.body.code }).toEqual({ status: 404, code: "not_found" });
    expect(await poolObjectIds()).not.toContain(poolId(tenant, name));
    const tables = await runInDurableObject(env.TENANT.get(env.TENANT.idFromName(tenant)), (_object, state) =>
      state.storage.sql.exec<{ name: string }>(`SELECT name FROM sqlite_master WHERE type = 'table'`).toArray().map((row) => row.name),
    );
    expect(tables.filter((table) => !table.startsWith("_cf_"))).toEqual([]);
  });
});

describe("the CDP route's rate limit per client address", () => {
  /** One CDP request to the Worker with the tight limiter (5 per 10 s) bound as RATE_LIMITER. */
  async function limited(address: string | null, overrides: Partial<Record<keyof TestEnv, unknown>> = { RATE_LIMITER: testEnv.TIGHT_RATE_LIMITER }) {
    const ctx = createExecutionContext();
    const headers: Record<string, string> = { upgrade: "websocket" };
    if (address !== null) headers["cf-connecting-ip"] = address;
    const response = await worker.fetch(
      new Request(`https://broker.test/v1/pools/${randomName()}/leases/${crypto.randomUUID()}/cdp?token=${tokenOf("dev")}`, { headers }),
      { ...testEnv, ...overrides } as Env,
      ctx,
    );
    await waitOnExecutionContext(ctx);
    const body = (await response.json()) as { code?: string; detail?: string };
    return { status: response.status, retryAfter: response.headers.get("retry-after"), type: response.headers.get("content-type"), body };
  }

  /** Requests until one is refused: within 2 × limit + 1 even if a window ends in between (see ratelimit.test.ts). */
  async function untilRefused(address: string | null, limit = 5) {
    const statuses: number[] = [];
    for (let i = 0; i < 2 * limit + 1; i++) {
      const reply = await limited(address);
      statuses.push(reply.status);
      if (reply.status === 429) return { statuses, refused: reply };
    }
    return { statuses, refused: undefined };
  }

  const address = () => `2001:db8::${crypto.randomUUID().slice(0, 4)}:${crypto.randomUUID().slice(0, 4)}`;

  it("answers 429 rate_limited with Retry-After once an address is over the limit; another address is not slowed down", async () => {
    const mine = address();
    const { statuses, refused } = await untilRefused(mine);
    expect(statuses.slice(0, 5)).toEqual([404, 404, 404, 404, 404]);
    expect(refused, `statuses: ${statuses.join(",")}`).toBeDefined();
    expect(refused!.type).toBe("application/problem+json");
    expect(refused!.body.code).toBe("rate_limited");
    expect(refused!.body.detail).toMatch(/client address/);
    expect(Number(refused!.retryAfter)).toBe(10);
    expect((await limited(address())).status).toBe(404);
  });

  it("a refused request reaches no object", async () => {
    const mine = address();
    expect((await untilRefused(mine)).refused).toBeDefined();
    const lookups = counting("tenant", "hasPool");
    expect((await limited(mine)).status).toBe(429);
    expect(faults!.calls(lookups)).toBe(0);
  });

  it("requests without a client address share one bucket", async () => {
    const { statuses, refused } = await untilRefused(null);
    expect(refused, `statuses: ${statuses.join(",")}`).toBeDefined();
    expect(refused!.body.code).toBe("rate_limited");
  });

  it("is off without the binding, or with RATE_LIMIT_REQUESTS 0", async () => {
    const mine = address();
    for (const overrides of [{ RATE_LIMITER: undefined }, { RATE_LIMITER: testEnv.TIGHT_RATE_LIMITER, RATE_LIMIT_REQUESTS: "0" }]) {
      for (let i = 0; i < 12; i++) expect((await limited(mine, overrides)).status).toBe(404);
    }
  });
});
