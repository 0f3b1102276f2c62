import { definePackageConfig } from "@bottle/vitest-config";
import { configDefaults } from "vitest/config";

// The docker backend's tests (`*.docker.test.ts`) need a container engine and the images, so
// they run on their own: `pnpm test:docker` (BOTTLE_TEST_DOCKER=1), with their own report.
const DOCKER_TESTS = "test/**/*.docker.test.ts";
const docker = process.env.BOTTLE_TEST_DOCKER === "1";
const config = definePackageConfig(docker ? { slowTimeout: 180_000 } : {});
if (config.test) {
  if (docker) {
    config.test.include = [DOCKER_TESTS];
    config.test.outputFile = { json: "vitest-report.docker.json" };
  } else {
    config.test.exclude = [...configDefaults.exclude, DOCKER_TESTS];
  }
}

export default config;
