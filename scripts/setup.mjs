#!/usr/bin/env node
/**
 * Idempotent setup, run before `npm start` and `npm test` (prestart/pretest) and
 * by CI. It makes a fresh clone runnable with nothing but Node and npm:
 *
 *   1. npm dependencies (npm ci) when node_modules is missing or stale;
 *   2. a Chromium: CHROME_PATH, /usr/bin/chromium, or Debian's package via apt
 *      when running as root on Debian; otherwise it says exactly what to do;
 *   3. the Chrome shim: wrangler/Miniflare serve the local BROWSER binding by
 *      launching Chrome build 126.0.6478.182 from the wrangler cache and would
 *      download it (impossible offline); a shim at that path execs our Chromium;
 *   4. `.dev.vars`, the local-only secrets (dev keys, admin token, the profiles'
 *      encryption key), each written only when absent;
 *   5. the client's JavaScript build (client/dist), which the examples and the
 *      load tool import: plain Node cannot load client/index.ts;
 *   6. a one-line fix to the installed Miniflare's Browser Rendering emulator
 *      (both copies: wrangler's, and the vitest plugin's), see patchMiniflare.
 *
 * Plain Node built-ins only (it may run before node_modules exists). When all
 * is in place it does no work and takes a fraction of a second.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { accessSync, constants, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
/** The Chrome build wrangler 4.86 and @cloudflare/vitest-plugin 1.5 launch for the BROWSER binding. */
export const CHROME_BUILD = "126.0.6478.182";
/** Miniflare deletes an install directory it never saw a good launch from, unless this marker exists. */
const INSTALL_MARKER = ".miniflare-install-complete";
const CHROMIUM_FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-dev-shm-usage",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

function fail(message) {
  console.error(`setup: ${message}`);
  process.exit(1);
}

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { cwd: root, stdio: "inherit", ...options });
  if (result.status !== 0) fail(`\`${command} ${args.join(" ")}\` failed (exit ${result.status ?? result.signal})`);
}

function isExecutable(path) {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

// 1. npm dependencies -----------------------------------------------------------
function ensureDependencies() {
  const installed = join(root, "node_modules", ".package-lock.json");
  const lock = join(root, "package-lock.json");
  if (existsSync(installed) && statSync(installed).mtimeMs >= statSync(lock).mtimeMs) return;
  console.log("setup: installing npm dependencies (npm ci)…");
  run("npm", ["ci", "--no-audit", "--no-fund"]);
}

// 2. Chromium ---------------------------------------------------------------------
function findChromium() {
  const fromEnv = process.env.CHROME_PATH;
  if (fromEnv) {
    if (!isExecutable(fromEnv)) fail(`CHROME_PATH=${fromEnv} is not an executable file`);
    return fromEnv;
  }
  for (const candidate of ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]) {
    if (isExecutable(candidate)) return candidate;
  }
  const isRoot = process.getuid?.() === 0;
  const hasApt = spawnSync("sh", ["-c", "command -v apt-get"], { stdio: "ignore" }).status === 0;
  if (process.platform === "linux" && isRoot && hasApt) {
    console.log("setup: installing Chromium from Debian (apt-get install chromium)…");
    run("apt-get", ["update"]);
    run("apt-get", ["install", "-y", "--no-install-recommends", "chromium"], {
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
    });
    if (isExecutable("/usr/bin/chromium")) return "/usr/bin/chromium";
    fail("apt-get installed chromium but /usr/bin/chromium is missing");
  }
  fail(
    [
      "no Chromium found, and it cannot be installed here automatically (that needs root and apt).",
      "Install Chrome or Chromium, then run with CHROME_PATH set, for example:",
      "  CHROME_PATH=/usr/bin/chromium npm start",
      '  CHROME_PATH="/Applications/Google Chrome.app/Contents/MacOS/Google Chrome" npm start',
    ].join("\n"),
  );
}

// 3. The Chrome shim --------------------------------------------------------------
function shimPath() {
  const cache = join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), ".wrangler", "chrome");
  if (process.platform === "linux" && process.arch === "x64") {
    return { dir: join(cache, `linux-${CHROME_BUILD}`), exe: join("chrome-linux64", "chrome") };
  }
  if (process.platform === "darwin") {
    const [platform, folder] = process.arch === "arm64" ? ["mac_arm", "chrome-mac-arm64"] : ["mac", "chrome-mac-x64"];
    return {
      dir: join(cache, `${platform}-${CHROME_BUILD}`),
      exe: join(folder, "Google Chrome for Testing.app", "Contents", "MacOS", "Google Chrome for Testing"),
    };
  }
  return undefined;
}

function ensureShim(chromium) {
  const target = shimPath();
  if (!target) {
    console.warn(`setup: no Chrome shim for ${process.platform}/${process.arch}; the local BROWSER binding may try to download Chrome`);
    return;
  }
  const file = join(target.dir, target.exe);
  const script = `#!/bin/sh\n# Written by scripts/setup.mjs: the local Browser Rendering binding runs this Chromium.\nexec "${chromium}" ${CHROMIUM_FLAGS.join(" ")} "$@"\n`;
  if (!existsSync(file) || readFileSync(file, "utf8") !== script) {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, script, { mode: 0o755 });
    console.log(`setup: wrote the Chrome shim ${file} → ${chromium}`);
  }
  const marker = join(target.dir, INSTALL_MARKER);
  if (!existsSync(marker)) writeFileSync(marker, "");
}

// 4. Local-only secrets -------------------------------------------------------------
function ensureDevVars() {
  const file = join(root, ".dev.vars");
  const wanted = {
    API_KEYS: JSON.stringify({ "dev-key": "dev", "dev2-key": "dev2" }),
    ADMIN_TOKEN: "dev-admin",
    // The test suites create many pools under the dev tenants; quota tests set their own tenants' quotas.
    TENANT_MAX_POOLS: "10000",
    TENANT_MAX_SESSIONS: "100000",
    // Profiles are encrypted with a key derived from this (src/profiles/crypto.ts). Random per clone and
    // written once: a new one would make the profiles saved under the old one unreadable.
    PROFILE_ENCRYPTION_KEY: randomBytes(32).toString("base64url"),
  };
  const existing = existsSync(file) ? readFileSync(file, "utf8") : "";
  const missing = Object.entries(wanted).filter(([key]) => !new RegExp(`^${key}=`, "m").test(existing));
  if (missing.length === 0) return;
  const header = existing ? "" : "# Local development only. Never used in production: set real secrets with `wrangler secret put`.\n";
  const separator = existing && !existing.endsWith("\n") ? "\n" : "";
  writeFileSync(file, existing + separator + header + missing.map(([k, v]) => `${k}=${v}\n`).join(""));
  console.log(`setup: wrote ${missing.map(([k]) => k).join(", ")} to .dev.vars (local only, git-ignored)`);
}

// 5. The client's build ---------------------------------------------------------------
function ensureClientBuild() {
  const built = join(root, "client", "dist", "index.js");
  const sources = ["index.ts", "tsconfig.json"].map((file) => join(root, "client", file));
  if (existsSync(built) && sources.every((file) => statSync(file).mtimeMs <= statSync(built).mtimeMs)) return;
  console.log("setup: building the client (tsc -p client → client/dist)…");
  run(process.execPath, [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", "client"]);
}

// 6. The Browser Rendering emulator's launch/list race ---------------------------------
/**
 * Miniflare's emulated browser session (a Durable Object per browser) answers
 * a list's "/session-info" read by first dropping the session if its DevTools
 * socket is closed, and counts a socket not yet opened as closed. A list read
 * while a launch is still opening that socket (the pool objects and the
 * registry list often) makes the new browser forget itself: it vanishes from
 * every list and refuses every connection ("sessionInfo must be set before
 * connecting") while its Chromium runs on. The real platform has no such race,
 * so the emulator is fixed where it is installed: only a socket that was
 * opened and has closed ends the session. test/browser/rendering.test.ts
 * ("launched while the sessions are listed") fails without this.
 */
const MINIFLARE_RACE = "isClosed(this.chromeWs) && this.closeSession()";
const MINIFLARE_FIXED = "this.chromeWs !== void 0 && isClosed(this.chromeWs) && this.closeSession()";
function patchMiniflare() {
  const copies = [
    join(root, "node_modules", "miniflare"),
    join(root, "node_modules", "wrangler", "node_modules", "miniflare"),
    join(root, "node_modules", "@cloudflare", "vitest-plugin", "node_modules", "miniflare"),
  ];
  for (const dir of copies) {
    const file = join(dir, "dist", "src", "workers", "browser-rendering", "binding.worker.js");
    if (!existsSync(file)) continue;
    const source = readFileSync(file, "utf8");
    if (source.includes(MINIFLARE_FIXED)) continue;
    const at = source.indexOf(MINIFLARE_RACE);
    if (at < 0 || source.indexOf(MINIFLARE_RACE, at + 1) >= 0) {
      console.warn(`setup: ${file} is not the Miniflare this project knows; its launch/list race is left as it is`);
      continue;
    }
    writeFileSync(file, source.replace(MINIFLARE_RACE, MINIFLARE_FIXED));
    console.log(`setup: fixed the Browser Rendering emulator's launch/list race in ${file}`);
  }
}

const started = Date.now();
ensureDependencies();
const chromium = findChromium();
ensureShim(chromium);
ensureDevVars();
ensureClientBuild();
patchMiniflare();
let version = "";
try {
  version = execFileSync(chromium, ["--version"], { encoding: "utf8", timeout: 10_000, stdio: ["ignore", "pipe", "ignore"] }).trim();
} catch {
  // Some Chrome builds print nothing without a display; the launch itself is what counts.
}
console.log(`setup: ready in ${Date.now() - started} ms (chromium: ${chromium}${version ? `, ${version}` : ""})`);
