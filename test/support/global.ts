/**
 * Global setup of the workers project: gives this run's Miniflare a temporary
 * directory of its own (TMPDIR, where it keeps its browsers' profiles) and
 * stops the browsers found there when the run ends, so no Chromium outlives
 * the tests.
 */
import type { TestProject } from "vitest/node";
import { runTmpDir, stopBrowsers } from "../../scripts/lib/browsers.mjs";

export default function setup(project: TestProject): () => void {
  // The model-based test's budget: bounded in `npm test`, larger in `npm run test:deep`.
  project.provide("modelRuns", Number(process.env.MODEL_RUNS ?? 12));
  project.provide("modelSeed", process.env.MODEL_SEED === undefined ? undefined : Number(process.env.MODEL_SEED));
  project.provide("modelPath", process.env.MODEL_PATH);
  const dir = runTmpDir();
  process.env.TMPDIR = dir;
  return () => {
    // Miniflare removes its own directory under `dir` as it shuts down; removing it
    // here as well races with that, so only the browsers are stopped.
    stopBrowsers(dir);
  };
}
