/**
 * How the broker's objects and the Worker get their browser provider: the real
 * Browser Rendering binding, or the simulation for load runs and benchmarks
 * (Worker var BROWSER_PROVIDER=simulated; never in production).
 *
 * It is also the test seam: tests that inject faults across a restart (a new
 * object instance) or into the Worker's CDP proxy replace `create`, and tests
 * that drive deadlines replace `now` for objects created afterwards.
 */
import type { BrowserProvider } from "./provider";
import { RenderingProvider } from "./rendering";
import { SimulatedProvider, simulationConfig } from "./simulated";

export const providerFactory: { create: (env: Env) => BrowserProvider; now: (() => number) | undefined } = {
  create: (env: Env): BrowserProvider =>
    (env as { BROWSER_PROVIDER?: string }).BROWSER_PROVIDER === "simulated"
      ? new SimulatedProvider(simulationConfig(env as unknown as Record<string, unknown>))
      : new RenderingProvider(env.BROWSER),
  now: undefined,
};
