/**
 * Starts the broker with `wrangler dev` on a free localhost port, in its own
 * state directory, and waits until it answers /healthz. Used by the end-to-end
 * tests and the CDP benchmark; `stop()` ends wrangler and its workerd and
 * removes the state.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { cleanUpRun, runTmpDir } from "./browsers.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const STARTUP_MS = 90_000;

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * @param {{ vars?: Record<string, string>, state?: string, port?: number, onOutput?: (chunk: string) => void }} [options]
 *   vars: extra Worker variables (`--var`); state: a persistence directory to reuse
 *   (a restart on the same state), kept by stop() when given; port: a fixed port;
 *   onOutput: called with each chunk wrangler writes (stdout and stderr; the
 *   Worker's log lines among them), e.g. to count lifecycle events.
 * @returns {Promise<{ url: string, state: string, stop: () => Promise<void>, kill: () => Promise<void> }>}
 */
export async function startBroker(options = {}) {
  const [port, inspectorPort] = [options.port ?? (await freePort()), await freePort()];
  const ownState = options.state === undefined;
  const state = options.state ?? mkdtempSync(join(tmpdir(), "broker-"));
  const vars = Object.entries(options.vars ?? {}).flatMap(([k, v]) => ["--var", `${k}:${v}`]);
  const url = `http://127.0.0.1:${port}`;
  const tmp = runTmpDir();
  let output = "";
  const child = spawn(
    join(root, "node_modules", ".bin", "wrangler"),
    ["dev", "--port", String(port), "--ip", "127.0.0.1", "--inspector-port", String(inspectorPort), "--persist-to", state, "--show-interactive-dev-session=false", ...vars],
    { cwd: root, stdio: ["ignore", "pipe", "pipe"], detached: true, env: { ...process.env, TMPDIR: tmp, WRANGLER_SEND_METRICS: "false" } },
  );
  const keep = (chunk) => {
    output = (output + chunk.toString()).slice(-20_000);
    options.onOutput?.(chunk.toString());
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);

  const end = async (signal) => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      process.kill(-child.pid, signal);
      const timer = setTimeout(() => child.exitCode === null && process.kill(-child.pid, "SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    }
    cleanUpRun(tmp);
  };
  const stop = async () => {
    await end("SIGTERM");
    if (ownState) rmSync(state, { recursive: true, force: true });
  };
  /** SIGKILL, as a crash: no shutdown hooks; the state directory is kept for a restart. */
  const kill = () => end("SIGKILL");

  const deadline = Date.now() + STARTUP_MS;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`wrangler dev exited with ${child.exitCode}:\n${output}`);
    }
    try {
      if ((await fetch(`${url}/healthz`)).ok) return { url, state, tmp, stop, kill };
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`wrangler dev did not answer ${url}/healthz within ${STARTUP_MS} ms:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
