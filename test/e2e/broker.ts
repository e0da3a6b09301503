/**
 * Global setup of the end-to-end project: starts the broker with `wrangler dev`
 * on a free localhost port (its own state directory, so runs never share
 * pools), waits until it answers /healthz, and stops it after the run. With
 * BROKER_URL set, the tests target that broker instead (localhost only).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";

declare module "vitest" {
  export interface ProvidedContext {
    brokerUrl: string;
  }
}

const STARTUP_MS = 90_000;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function waitForHealth(url: string, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + STARTUP_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`wrangler dev exited with ${child.exitCode}:\n${output()}`);
    try {
      const response = await fetch(`${url}/healthz`);
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`wrangler dev did not answer ${url}/healthz within ${STARTUP_MS} ms:\n${output()}`);
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const given = process.env.BROKER_URL;
  if (given) {
    const host = new URL(given).hostname;
    if (!["localhost", "127.0.0.1", "[::1]"].includes(host)) throw new Error(`BROKER_URL must be a localhost URL, got ${given}`);
    project.provide("brokerUrl", given.replace(/\/$/, ""));
    return async () => {};
  }
  const [port, inspectorPort] = [await freePort(), await freePort()];
  const state = mkdtempSync(join(tmpdir(), "broker-e2e-"));
  const url = `http://127.0.0.1:${port}`;
  let log = "";
  const child = spawn(
    join("node_modules", ".bin", "wrangler"),
    ["dev", "--port", String(port), "--ip", "127.0.0.1", "--inspector-port", String(inspectorPort), "--persist-to", state, "--show-interactive-dev-session=false"],
    { stdio: ["ignore", "pipe", "pipe"], detached: true, env: { ...process.env, WRANGLER_SEND_METRICS: "false" } },
  );
  const keep = (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-20_000);
  };
  child.stdout!.on("data", keep);
  child.stderr!.on("data", keep);
  const stop = async () => {
    if (child.exitCode === null) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      process.kill(-child.pid!, "SIGTERM");
      const timer = setTimeout(() => child.exitCode === null && process.kill(-child.pid!, "SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(state, { recursive: true, force: true });
  };
  try {
    await waitForHealth(url, child, () => log);
  } catch (error) {
    await stop();
    throw error;
  }
  console.log(`e2e: broker (wrangler dev) on ${url}`);
  project.provide("brokerUrl", url);
  return stop;
}
