/**
 * Alerts end to end: a broker (wrangler dev, real Chromium) with
 * ALERT_WEBHOOK_URL pointing at a local receiver; a scripted exhaustion must
 * reach the receiver within ALERT_EXHAUSTED_SECONDS plus the alarm's latency.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startBroker } from "../../scripts/lib/broker.mjs";
import { uniquePool, within } from "./support";

const WINDOW_SECONDS = 3;
/** The alarm fires at the window's end; allow for its latency and the webhook's round trip. */
const SLACK_MS = 5_000;

interface Received {
  kind: string;
  tenant: string;
  pool: string;
  at: string;
  summary: string;
  detail: Record<string, unknown>;
}

let receiver: Server;
const received: Received[] = [];
const listeners: Array<(alert: Received) => void> = [];
let broker: Awaited<ReturnType<typeof startBroker>>;

async function api(path: string, init: { method?: string; body?: unknown } = {}) {
  const response = await fetch(`${broker.url}${path}`, {
    method: init.method ?? "GET",
    headers: { authorization: "Bearer dev-key", ...(init.body === undefined ? {} : { "content-type": "application/json" }) },
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
  });
  return { status: response.status, body: (await response.json()) as Record<string, any> };
}

beforeAll(async () => {
  receiver = createServer((request, response) => {
    let body = "";
    request.on("data", (chunk) => (body += chunk));
    request.on("end", () => {
      const alert = JSON.parse(body) as Received;
      received.push(alert);
      for (const listener of listeners) listener(alert);
      response.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  const port = (receiver.address() as AddressInfo).port;
  broker = await startBroker({
    vars: { ALERT_WEBHOOK_URL: `http://127.0.0.1:${port}/alerts`, ALERT_EXHAUSTED_SECONDS: String(WINDOW_SECONDS), EVENT_LOGS: "problems" },
  });
}, 120_000);

afterAll(async () => {
  await broker?.stop();
  await new Promise((resolve) => receiver?.close(resolve));
});

describe("alerts reach the webhook", () => {
  it("a scripted exhaustion raises pool_exhausted on the local receiver within the window", async () => {
    const pool = uniquePool("alert");
    expect((await api(`/v1/pools/${pool}`, { method: "PUT", body: { maxSessions: 1 } })).status).toBe(200);
    const held = await api(`/v1/pools/${pool}/leases`, { method: "POST", body: { ttlSeconds: 120, waitSeconds: 30 } });
    expect(held.status).toBe(201);
    const arrived = within<Received>((WINDOW_SECONDS * 1000) + SLACK_MS, "the pool_exhausted alert", (done) =>
      listeners.push((alert) => alert.pool === pool && alert.kind === "pool_exhausted" && done(alert)),
    );
    const refusedAt = Date.now();
    const refused = await api(`/v1/pools/${pool}/leases`, { method: "POST", body: { waitSeconds: 0 } });
    expect(refused.status).toBe(429);
    const alert = await arrived;
    const tookMs = Date.now() - refusedAt;
    expect(tookMs).toBeGreaterThanOrEqual(WINDOW_SECONDS * 1000 - 100);
    expect(alert).toMatchObject({ kind: "pool_exhausted", tenant: "dev", pool, detail: { maxSessions: 1, counts: { leased: 1 } } });
    expect(received.filter((a) => a.pool === pool)).toHaveLength(1);
    await api(`/v1/pools/${pool}/leases/${held.body.id}`, { method: "DELETE" });
  }, 60_000);
});
