/**
 * Helpers for HTTP tests against pools backed by real Chromium: a controllable
 * clock for the pool object, waiting for a pool to reach a state, and the
 * browsers alive on the (local) platform.
 */
import puppeteer from "@cloudflare/puppeteer";
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { expect } from "vitest";
import type { PoolObject, PoolView } from "../../src/pool/object";
import { poolStub } from "./pool";

export interface Clock {
  now: number;
  /** Moves the pool's clock forward and runs its alarm, as the platform would at that time. */
  advance(ms: number): Promise<void>;
}

/** Gives the pool object `tenant/name` a clock the test moves (before the pool's first request). */
export async function controlClock(tenant: string, name: string): Promise<Clock> {
  const stub = poolStub(tenant, name);
  const clock: Clock = {
    now: Date.now(),
    async advance(ms) {
      await stub.checkInvariants();
      clock.now += ms;
      await runDurableObjectAlarm(stub);
    },
  };
  await runInDurableObject(stub, (object: PoolObject) => {
    object.clock = () => clock.now;
  });
  return clock;
}

export async function describePool(tenant: string, name: string): Promise<PoolView> {
  const result = await poolStub(tenant, name).describe();
  if (!result.ok) throw new Error(result.failure.detail);
  return result.value;
}

/**
 * Waits until the pool's view satisfies `condition`, asking the pool object
 * after each of its own state changes would have been visible (one RPC round
 * trip per look, at most `looks` of them).
 */
export async function until(
  tenant: string,
  name: string,
  condition: (view: PoolView) => boolean,
  looks = 500,
): Promise<PoolView> {
  for (let i = 0; i < looks; i += 1) {
    const view = await describePool(tenant, name);
    if (condition(view)) return view;
    await scheduler.wait(10);
  }
  throw new Error(`pool ${tenant}/${name} never reached the expected state: ${JSON.stringify(await describePool(tenant, name))}`);
}

/** Waits until every launch, close and reset the pool started has finished. */
export function effectsDone(tenant: string, name: string): Promise<void> {
  return poolStub(tenant, name).effectsDone();
}

/** Session ids of the browsers alive on the platform (local Chromium processes). */
export async function liveBrowsers(): Promise<string[]> {
  return (await puppeteer.sessions(env.BROWSER)).map((s) => s.sessionId);
}

export async function expectConsistent(tenant: string, name: string): Promise<void> {
  const report = await poolStub(tenant, name).checkInvariants();
  expect(report.violations).toEqual([]);
}
