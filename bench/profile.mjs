/**
 * CPU profiles of a Miniflare worker's isolate, over workerd's inspector
 * (the DevTools protocol's Profiler domain). `BENCH_PROFILE=1 npm run bench`
 * profiles the broker during the warm acquire + release runs and prints where
 * its JavaScript time goes; the .cpuprofile files (open them in Chrome
 * DevTools) are written to bench/out/.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

const fromWrangler = createRequire(createRequire(import.meta.url).resolve("wrangler/package.json"));
const WebSocket = fromWrangler("ws");

async function connect(url) {
  const socket = new WebSocket(url);
  await new Promise((resolve, reject) => {
    socket.once("open", resolve);
    socket.once("error", reject);
  });
  let next = 0;
  const pending = new Map();
  socket.on("message", (data) => {
    const message = JSON.parse(String(data));
    if (message.id !== undefined) pending.get(message.id)?.(message);
  });
  const send = (method, params = {}) =>
    new Promise((resolve, reject) => {
      const id = ++next;
      pending.set(id, (message) => {
        pending.delete(id);
        if (message.error) reject(new Error(`${method}: ${message.error.message}`));
        else resolve(message.result);
      });
      socket.send(JSON.stringify({ id, method, params }));
    });
  return { send, close: () => socket.close() };
}

/** Self time per function (and per native call site) in a profile, largest first. */
export function summarize(profile, top = 25) {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  const interval = (profile.endTime - profile.startTime) / Math.max(profile.samples.length, 1);
  for (const id of profile.samples) {
    const { functionName, url, lineNumber } = nodes.get(id).callFrame;
    const file = url ? url.split("/").pop() : "";
    const key = `${functionName || "(anonymous)"} ${file}${file ? `:${lineNumber + 1}` : ""}`.trim();
    self.set(key, (self.get(key) ?? 0) + interval);
  }
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  return [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([fn, us]) => ({ fn, ms: Math.round(us / 100) / 10, share: `${((100 * us) / total).toFixed(1)}%` }));
}

/** Runs `work` while the named worker's isolate is profiled; returns work's result and the profile. */
export async function profileDuring(mf, workerName, work, label) {
  const inspector = await mf.getInspectorURL();
  const url = new URL(`/${workerName}`, inspector).href;
  const session = await connect(url);
  try {
    await session.send("Profiler.enable");
    await session.send("Profiler.setSamplingInterval", { interval: 100 });
    await session.send("Profiler.start");
    const result = await work();
    const { profile } = await session.send("Profiler.stop");
    const dir = join(import.meta.dirname, "out");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `${label}.cpuprofile`), JSON.stringify(profile));
    return { result, profile };
  } finally {
    session.close();
  }
}
