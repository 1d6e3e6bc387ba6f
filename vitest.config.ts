import { defineConfig } from "vitest/config";

/**
 * Three layers, run as vitest projects (`npm test` runs all; `npx vitest run --project unit` one):
 *   unit         in-process, no agent: parsers, queues, drivers, properties
 *   integration  a real agent on a real port, driven by real clients (connect-node h1/h2, gRPC, curl-shaped HTTP)
 *   system       the official SDK, a real browser, and the production layout (Dockerfile, systemd unit)
 * Shared helpers live in test/helpers/; what the fuzzer, the soak and the tests share lives in harness/.
 */
export default defineConfig({
  test: {
    // Real agents, processes and kernels: generous per-test limits, no timing assertions.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    // Two cores: test files run two at a time.
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    reporters: ["default"],
    projects: [
      { extends: true, test: { name: "unit", include: ["test/unit/**/*.test.ts"] } },
      { extends: true, test: { name: "integration", include: ["test/integration/**/*.test.ts"] } },
      { extends: true, test: { name: "system", include: ["test/system/**/*.test.ts"] } },
    ],
  },
});
