import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createBaseEnv, runProcess } from "@bottle/test-utils";
import { describe, expect, it, onTestFinished } from "vitest";

const ROOT = join(import.meta.dirname, "../../..");
const BIOME = join(ROOT, "node_modules/.bin/biome");

/**
 * Lints `source` as the file `name` with the workspace's own config. Biome reads only files
 * under the workspace root, so the probe lives in a temporary directory here, removed after.
 */
async function lint(source: string, name = "probe.ts") {
  const dir = await mkdtemp(join(import.meta.dirname, "lint-probe-"));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, name), source);
  const result = await runProcess(BIOME, ["lint", "--colors=off", join(dir, name)], {
    cwd: ROOT,
    env: createBaseEnv({ HOME: ROOT }),
  });
  return { code: result.code, output: `${result.stdout}${result.stderr}` };
}

describe("the workspace lint refuses what the conventions rule out", { tags: ["slow"] }, () => {
  it.each([
    [
      "vi.mock",
      'import { vi } from "vitest";\nvi.mock("node:fs");\n',
      "Module mocks are not allowed",
    ],
    [
      "vi.doMock",
      'import { vi } from "vitest";\nvi.doMock("node:fs");\n',
      "Module mocks are not allowed",
    ],
    [
      "shell: true",
      'import { spawn } from "node:child_process";\nspawn("ls", [], { shell: true });\n',
      "Never run a shell",
    ],
    [
      "cp.exec",
      'import * as cp from "node:child_process";\ncp.exec("ls");\n',
      "exec and execSync run a shell",
    ],
    [
      "importing exec",
      'import { exec } from "node:child_process";\nexec("ls");\n',
      "argument array (never a shell)",
    ],
    [
      "importing execSync",
      'import { execSync } from "node:child_process";\nexecSync("ls");\n',
      "argument array (never a shell)",
    ],
    [
      "a bare child_process import",
      'import { spawn } from "child_process";\nspawn("ls", []);\n',
      "Import node:child_process",
    ],
    ["a default export", "export default 1;\n", "Avoid default exports"],
    ["export *", 'export * from "./x.ts";\n', "export all"],
    ["a builtin without node:", 'import { readFile } from "fs";\nawait readFile("x");\n', "node:"],
  ])("refuses %s", async (_, source, message) => {
    const { code, output } = await lint(source);
    expect(code).not.toBe(0);
    expect(output).toContain(message);
  });

  it("accepts spawn with an argument array and named exports", async () => {
    const source =
      'import { spawn } from "node:child_process";\n\nexport function run(): void {\n  spawn("git", ["status"], { shell: false });\n}\n';
    const { code, output } = await lint(source);
    expect(output).not.toContain("×");
    expect(code).toBe(0);
  });

  it("allows the default export vitest configs need", async () => {
    const { code } = await lint("export default {};\n", "vitest.config.ts");
    expect(code).toBe(0);
  });
});
