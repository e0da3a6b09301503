#!/usr/bin/env node
/**
 * Walks every row of the API table (docs/api.md) against a running broker, the
 * way a client would, checking each answer. Start the broker with `npm start`,
 * then: node scripts/walkthrough.mjs [--url http://127.0.0.1:8787] [--key dev-key]
 * Loopback only. Exits 0 when every step answered as the contract says.
 */
import { parseArgs } from "node:util";
import puppeteer from "puppeteer-core";

const { values } = parseArgs({
  options: { url: { type: "string", default: "http://127.0.0.1:8787" }, key: { type: "string", default: "dev-key" } },
});
const base = new URL(values.url);
if (!["localhost", "127.0.0.1", "[::1]"].includes(base.hostname)) {
  console.error(`walkthrough: refusing to target ${base.hostname}; loopback only`);
  process.exit(2);
}
const pool = `walk-${Date.now().toString(36)}`;
let failures = 0;

async function step(name, method, path, { body, headers = {}, expect }) {
  const started = Date.now();
  const response = await fetch(new URL(path, base), {
    method,
    headers: { authorization: `Bearer ${values.key}`, ...(body ? { "content-type": "application/json" } : {}), ...headers },
    body: body ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(60_000),
  });
  const text = await response.text();
  const json = text ? JSON.parse(text) : undefined;
  const problem = expect(response, json);
  const ms = Date.now() - started;
  console.log(`${problem ? "FAIL" : "ok  "} ${String(response.status).padEnd(3)} ${method.padEnd(6)} ${path.padEnd(70)} ${name} (${ms} ms)${problem ? `: ${problem}` : ""}`);
  if (problem) failures += 1;
  return json;
}

/** The CDP row: a real client on the lease's connectUrl, refused (expecting `refusedWith`) or driving the browser. */
async function cdpStep(name, connectUrl, refusedWith) {
  const started = Date.now();
  let problem;
  let outcome;
  try {
    const browser = await puppeteer.connect({ browserWSEndpoint: connectUrl, protocolTimeout: 30_000 });
    outcome = `101 ${await browser.version()}`;
    await browser.disconnect();
    if (refusedWith) problem = `expected ${refusedWith}, but the socket opened`;
  } catch (error) {
    outcome = String(error.message ?? error).split("\n")[0];
    if (!refusedWith || !outcome.includes(String(refusedWith))) problem = outcome;
  }
  const path = new URL(connectUrl).pathname + "?token=…";
  console.log(`${problem ? "FAIL" : "ok  "} ${refusedWith ? String(refusedWith).padEnd(3) : "101"} WS     ${path.padEnd(70)} ${name} (${Date.now() - started} ms)${problem ? `: ${problem}` : ""}`);
  if (problem) failures += 1;
}

const is = (status, check = () => undefined) => (response, json) =>
  response.status !== status ? `expected ${status}, got ${response.status} ${JSON.stringify(json)}` : check(json, response);

await step("liveness", "GET", "/healthz", { expect: is(200) });
await step("OpenAPI document", "GET", "/openapi.json", { expect: is(200, (j) => (j.openapi === "3.1.0" ? undefined : "not OpenAPI 3.1")) });
await step("configure the pool", "PUT", `/v1/pools/${pool}`, {
  body: { maxSessions: 1, defaultTtlSeconds: 60 },
  expect: is(200, (j) => (j.config.maxSessions === 1 ? undefined : "config not applied")),
});
const lease = await step("acquire (real browser launch)", "POST", `/v1/pools/${pool}/leases`, {
  body: { ttlSeconds: 60, labels: { walk: "1" } },
  headers: { "idempotency-key": `${pool}-1` },
  expect: is(201, (j) => (j.status === "active" && j.connectUrl?.startsWith("ws") ? undefined : "not an active lease with a connectUrl")),
});
const replay = await step("acquire again with the same Idempotency-Key", "POST", `/v1/pools/${pool}/leases`, {
  body: { ttlSeconds: 60, labels: { walk: "1" } },
  headers: { "idempotency-key": `${pool}-1` },
  expect: is(201, (j, r) => (j.id === lease.id && r.headers.get("idempotent-replayed") === "true" ? undefined : "not the same lease")),
});
// The replay carries a fresh connect token (only its hash is stored); the first one no longer works.
await cdpStep("CDP: puppeteer-core drives the leased browser through connectUrl", replay.connectUrl);
await cdpStep("CDP with the first response's token (replaced by the replay)", lease.connectUrl, 401);
await step("acquire when full, without waiting", "POST", `/v1/pools/${pool}/leases`, {
  body: {},
  expect: is(429, (j, r) => (j.code === "pool_exhausted" && Number(r.headers.get("retry-after")) >= 1 ? undefined : "no pool_exhausted/Retry-After")),
});
await step("read the lease", "GET", `/v1/pools/${pool}/leases/${lease.id}`, { expect: is(200, (j) => (j.id === lease.id ? undefined : "wrong lease")) });
await step("list active leases", "GET", `/v1/pools/${pool}/leases?status=active`, {
  expect: is(200, (j) => (j.leases.length === 1 ? undefined : `expected 1 active lease, got ${j.leases.length}`)),
});
await step("renew", "POST", `/v1/pools/${pool}/leases/${lease.id}/renew`, {
  body: { ttlSeconds: 120 },
  expect: is(200, (j) => (Date.parse(j.expiresAt) > Date.parse(lease.expiresAt) ? undefined : "expiry not extended")),
});
await step("pool: counts and consistency", "GET", `/v1/pools/${pool}`, {
  expect: is(200, (j) => (j.counts.leased === 1 && j.consistent ? undefined : JSON.stringify(j.counts))),
});
await step("release", "DELETE", `/v1/pools/${pool}/leases/${lease.id}`, { expect: is(200, (j) => (j.status === "released" ? undefined : j.status)) });
await step("release again (idempotent)", "DELETE", `/v1/pools/${pool}/leases/${lease.id}`, { expect: is(200, (j) => (j.status === "released" ? undefined : j.status)) });
await cdpStep("CDP after release: refused", replay.connectUrl, 409);
await step("renew an ended lease", "POST", `/v1/pools/${pool}/leases/${lease.id}/renew`, {
  body: {},
  expect: is(409, (j) => (j.code === "lease_not_active" ? undefined : j.code)),
});
const warm = await step("acquire the reused warm session", "POST", `/v1/pools/${pool}/leases`, {
  body: { waitSeconds: 10 },
  expect: is(201, (j) => (j.sessionId === lease.sessionId ? undefined : "expected the reset session to be reused")),
});
await step("release all", "DELETE", `/v1/pools/${pool}/leases`, { expect: is(200, (j) => (j.released === 1 ? undefined : `released ${j.released}`)) });
await step("read after release-all", "GET", `/v1/pools/${pool}/leases/${warm.id}`, { expect: is(200, (j) => (j.status === "released" ? undefined : j.status)) });
await step("another tenant cannot see it", "GET", `/v1/pools/${pool}/leases/${warm.id}`, {
  headers: { authorization: "Bearer dev2-key" },
  expect: is(404, (j) => (j.code === "not_found" ? undefined : j.code)),
});
await step("no key", "GET", `/v1/pools/${pool}`, { headers: { authorization: "" }, expect: is(401) });
await step("invalid body", "POST", `/v1/pools/${pool}/leases`, { body: { ttlSeconds: "soon" }, expect: is(400) });

console.log(failures === 0 ? "\nwalkthrough: every step answered as the contract says" : `\nwalkthrough: ${failures} step(s) failed`);
process.exit(failures === 0 ? 0 : 1);
