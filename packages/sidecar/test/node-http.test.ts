import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { nodeHttp } from "../src/index.ts";

const BUILT = pathToFileURL(join(import.meta.dirname, "../dist/index.js")).href;

/** Whether a fresh node, after `script` (ESM), has loaded Node's bundled undici. */
function loadsBundledUndici(script: string): string {
  const check = `${script}; console.log(process.moduleLoadList.some((m) => m.includes("deps/undici")));`;
  const run = spawnSync(process.execPath, ["--input-type=module", "-e", check], {
    encoding: "utf8",
    env: {},
  });
  expect(run.stderr).toBe("");
  return run.stdout.trim();
}

describe("nodeHttp", () => {
  it("is node:http", async () => {
    expect(nodeHttp).toBe(await import("node:http").then((m) => m.default));
  });

  it("keeps Node's bundled undici unloaded, which an ESM import of node:http loads", () => {
    expect(loadsBundledUndici('await import("node:http")')).toBe("true");
    expect(
      loadsBundledUndici(
        `const { nodeHttp } = await import(${JSON.stringify(BUILT)}); nodeHttp.createServer()`,
      ),
    ).toBe("false");
  });
});
