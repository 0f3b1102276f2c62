import { join } from "node:path";
import { createBaseEnv, expectNoCanary, runProcess, testdir } from "@bottle/test-utils";
import { describe, expect, it } from "vitest";

const BIN = join(import.meta.dirname, "../dist/cli.js");

async function cli(args: string[], options: { input?: string; env?: Record<string, string> } = {}) {
  return runProcess(process.execPath, [BIN, ...args], {
    env: createBaseEnv(options.env ?? {}),
    ...(options.input !== undefined ? { input: options.input } : {}),
  });
}

describe("bottle-gate-tokens", { tags: ["slow"] }, () => {
  it("prints the token on stdout only, once", async () => {
    const file = join(await testdir(), "t.json");
    const created = await cli([
      "create",
      "--token-file",
      file,
      "--project",
      "alpha",
      "--task",
      "t1",
      "--scope",
      "read",
    ]);
    expect(created.code).toBe(0);
    const token = created.stdout.trim();
    expect(token).toMatch(/^bottle_gt_/);
    expect(created.stdout).toBe(`${token}\n`);
    expect(created.stderr).toMatch(
      /^created gt_[0-9a-f]{16} {2}project=alpha {2}task=t1 {2}scopes=read/,
    );
    const list = await cli(["list", "--token-file", file]);
    const json = await cli(["list", "--token-file", file, "--json"]);
    expect(JSON.parse(json.stdout)).toHaveLength(1);
    expectNoCanary(token, created.stderr, list.stdout, list.stderr, json.stdout);
  });

  it("verifies a token read from stdin", async () => {
    const file = join(await testdir(), "t.json");
    const token = (
      await cli(["create", "--token-file", file, "--project", "alpha", "--task", "t1"])
    ).stdout.trim();
    const ok = await cli(["verify", "--token-file", file], { input: `${token}\n` });
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/project=alpha {2}task=t1/);
    const bad = await cli(["verify", "--token-file", file], {
      input: "bottle_gt_nope-nope-nope\n",
    });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe("BTL_TOKENS_DENIED: the token is unknown\n");
  });

  it("takes the token file from BOTTLE_GATE_TOKEN_FILE", async () => {
    const file = join(await testdir(), "t.json");
    const env = { BOTTLE_GATE_TOKEN_FILE: file };
    expect((await cli(["create", "--project", "alpha", "--task", "t1"], { env })).code).toBe(0);
    expect((await cli(["list"], { env })).stdout).toMatch(/task=t1/);
  });

  it("revokes, and says when nothing matched", async () => {
    const file = join(await testdir(), "t.json");
    await cli(["create", "--token-file", file, "--project", "alpha", "--task", "t1"]);
    const revoked = await cli(["revoke", "--token-file", file, "--task", "t1"]);
    expect(revoked.stdout).toMatch(/^revoked gt_/);
    const again = await cli(["revoke", "--token-file", file, "--task", "t1"]);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe("BTL_TOKENS_NOT_FOUND: no token matched\n");
    const none = await cli(["revoke", "--token-file", file]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/^BTL_TOKENS_INVALID_INPUT: give --id/);
  });

  it("answers bad arguments with exit 2 and help with the exit codes", async () => {
    const bad = await cli([
      "create",
      "--token-file",
      "/tmp/x.json",
      "--project",
      "Bad Project",
      "--task",
      "t",
    ]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^BTL_TOKENS_INVALID_INPUT: /);
    const unknown = await cli(["frob"]);
    expect(unknown.code).toBe(2);
    const help = await cli(["create", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("Exit codes:");
  });
});
