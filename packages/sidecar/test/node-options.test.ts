import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { SIDECAR_NODE_OPTIONS } from "../src/index.ts";

const PACKAGES = join(import.meta.dirname, "../..");
const SIDECAR_BINS = ["gate-server", "cred-proxy", "tokman"];

describe("SIDECAR_NODE_OPTIONS", () => {
  it.each(SIDECAR_BINS)("is what the shebang of %s's bin passes to node", (pkg) => {
    const first = readFileSync(join(PACKAGES, pkg, "src/cli.ts"), "utf8").split("\n")[0];
    expect(first).toBe(`#!/usr/bin/env -S node ${SIDECAR_NODE_OPTIONS.join(" ")}`);
  });

  it("are options this node accepts, and they reach V8", () => {
    // Enough survivors to make V8 grow the young generation as far as it may.
    const script = `let keep = [];
      for (let i = 0; i < 2e6; i++) { keep.push({ i }); if (keep.length > 2e5) keep = []; }
      const young = require("node:v8").getHeapSpaceStatistics().find((s) => s.space_name === "new_space");
      console.log(young.space_size);`;
    const run = (options: readonly string[]) =>
      spawnSync(process.execPath, [...options, "-e", script], { encoding: "utf8", env: {} });
    const tuned = run(SIDECAR_NODE_OPTIONS);
    expect(tuned.stderr).toBe("");
    expect(tuned.status).toBe(0);
    // Two semi-spaces of at most 1 MiB with the option; 64 MiB on this machine without it.
    expect(Number(tuned.stdout)).toBeLessThanOrEqual(2 * 1024 * 1024);
    expect(Number(run([]).stdout)).toBeGreaterThan(8 * 1024 * 1024);
  });
});
