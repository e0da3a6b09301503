/**
 * Global setup of the workers project: gives this run's Miniflare a temporary
 * directory of its own (TMPDIR, where it keeps its browsers' profiles) and
 * stops the browsers found there when the run ends, so no Chromium outlives
 * the tests.
 */
import { cleanUpRun, runTmpDir } from "../../scripts/lib/browsers.mjs";

export default function setup(): () => void {
  const dir = runTmpDir();
  process.env.TMPDIR = dir;
  return () => {
    cleanUpRun(dir);
  };
}
