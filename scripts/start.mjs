#!/usr/bin/env node
/**
 * `npm start`: serves the broker locally with `wrangler dev` (setup already ran
 * as prestart). Prints the URL and a first request to try; forwards extra
 * arguments to wrangler and signals to the child. PORT overrides 8787.
 */
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { cleanUpRun, runTmpDir } from "./lib/browsers.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const port = process.env.PORT ?? "8787";
const url = `http://localhost:${port}`;

console.log(`Browser session broker starting on ${url}`);
console.log(
  `Try:  curl -s -X POST ${url}/v1/pools/demo/leases -H 'Authorization: Bearer dev-key' -H 'content-type: application/json' -d '{"ttlSeconds":60}'`,
);
console.log("Walk the whole API:  node scripts/walkthrough.mjs");

const tmp = runTmpDir();
const child = spawn(join(root, "node_modules", ".bin", "wrangler"), ["dev", "--port", port, "--ip", "127.0.0.1", ...process.argv.slice(2)], {
  cwd: root,
  stdio: "inherit",
  // Miniflare keeps its browsers' profiles here, so they can be stopped with wrangler.
  env: { ...process.env, TMPDIR: tmp },
});
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => child.kill(signal));
child.on("exit", (code, signal) => {
  // The local binding's browsers outlive wrangler unless stopped here.
  const stopped = cleanUpRun(tmp);
  if (stopped > 0) console.log(`Stopped ${stopped} local browser processes.`);
  process.exit(code ?? (signal ? 1 : 0));
});
