/**
 * Global setup of the end-to-end project: starts the broker with `wrangler dev`
 * (scripts/lib/broker.mjs) and stops it after the run. With BROKER_URL set,
 * the tests target that broker instead (localhost only).
 */
import { appendFileSync, mkdirSync, writeFileSync } from "node:fs";
import type { TestProject } from "vitest/node";
import { startBroker } from "../../scripts/lib/broker.mjs";

declare module "vitest" {
  export interface ProvidedContext {
    brokerUrl: string;
    /** TMPDIR of the broker's Miniflare, where its browsers' profiles live ("" for a BROKER_URL broker: not ours to kill). */
    brokerTmp: string;
  }
}

/** Where the e2e broker's output goes. */
const BROKER_LOG = "test-results/e2e-broker.log";

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const given = process.env.BROKER_URL;
  if (given) {
    const host = new URL(given).hostname;
    if (!["localhost", "127.0.0.1", "[::1]"].includes(host)) throw new Error(`BROKER_URL must be a localhost URL, got ${given}`);
    project.provide("brokerUrl", given.replace(/\/$/, ""));
    project.provide("brokerTmp", "");
    return async () => {};
  }
  // Everything wrangler and the Worker print, for the run's post-mortem (git-ignored).
  mkdirSync("test-results", { recursive: true });
  writeFileSync(BROKER_LOG, "");
  const broker = await startBroker({ onOutput: (chunk: string) => appendFileSync(BROKER_LOG, chunk) });
  console.log(`e2e: broker (wrangler dev) on ${broker.url}`);
  project.provide("brokerUrl", broker.url);
  project.provide("brokerTmp", broker.tmp);
  return broker.stop;
}
