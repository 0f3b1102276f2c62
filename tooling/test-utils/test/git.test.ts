import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import {
  commitFiles,
  createBareRepo,
  createGitEnv,
  createWorkRepo,
  git,
  testdir,
} from "../src/index.ts";

describe("createGitEnv", { tags: ["slow"] }, () => {
  it("builds the env from an allowlist plus the git isolation variables", async () => {
    vi.stubEnv("BOTTLE_TEST_RUNNER_SECRET", "must-not-leak");
    const { home, env } = await createGitEnv();
    expect(env).not.toHaveProperty("BOTTLE_TEST_RUNNER_SECRET");
    expect(env).toMatchObject({
      HOME: home,
      LANG: "C",
      TZ: "UTC",
      GIT_CONFIG_NOSYSTEM: "1",
      GIT_CONFIG_GLOBAL: join(home, ".gitconfig"),
      GIT_TERMINAL_PROMPT: "0",
    });
    expect(env).not.toHaveProperty("GIT_AUTHOR_DATE");
    expect(env).not.toHaveProperty("GIT_COMMITTER_DATE");
  });

  it("makes git read only the temp global config, never the system one", async () => {
    const gitEnv = await createGitEnv();
    const { stdout } = await git(["config", "--show-origin", "--list"], {
      cwd: gitEnv.home,
      env: gitEnv.env,
    });
    const lines = stdout.trim().split("\n");
    const origins = new Set(lines.map((line) => line.split("\t")[0]));
    expect([...origins]).toEqual([`file:${join(gitEnv.home, ".gitconfig")}`]);
    expect(lines.map((line) => line.split("\t")[1])).toEqual(
      expect.arrayContaining([
        "init.defaultbranch=main",
        "commit.gpgsign=false",
        "maintenance.auto=false",
        "gc.auto=0",
        "protocol.file.allow=always",
        "credential.helper=",
      ]),
    );
  });

  it("uses the given home directory when one is passed", async () => {
    const home = await testdir();
    const gitEnv = await createGitEnv(home);
    expect(gitEnv.home).toBe(home);
    expect(await readFile(join(home, ".gitconfig"), "utf8")).toContain("defaultBranch = main");
  });
});

describe("git", { tags: ["slow"] }, () => {
  it("rejects with the args, exit code and stderr when git fails", async () => {
    const gitEnv = await createGitEnv();
    const repo = await createWorkRepo(gitEnv);
    const run = git(["rev-parse", "--verify", "no-such-ref"], { cwd: repo, env: gitEnv.env });
    await expect(run).rejects.toThrow(
      /\["rev-parse","--verify","no-such-ref"\] exited with code 128: fatal/,
    );
  });

  it("resolves with the exit code when failure is allowed", async () => {
    const gitEnv = await createGitEnv();
    const result = await git(["rev-parse", "--verify", "no-such-ref"], {
      cwd: gitEnv.home,
      env: gitEnv.env,
      allowFailure: true,
    });
    expect(result.code).toBe(128);
    expect(result.stderr).toMatch(/fatal/);
  });

  it("passes input on stdin", async () => {
    const gitEnv = await createGitEnv();
    const { stdout } = await git(["hash-object", "--stdin"], {
      cwd: gitEnv.home,
      env: gitEnv.env,
      input: "hello\n",
    });
    expect(stdout.trim()).toBe("ce013625030ba8dba906f756967f9e9ca394464a");
  });
});

describe("repositories", { tags: ["slow"] }, () => {
  it("creates a work repo on main with one commit by the test identity", async () => {
    const gitEnv = await createGitEnv();
    const repo = await createWorkRepo(gitEnv, { files: { "src/a.txt": "a\n" }, message: "first" });
    const options = { cwd: repo, env: gitEnv.env };
    expect((await git(["symbolic-ref", "--short", "HEAD"], options)).stdout.trim()).toBe("main");
    const log = await git(["log", "--format=%s|%an <%ae>|%cn <%ce>"], options);
    expect(log.stdout.trim()).toBe(
      "first|Bottle Test <test@bottle.invalid>|Bottle Test <test@bottle.invalid>",
    );
    expect(await readFile(join(repo, "src/a.txt"), "utf8")).toBe("a\n");
  });

  it("creates a bare repo whose HEAD is main", async () => {
    const gitEnv = await createGitEnv();
    const bare = await createBareRepo(gitEnv, "origin.git");
    expect(bare.endsWith("/origin.git")).toBe(true);
    const options = { cwd: bare, env: gitEnv.env };
    expect((await git(["rev-parse", "--is-bare-repository"], options)).stdout.trim()).toBe("true");
    expect((await git(["symbolic-ref", "HEAD"], options)).stdout.trim()).toBe("refs/heads/main");
  });

  it("round-trips commits through a bare remote with push and clone", async () => {
    const gitEnv = await createGitEnv();
    const bare = await createBareRepo(gitEnv);
    const work = await createWorkRepo(gitEnv, { remote: bare });
    const env = gitEnv.env;
    await git(["push", "--quiet", "origin", "main"], { cwd: work, env });
    const sha = await commitFiles(work, gitEnv, { "docs/b.md": "second\n" }, "add docs");
    expect(sha).toMatch(/^[0-9a-f]{40}$/);
    await git(["push", "--quiet", "origin", "main"], { cwd: work, env });

    const target = await testdir();
    await git(["clone", "--quiet", bare, "clone"], { cwd: target, env });
    const clone = join(target, "clone");
    expect((await git(["rev-parse", "HEAD"], { cwd: clone, env })).stdout.trim()).toBe(sha);
    expect(await readFile(join(clone, "docs/b.md"), "utf8")).toBe("second\n");
    const log = await git(["log", "--format=%s"], { cwd: clone, env });
    expect(log.stdout.trim().split("\n")).toEqual(["add docs", "initial commit"]);
  });
});
