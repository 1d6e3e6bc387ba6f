import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Real agents, processes and kernels: generous per-test limits, no timing assertions.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    // Two cores: test files run two at a time.
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    reporters: ["default"],
  },
});
