/**
 * Runs the sizing simulator's engine (sim/engine.ts) in the SQLite of a fresh
 * pool object, as scripts/simulate.mjs runs it in its own Worker.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { type SimOptions, type SimResult, simulate } from "../../sim/engine";
import type { PoolObject } from "../../src/pool/object";

let runs = 0;

export async function simulated(options: SimOptions): Promise<SimResult> {
  const stub = env.POOL.get(env.POOL.idFromName(`sim/${Date.now()}-${++runs}-${crypto.randomUUID()}`));
  return runInDurableObject(stub, (_object: PoolObject, state) => simulate(state.storage, options));
}
