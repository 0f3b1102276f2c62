// The shared vitest preset. Plain JavaScript so that vitest loads it without a build step.
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const SETUP = fileURLToPath(new URL("./setup.js", import.meta.url));

/**
 * Returns a package's vitest configuration: tests under `test/`, a setup file that fails a
 * test on any process warning, mocks cleared and restored, a JSON report for CI, and the
 * `slow` tag (longer timeout) that `pnpm test:fast` leaves out
 * (`vitest run --tags-filter='!slow'`).
 *
 * @param {{ testTimeout?: number, slowTimeout?: number }} [options]
 */
export function definePackageConfig(options = {}) {
  const testTimeout = options.testTimeout ?? 10_000;
  const slowTimeout = options.slowTimeout ?? 60_000;
  return defineConfig({
    test: {
      include: ["test/**/*.test.ts"],
      setupFiles: [SETUP],
      clearMocks: true,
      restoreMocks: true,
      unstubEnvs: true,
      testTimeout,
      hookTimeout: slowTimeout,
      tags: [{ name: "slow", timeout: slowTimeout, description: "spawns processes or servers" }],
      reporters: process.env.CI ? ["default", "json"] : ["default"],
      outputFile: { json: "vitest-report.json" },
    },
  });
}
