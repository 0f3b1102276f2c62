import { defineConfig } from "vitest/config";

// Runs every package's tests in one vitest process (`pnpm exec vitest run` at the root);
// `pnpm test` runs them package by package through turbo instead, after each build.
export default defineConfig({
  test: { projects: ["{packages,apps,tooling}/*/vitest.config.ts"] },
});
