import { definePackageConfig } from "@bottle/vitest-config";
import { configDefaults, mergeConfig } from "vitest/config";

// The docker backend's tests (`*.docker.test.ts`) need a container engine and the images, so
// they run on their own: `pnpm test:docker` (BOTTLE_TEST_DOCKER=1), with their own report.
const docker = process.env.BOTTLE_TEST_DOCKER === "1";

export default mergeConfig(
  definePackageConfig(docker ? { slowTimeout: 180_000 } : {}),
  docker
    ? {
        test: {
          include: ["test/**/*.docker.test.ts"],
          outputFile: { json: "vitest-report.docker.json" },
        },
      }
    : { test: { exclude: [...configDefaults.exclude, "test/**/*.docker.test.ts"] } },
);
