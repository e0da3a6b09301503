/**
 * The local Browser Rendering binding (Miniflare) starts each Chromium in a
 * process group of its own, with its profile under `os.tmpdir()`; stopping
 * wrangler or the test runner can leave those browsers running, and orphaned
 * ones spin. So every run gives Miniflare a temporary directory of its own
 * (TMPDIR) and, when it ends, stops exactly the browsers whose profile lives
 * there.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A fresh directory to use as TMPDIR for one run's Miniflare. */
export function runTmpDir(prefix = "broker-run-") {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Kills every process whose Chromium profile lies under `dir`; returns how many (Linux; elsewhere 0). */
export function stopBrowsers(dir) {
  if (process.platform !== "linux" || !dir) return 0;
  const tag = `--user-data-dir=${dir}/`;
  let stopped = 0;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let args;
    try {
      args = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
    } catch {
      continue; // exited meanwhile
    }
    if (!args.some((arg) => arg.startsWith(tag))) continue;
    try {
      process.kill(Number(entry), "SIGKILL");
      stopped += 1;
    } catch {
      // already gone
    }
  }
  return stopped;
}

/** Stops the run's browsers and removes its directory. */
export function cleanUpRun(dir) {
  const stopped = stopBrowsers(dir);
  rmSync(dir, { recursive: true, force: true });
  return stopped;
}
