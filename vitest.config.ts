import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

export default defineConfig({
  plugins: [cloudflareTest({ wrangler: { configPath: "./wrangler.toml" } })],
  test: {
    // Real Chromium launches take ~1-2 s each on a 2-core machine.
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
