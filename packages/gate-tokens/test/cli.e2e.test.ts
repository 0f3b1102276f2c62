import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { createBaseEnv, expectNoCanary, runProcess, testdir } from "@bottle/test-utils";
import { describe, expect, it } from "vitest";

const BIN = join(import.meta.dirname, "../dist/cli.js");

async function cli(args: string[], options: { input?: string; env?: Record<string, string> } = {}) {
  return runProcess(process.execPath, [BIN, ...args], {
    env: createBaseEnv(options.env ?? {}),
    // Always close stdin, so a command that waits for it cannot hang the test.
    input: options.input ?? "",
  });
}

/** `create` for project alpha, task t1, in `file`: its token is the result's stdout. */
function createAlphaT1(file: string) {
  return cli(["create", "--token-file", file, "--project", "alpha", "--task", "t1"]);
}

async function fileIn(): Promise<string> {
  return join(await testdir(), "tokens", "tokens.json");
}

describe("bottle-gate-tokens", { tags: ["slow"] }, () => {
  it("prints the token on stdout only, and nowhere else, ever", async () => {
    const file = await fileIn();
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
      "--expires-in",
      "3600",
    ]);
    expect(created.code).toBe(0);
    const token = created.stdout.trim();
    expect(token).toMatch(/^bottle_gt_[A-Za-z0-9_-]{32}$/);
    expect(created.stdout).toBe(`${token}\n`);
    expect(created.stderr).toMatch(
      /^created gt_[0-9a-f]{16} {2}project=alpha {2}task=t1 {2}scopes=read {2}created=\S+ {2}expires=\S+\n$/,
    );
    const list = await cli(["list", "--token-file", file]);
    const json = await cli(["list", "--token-file", file, "--json"]);
    const verify = await cli(["verify", "--token-file", file], { input: `${token}\n` });
    const revoke = await cli(["revoke", "--token-file", file, "--task", "t1"]);
    const again = await cli(["verify", "--token-file", file], { input: token });
    expect([list.code, json.code, verify.code, revoke.code, again.code]).toEqual([0, 0, 0, 0, 1]);
    expect(JSON.parse(json.stdout)).toEqual([
      {
        id: expect.stringMatching(/^gt_/),
        project: "alpha",
        task: "t1",
        scopes: ["read"],
        created: expect.any(String),
        expires: expect.any(String),
      },
    ]);
    expectNoCanary(
      token,
      created.stderr,
      list.stdout,
      list.stderr,
      json.stdout,
      json.stderr,
      verify.stdout,
      verify.stderr,
      revoke.stdout,
      revoke.stderr,
      again.stdout,
      again.stderr,
      await readFile(file, "utf8"),
    );
  });

  it("verifies a token read from stdin: exit 0 with project, task and scopes", async () => {
    const file = await fileIn();
    const { stdout } = await createAlphaT1(file);
    const ok = await cli(["verify", "--token-file", file], { input: stdout });
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^gt_[0-9a-f]{16} {2}project=alpha {2}task=t1 {2}scopes=read,write /);
    expect(ok.stderr).toBe("");
  });

  it.each([
    ["unknown", `bottle_gt_${"A".repeat(32)}\n`],
    ["malformed", "not a token\n"],
    ["malformed", ""],
    ["malformed", `${"a".repeat(5000)}\n`],
  ])("refuses an %s token with exit 1 and BTL_TOKENS_DENIED", async (reason, input) => {
    const file = await fileIn();
    await createAlphaT1(file);
    const bad = await cli(["verify", "--token-file", file], { input });
    expect(bad.code).toBe(1);
    expect(bad.stdout).toBe("");
    expect(bad.stderr).toBe(`BTL_TOKENS_DENIED: the token is ${reason}\n`);
  });

  it("never takes a token from argv, and does not echo one given there", async () => {
    const file = await fileIn();
    const { stdout } = await createAlphaT1(file);
    const token = stdout.trim();
    const result = await cli(["verify", "--token-file", file, token]);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      "BTL_TOKENS_INVALID_INPUT: verify reads the token from stdin, never from the command line\n",
    );
    const stray = await cli(["list", "--token-file", file, token]);
    expect(stray.code).toBe(2);
    expect(stray.stderr).toMatch(/^BTL_TOKENS_INVALID_INPUT: too many arguments/);
    const option = await cli(["list", "--token-file", file, `--token=${token}`]);
    expect(option.code).toBe(2);
    expectNoCanary(token, result.stdout, result.stderr, stray.stderr, option.stderr);
  });

  it("takes the token file from BOTTLE_GATE_TOKEN_FILE; --token-file wins", async () => {
    const file = await fileIn();
    const other = await fileIn();
    const env = { BOTTLE_GATE_TOKEN_FILE: file };
    expect((await cli(["create", "--project", "alpha", "--task", "t1"], { env })).code).toBe(0);
    expect((await cli(["list"], { env })).stdout).toMatch(/task=t1/);
    const explicit = ["create", "--project", "beta", "--task", "t2"];
    expect((await cli([...explicit, `--token-file=${other}`], { env })).code).toBe(0);
    expect((await cli(["list", "--token-file", other], { env })).stdout).toMatch(/task=t2/);
    expect((await cli(["list"], { env })).stdout).not.toMatch(/task=t2/);
  });

  it("asks for a token file when there is none", async () => {
    const result = await cli(["list"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      "BTL_TOKENS_INVALID_INPUT: give --token-file FILE or set BOTTLE_GATE_TOKEN_FILE\n",
    );
  });

  it("revokes by id, task or project, and exits 1 with BTL_TOKENS_NOT_FOUND when nothing matched", async () => {
    const file = await fileIn();
    const create = (project: string, task: string) =>
      cli(["create", "--token-file", file, "--project", project, "--task", task]);
    const first = await create("alpha", "t1");
    await create("alpha", "t2");
    await create("beta", "t2");
    await create("gamma", "t3");
    const id = /created (gt_[0-9a-f]{16})/.exec(first.stderr)?.[1] ?? "";
    const byId = await cli(["revoke", "--token-file", file, "--id", id]);
    expect(byId.stdout).toMatch(new RegExp(`^revoked ${id} {2}project=alpha {2}task=t1 .*\\n$`));
    const byTask = await cli(["revoke", "--token-file", file, "--task", "t2", "--project", "beta"]);
    expect(byTask.stdout).toMatch(/^revoked gt_\S+ {2}project=beta {2}task=t2 .*\n$/);
    const byProject = await cli(["revoke", "--token-file", file, "--project", "alpha"]);
    expect(byProject.stdout).toMatch(/^revoked gt_\S+ {2}project=alpha {2}task=t2 .*\n$/);
    expect((await cli(["list", "--token-file", file])).stdout).toMatch(/^gt_\S+ {2}project=gamma/);
    const again = await cli(["revoke", "--token-file", file, "--task", "t1"]);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe("BTL_TOKENS_NOT_FOUND: no token matched\n");
    for (const args of [[], ["--id", id, "--task", "t3"]]) {
      const none = await cli(["revoke", "--token-file", file, ...args]);
      expect(none.code).toBe(2);
      expect(none.stderr).toMatch(/^BTL_TOKENS_INVALID_INPUT: give --id ID/);
    }
  });

  it("answers bad arguments with exit 2 and a CODE: message line", async () => {
    const file = await fileIn();
    const cases = [
      ["create", "--token-file", file, "--project", "Bad Project", "--task", "t"],
      ["create", "--token-file", file, "--project", "*", "--task", "t"],
      ["create", "--token-file", file, "--project", "a", "--task", "t", "--scope", "admin"],
      ["create", "--token-file", file, "--project", "a", "--task", "t", "--expires-in", "0"],
      ["create", "--token-file", file, "--project", "a"],
      ["frob"],
    ];
    for (const args of cases) {
      const result = await cli(args);
      expect(result.code).toBe(2);
      expect(result.stdout).toBe("");
      expect(result.stderr).toMatch(/^BTL_TOKENS_INVALID_INPUT: /);
    }
  });

  it("exits 3 with the code when the file is unsafe or corrupt", async () => {
    const file = await fileIn();
    await createAlphaT1(file);
    const { chmod, writeFile } = await import("node:fs/promises");
    await chmod(file, 0o644);
    const open = await cli(["list", "--token-file", file]);
    expect([open.code, open.stderr.split(":")[0]]).toEqual([3, "BTL_TOKENS_FILE_MODE"]);
    await chmod(file, 0o600);
    const dir = dirname(file);
    await chmod(dir, 0o755);
    const openDir = await cli(["list", "--token-file", file]);
    expect([openDir.code, openDir.stdout]).toEqual([3, ""]);
    expect(openDir.stderr).toBe(
      `BTL_TOKENS_FILE_MODE: ${dir} is open to group or others (mode 0755); run chmod 700 ${dir}\n`,
    );
    await chmod(dir, 0o700);
    await writeFile(file, "{");
    const corrupt = await cli(["create", "--token-file", file, "--project", "a", "--task", "t"]);
    expect([corrupt.code, corrupt.stdout]).toEqual([3, ""]);
    expect(corrupt.stderr).toBe(
      `BTL_TOKENS_CORRUPT: ${file} is not a valid token file: not JSON\n`,
    );
    expect(await readFile(file, "utf8")).toBe("{");
  });

  it("documents the exit codes in every help", async () => {
    for (const args of [
      ["--help"],
      ["create", "--help"],
      ["list", "--help"],
      ["revoke", "--help"],
      ["verify", "--help"],
      ["help", "revoke"],
    ]) {
      const help = await cli(args);
      expect(help.code).toBe(0);
      expect(help.stdout).toContain("Exit codes:");
      expect(help.stdout).toContain("BOTTLE_GATE_TOKEN_FILE");
    }
    const version = await cli(["--version"]);
    expect(version.stdout).toMatch(/^\d+\.\d+\.\d+/);
  });
});
