import { join } from "node:path";
import {
  commitFiles,
  createBaseEnv,
  createGitEnv,
  createWorkRepo,
  expectNoCanary,
  git,
  runProcess,
} from "@bottle/test-utils";
import { describe, expect, it } from "vitest";
import { ALNUM, random } from "./helpers.ts";

const BIN = join(import.meta.dirname, "../dist/cli.js");

async function scan(args: string[], cwd: string) {
  return runProcess(process.execPath, [BIN, ...args], {
    cwd,
    env: createBaseEnv({ HOME: cwd }),
  });
}

describe("bottle-scan", { tags: ["slow"] }, () => {
  it("exits 0 on a clean range and 1 with redacted findings on a range that adds a secret", async () => {
    const gitEnv = await createGitEnv();
    const repo = await createWorkRepo(gitEnv);
    const base = (await git(["rev-parse", "HEAD"], { cwd: repo, env: gitEnv.env })).stdout.trim();
    await commitFiles(repo, gitEnv, { "src/a.js": "export const a = 1;\n" }, "clean");
    const clean = await scan(["--range", `${base}..HEAD`, "--scanner", "builtin"], repo);
    expect(clean.code, clean.stderr).toBe(0);
    expect(clean.stderr).toMatch(/scanned 1 commit\(s\), \d+ object\(s\), \d+ bytes with builtin/);

    const secret = `ghp_${random(ALNUM, 36)}`;
    await commitFiles(repo, gitEnv, { "config.env": `TOKEN=${secret}\n` }, "config");
    const dirty = await scan(["--range", `${base}..HEAD`, "--scanner", "builtin"], repo);
    expect(dirty.code).toBe(1);
    expect(dirty.stdout).toContain("config.env:1");
    expect(dirty.stdout).toContain("ghp_…(40 chars)");
    const json = await scan(["--range", `${base}..HEAD`, "--scanner", "builtin", "--json"], repo);
    expect(json.code).toBe(1);
    const result = JSON.parse(json.stdout) as { findings: Array<{ file: string; rule: string }> };
    expect(result.findings.map((f) => f.file)).toEqual(["config.env"]);
    expectNoCanary(secret, dirty.stdout, dirty.stderr, json.stdout, json.stderr);
  });

  it("refuses a bad range with BTL_SCAN_CONFIG and exit 2, and prints help with examples", async () => {
    const gitEnv = await createGitEnv();
    const repo = await createWorkRepo(gitEnv);
    const bad = await scan(["--range", "--all"], repo);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^BTL_SCAN_CONFIG: /m);
    const help = await scan(["--help"], repo);
    expect(help.code).toBe(0);
    for (const text of ["--range <range>", "Examples:", "Exit codes:", "3  the scanner failed"])
      expect(help.stdout).toContain(text);
  });
});
