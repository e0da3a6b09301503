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

/**
 * Every process of the run's browsers: each process whose command line names
 * a Chromium profile under `dir` (the main process, and some of its helpers),
 * with the platform session id Miniflare named the profile after
 * (`…/browser-rendering/profile-<sessionId>`; some versions add
 * `-<attempt>`), and whether it is the browser's main process (no `--type=`).
 * Linux only; elsewhere [].
 */
function profileProcesses(dir) {
  if (process.platform !== "linux" || !dir) return [];
  const tag = `--user-data-dir=${dir}/`;
  const found = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let args;
    try {
      args = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
    } catch {
      continue; // exited meanwhile
    }
    const profile = args.find((arg) => arg.startsWith(tag));
    if (!profile) continue;
    const named = /\/profile-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?:-\d+)?\/?$/i.exec(profile);
    found.push({ pid: Number(entry), sessionId: named ? named[1] : null, main: !args.some((arg) => arg.startsWith("--type=")) });
  }
  return found;
}

/**
 * The run's browsers: one entry per Chromium main process whose profile lies
 * under `dir`, with its platform session id (null if the profile is not named
 * after one). Linux only; elsewhere [].
 * @returns {{ pid: number, sessionId: string | null }[]}
 */
export function browsersOf(dir) {
  return profileProcesses(dir)
    .filter((p) => p.main)
    .map(({ pid, sessionId }) => ({ pid, sessionId }));
}

/**
 * Kills (SIGKILL) every process whose Chromium profile lies under `dir`, or
 * only those of the browsers of the given platform session ids; returns how
 * many processes (Linux; elsewhere 0).
 * @param {string} dir
 * @param {Iterable<string>} [sessionIds]
 */
export function stopBrowsers(dir, sessionIds) {
  const only = sessionIds === undefined ? undefined : new Set(sessionIds);
  let stopped = 0;
  for (const { pid, sessionId } of profileProcesses(dir)) {
    if (only && (sessionId === null || !only.has(sessionId))) continue;
    try {
      process.kill(pid, "SIGKILL");
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
