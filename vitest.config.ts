import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Two cores in CI: run files in parallel, but keep each file's servers and pools to itself.
    pool: "forks",
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
