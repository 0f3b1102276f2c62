import { definePackageConfig } from "@bottle/vitest-config";

export default definePackageConfig();
