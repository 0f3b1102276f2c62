import { readFile } from "node:fs/promises";
import {
  exitIfNodeTooOld,
  MIN_NODE_VERSION,
  NODE_VERSION_EXIT,
  supportsNode,
} from "@bottle/sidecar/node-version";
import { describe, expect, it } from "vitest";

class Exited extends Error {
  readonly code: number;
  constructor(code: number) {
    super(`exit ${code}`);
    this.code = code;
  }
}

function fakeProcess(node: string) {
  let stderr = "";
  return {
    versions: { node },
    execPath: "/opt/node/bin/node",
    stderr: { write: (text: string) => (stderr += text) },
    exit(code: number): never {
      throw new Exited(code);
    },
    text: () => stderr,
  };
}

describe("supportsNode", () => {
  it("accepts 22.12 and anything newer, with or without the v", () => {
    for (const version of ["22.12.0", "v22.12.0", "22.13.1", "23.0.0", "24.21.0", "v30.1.2"]) {
      expect(supportsNode(version), version).toBe(true);
    }
  });

  it("refuses anything older than 22.12, and what is not a version", () => {
    for (const version of ["22.11.0", "v22.1.99", "20.20.2", "18.19.0", "0.12.18", "", "x.y"]) {
      expect(supportsNode(version), version).toBe(false);
    }
  });

  it("says the same version as the engines field", async () => {
    const pkg = JSON.parse(await readFile(new URL("../package.json", import.meta.url), "utf8"));
    expect(`>=${MIN_NODE_VERSION}`).toBe(`${pkg.engines.node}.0`);
  });
});

describe("exitIfNodeTooOld", () => {
  it("returns without a word on a supported Node.js", () => {
    const proc = fakeProcess("24.21.0");
    expect(() => exitIfNodeTooOld("bottle", proc)).not.toThrow();
    expect(proc.text()).toBe("");
  });

  it("names the executable, the required and the running version, then exits non-zero", () => {
    const proc = fakeProcess("20.20.2");
    let exited: unknown;
    try {
      exitIfNodeTooOld("bottle-gate", proc);
    } catch (error) {
      exited = error;
    }
    expect(exited).toBeInstanceOf(Exited);
    expect((exited as Exited).code).toBe(NODE_VERSION_EXIT);
    expect(NODE_VERSION_EXIT).not.toBe(0);
    expect(proc.text()).toBe(
      "BTL_NODE_VERSION: bottle-gate needs Node.js 22.12.0 or newer, and this is Node.js " +
        "20.20.2 (/opt/node/bin/node). Install Node.js 24 LTS (or 22.12+) and put it first on PATH.\n",
    );
  });
});
