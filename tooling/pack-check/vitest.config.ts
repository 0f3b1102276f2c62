import { definePackageConfig } from "@bottle/vitest-config";

// Installs take minutes on a cold cache: every test here may run long.
export default definePackageConfig({ testTimeout: 300_000, slowTimeout: 300_000 });
