import { randomBytes } from "node:crypto";
import { chmod, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { commitFiles, git, testdir } from "@bottle/test-utils";
import { describe, expect, it } from "vitest";
import { cloneAndCommit, startGate } from "./fixture.ts";

const READS = join(import.meta.dirname, "fixtures/git-reads.mjs");

describe("git through the gate", { tags: ["slow"] }, () => {
  it.each(["0", "2"])("clones, fetches and pushes with protocol v%s", async (version) => {
    const gate = await startGate();
    const url = gate.repoUrl(await gate.token("alpha"), "/alpha.git");
    const env = { ...gate.gitEnv.env, GIT_TRACE_PACKET: "1" };
    const dir = await testdir();
    const clone = await git(["-c", `protocol.version=${version}`, "clone", url, dir], {
      cwd: dir,
      env,
    });
    expect(clone.stderr.includes("git< version 2")).toBe(version === "2");
    await commitFiles(dir, gate.gitEnv, { "new.txt": "hello\n" }, "from the agent");
    await git(["-c", `protocol.version=${version}`, "push", "origin", "main"], {
      cwd: dir,
      env: gate.gitEnv.env,
    });
    await git(["-c", `protocol.version=${version}`, "fetch", "origin"], {
      cwd: dir,
      env: gate.gitEnv.env,
    });
    const local = await git(["rev-parse", "HEAD"], { cwd: dir, env: gate.gitEnv.env });
    const remote = await git(["rev-parse", "main"], {
      cwd: join(gate.base, "alpha.git"),
      env: gate.gitEnv.env,
    });
    expect(remote.stdout).toBe(local.stdout);
  });

  it("serves the several-repository layout /<project>/<repo>.git", async () => {
    const gate = await startGate();
    const dir = await cloneAndCommit(
      gate,
      gate.repoUrl(await gate.token("alpha"), "/alpha/docs.git"),
      { "d.txt": "d\n" },
    );
    await git(["push", "-q", "origin", "main"], { cwd: dir, env: gate.gitEnv.env });
    const log = await git(["log", "-1", "--format=%s", "main"], {
      cwd: join(gate.base, "alpha/docs.git"),
      env: gate.gitEnv.env,
    });
    expect(log.stdout.trim()).toBe("change");
  });

  it("accepts gzip-compressed request bodies", async () => {
    const gate = await startGate();
    const url = gate.repoUrl(await gate.token("alpha"), "/alpha.git");
    const dir = await testdir();
    await git(["clone", "-q", url, dir], { cwd: dir, env: gate.gitEnv.env });
    // Sixty new branches, each at its own commit: the fetch's "want" lines pass 1 KiB and git
    // gzips the request body.
    const other = await cloneAndCommit(gate, url, { "other.txt": "o\n" });
    for (let i = 0; i < 60; i++) {
      await git(["checkout", "-q", "-b", `b${i}`, "main"], { cwd: other, env: gate.gitEnv.env });
      await commitFiles(other, gate.gitEnv, { [`f${i}.txt`]: `${i}\n` }, `c${i}`);
    }
    await git(["push", "-q", "origin", "--all"], { cwd: other, env: gate.gitEnv.env });
    const fetch = await git(["-c", "protocol.version=0", "fetch", "origin"], {
      cwd: dir,
      env: { ...gate.gitEnv.env, GIT_TRACE_CURL: "1", GIT_TRACE_CURL_NO_DATA: "1" },
    });
    expect(fetch.stderr).toMatch(/Content-Encoding: gzip/i);
    const head = await git(["rev-parse", "origin/b59"], { cwd: dir, env: gate.gitEnv.env });
    const pushed = await git(["rev-parse", "b59"], { cwd: other, env: gate.gitEnv.env });
    expect(head.stdout).toBe(pushed.stdout);
  });

  it("takes a chunked push over 20 MiB", async () => {
    const gate = await startGate();
    const url = gate.repoUrl(await gate.token("alpha"), "/alpha.git");
    const dir = await testdir();
    await git(["clone", "-q", url, dir], { cwd: dir, env: gate.gitEnv.env });
    await writeFile(join(dir, "big.bin"), randomBytes(21 * 1024 * 1024));
    await git(["add", "big.bin"], { cwd: dir, env: gate.gitEnv.env });
    await git(["commit", "-qm", "big"], { cwd: dir, env: gate.gitEnv.env });
    const push = await git(["push", "origin", "main"], {
      cwd: dir,
      env: { ...gate.gitEnv.env, GIT_TRACE_CURL: "1", GIT_TRACE_CURL_NO_DATA: "1" },
    });
    expect(push.stderr).toMatch(/Transfer-Encoding: chunked/i);
    const size = await git(["cat-file", "-s", "main:big.bin"], {
      cwd: join(gate.base, "alpha.git"),
      env: gate.gitEnv.env,
    });
    expect(Number(size.stdout)).toBe(21 * 1024 * 1024);
  }, 120_000);

  it("serves shallow and partial clones", async () => {
    const gate = await startGate();
    const url = gate.repoUrl(await gate.token("alpha"), "/alpha.git");
    const shallow = await testdir();
    await git(["clone", "-q", "--depth", "1", url, shallow], {
      cwd: shallow,
      env: gate.gitEnv.env,
    });
    expect(
      (
        await git(["rev-list", "--count", "HEAD"], { cwd: shallow, env: gate.gitEnv.env })
      ).stdout.trim(),
    ).toBe("1");
    const partial = await testdir();
    await git(["clone", "-q", "--filter=blob:none", url, partial], {
      cwd: partial,
      env: gate.gitEnv.env,
    });
    const config = await git(["config", "remote.origin.partialclonefilter"], {
      cwd: partial,
      env: gate.gitEnv.env,
    });
    expect(config.stdout.trim()).toBe("blob:none");
    // Blobs of older commits are fetched lazily, through the gate again.
    const old = await git(["show", "HEAD~1:README.md"], { cwd: partial, env: gate.gitEnv.env });
    expect(old.stdout).toBe("# seed\n");
  });

  it("runs every git process so that refs/replace and grafts never change what git reads", async () => {
    const out = join(await testdir(), "reads.jsonl");
    const hooks = await testdir();
    await writeFile(
      join(hooks, "pre-receive"),
      `#!/bin/sh\ncat >/dev/null\nexec '${process.execPath}' '${READS}' '${out}' pre-receive\n`,
    );
    await chmod(join(hooks, "pre-receive"), 0o755);
    const gate = await startGate({
      args: ["--hooks-dir", hooks, "--access-hook", `${process.execPath} ${READS} ${out} access`],
    });
    const env = gate.gitEnv.env;
    const bare = join(gate.base, "alpha.git");
    // The served repository carries a replace ref that swaps main for a forged root commit,
    // and a graft that cuts main's parent: plain git there reads both.
    const main = (await git(["rev-parse", "main"], { cwd: bare, env })).stdout.trim();
    const forged = (
      await git(["commit-tree", "-m", "forged", "main^{tree}"], { cwd: bare, env })
    ).stdout.trim();
    await git(["replace", main, forged], { cwd: bare, env });
    await writeFile(join(bare, "info", "grafts"), `${main}\n`);
    expect((await git(["log", "-1", "--format=%s", "main"], { cwd: bare, env })).stdout).toBe(
      "forged\n",
    );

    const dir = await cloneAndCommit(gate, gate.repoUrl(await gate.token("alpha"), "/alpha.git"), {
      "x.txt": "x\n",
    });
    await git(["push", "-q", "origin", "main"], { cwd: dir, env });

    const reads = (await readFile(out, "utf8"))
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as Record<string, string>);
    expect(new Set(reads.map((r) => r.label))).toEqual(new Set(["access", "pre-receive"]));
    for (const read of reads) {
      expect(read).toEqual({
        label: read.label,
        GIT_NO_REPLACE_OBJECTS: "1",
        GIT_GRAFT_FILE: "/dev/null/no-grafts",
        subject: "second",
        count: "2",
        stderr: "",
      });
    }
    const pushed = (await git(["rev-parse", "HEAD"], { cwd: dir, env })).stdout;
    expect((await git(["rev-parse", "refs/heads/main"], { cwd: bare, env })).stdout).toBe(pushed);
  });

  it("lets exactly one of two concurrent pushes to one branch win", async () => {
    const gate = await startGate();
    const url = gate.repoUrl(await gate.token("alpha"), "/alpha.git");
    const a = await cloneAndCommit(gate, url, { "a.txt": "a\n" });
    const b = await cloneAndCommit(gate, url, { "b.txt": "b\n" });
    const results = await Promise.all(
      [a, b].map((dir) =>
        git(["push", "origin", "main"], { cwd: dir, env: gate.gitEnv.env, allowFailure: true }),
      ),
    );
    expect(results.map((r) => r.code).sort()).toEqual([0, 1]);
    const loser = results.find((r) => r.code !== 0);
    expect(loser?.stderr).toMatch(/rejected|failed to (update|lock)|fetch first|cannot lock/);
    const winner = results[0]?.code === 0 ? a : b;
    const bare = join(gate.base, "alpha.git");
    const head = await git(["rev-parse", "main"], { cwd: bare, env: gate.gitEnv.env });
    expect(head.stdout).toBe(
      (await git(["rev-parse", "HEAD"], { cwd: winner, env: gate.gitEnv.env })).stdout,
    );
    await git(["fsck", "--strict"], { cwd: bare, env: gate.gitEnv.env });
  });
});
