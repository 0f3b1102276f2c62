import type { ViteUserConfig } from "vitest/config";

export interface PackageConfigOptions {
  /** Timeout of an ordinary test in ms (default 10 000). */
  testTimeout?: number;
  /** Timeout of a test tagged `slow`, and of hooks, in ms (default 60 000). */
  slowTimeout?: number;
}

export declare function definePackageConfig(options?: PackageConfigOptions): ViteUserConfig;
