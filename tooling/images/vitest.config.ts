import { definePackageConfig } from "@bottle/vitest-config";

// Containers start in about a second each, but the machine may be busy.
export default definePackageConfig({ testTimeout: 30_000, slowTimeout: 120_000 });
