import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    projects: [
      {
        // The Worker and pool objects inside workerd (real SQLite, real Chromium through the binding).
        // Lifecycle logs only for problems, so test output stays readable (test/pool/events.test.ts turns "all" back on).
        plugins: [
          cloudflareTest({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              // The account's limits out of reach: the suite's pools share one governor, and must never be
              // throttled by each other. test/governor/ uses governors of its own, with limits set per test.
              bindings: {
                EVENT_LOGS: "problems",
                ACCOUNT_MAX_CONCURRENT_SESSIONS: "100000",
                ACCOUNT_LAUNCHES_PER_SECOND: "100000",
                // A fixed key for profiles (not .dev.vars' random one), the same for every clone.
                PROFILE_ENCRYPTION_KEY: "test-profile-encryption-key-0123456789abcdef",
              },
              // The per-key limiter every test request passes through: as bound in production, but with a
              // limit the suite cannot reach (all tests share the dev keys). test/api/ratelimit.test.ts
              // runs the Worker against TIGHT_RATE_LIMITER, and against no binding (the fallback).
              ratelimits: {
                RATE_LIMITER: { namespace_id: "1001", simple: { limit: 1_000_000, period: 10 } },
                TIGHT_RATE_LIMITER: { namespace_id: "1002", simple: { limit: 5, period: 10 } },
              },
            },
          }),
        ],
        test: {
          name: "workers",
          include: ["test/**/*.test.ts"],
          exclude: ["test/e2e/**"],
          globalSetup: ["test/support/global.ts"],
          // Real Chromium launches take ~1-2 s each on a 2-core machine.
          testTimeout: 60_000,
          hookTimeout: 60_000,
          sequence: { groupOrder: 0 },
        },
      },
      {
        // Ordinary Node clients (puppeteer-core, playwright-core) against the running broker.
        test: {
          name: "e2e",
          include: ["test/e2e/**/*.test.ts"],
          environment: "node",
          globalSetup: ["test/e2e/broker.ts"],
          testTimeout: 60_000,
          hookTimeout: 120_000,
          // After the workers project: both start real browsers, and this machine has 2 cores.
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
