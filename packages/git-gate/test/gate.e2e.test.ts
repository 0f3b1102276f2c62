import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  commitFiles,
  createBaseEnv,
  createGitEnv,
  expectNoCanary,
  generateSshKey,
  git,
  runProcess,
  testdir,
} from "@bottle/test-utils";
import { describe, expect, it } from "vitest";
import { BIN, type BottleGate, fakeSecrets, hookLog, startBottleGate } from "./fixture.ts";

/** Runs git in `cwd` and returns its result without throwing. */
function tryGit(bottle: BottleGate, cwd: string, args: string[]) {
  return git(args, { cwd, env: bottle.gitEnv.env, allowFailure: true });
}

async function head(bottle: BottleGate, cwd: string): Promise<string> {
  return (await git(["rev-parse", "HEAD"], { cwd, env: bottle.gitEnv.env })).stdout.trim();
}

/** Pushes `branch` and expects it forwarded: the upstream's branch is then the clone's HEAD. */
async function expectForwarded(bottle: BottleGate, work: string, branch = "main") {
  const pushed = await tryGit(bottle, work, ["push", "origin", branch]);
  expect(pushed.code, pushed.stderr).toBe(0);
  expect(await bottle.upstreamRef(`refs/heads/${branch}`)).toBe(await head(bottle, work));
  return pushed;
}

describe("git-gate over an SSH upstream", { tags: ["slow"] }, () => {
  it("forwards a clean push upstream and moves the mirror after the upstream accepted", async () => {
    const bottle = await startBottleGate();
    const work = await bottle.clone();
    await commitFiles(
      work,
      bottle.gitEnv,
      { "src/feature.js": "export const y = 2;\n" },
      "feature",
    );
    const pushed = await tryGit(bottle, work, ["push", "origin", "main"]);
    expect(pushed.code, pushed.stderr).toBe(0);
    expect(pushed.stderr).toMatch(/remote: bottle-git-gate: scanned 1 new commit\(s\), no secrets/);
    const sha = await head(bottle, work);
    expect(await bottle.upstreamRef("refs/heads/main")).toBe(sha);
    expect(await bottle.mirrorRef("refs/heads/main")).toBe(sha);
    expect(bottle.ssh?.pushes).toBe(1);
  });

  it("rejects a planted secret, shows file, line, rule and a redacted match, and changes nothing upstream", async () => {
    const bottle = await startBottleGate();
    const before = await bottle.upstreamRef("refs/heads/main");
    const secret = fakeSecrets.github();
    const work = await bottle.clone();
    await commitFiles(
      work,
      bottle.gitEnv,
      { "config/settings.js": `const a = 1;\nconst token = "${secret}";\n` },
      "add settings",
    );
    const sha = await head(bottle, work);
    const pushed = await tryGit(bottle, work, ["push", "origin", "main"]);
    expect(pushed.code).not.toBe(0);
    expect(pushed.stderr).toContain("remote:");
    expect(pushed.stderr).toContain("config/settings.js:2");
    expect(pushed.stderr).toContain(sha.slice(0, 7));
    expect(pushed.stderr).toMatch(/pre-receive hook declined/);
    expect(await bottle.upstreamRef("refs/heads/main")).toBe(before);
    expect(await bottle.mirrorRef("refs/heads/main")).toBe(before);
    expect(bottle.ssh?.pushes).toBe(0);
    const log = await hookLog(bottle.stateDir);
    expect(log).toContain("BTL_GITGATE_SECRETS_FOUND");
    expect(log).toContain("config/settings.js");
    for (const output of [pushed.stdout, pushed.stderr, log, ...bottle.outputs()]) {
      expect(output).not.toContain(secret);
    }
  });

  it("does not flag a secret already in history below a new branch", async () => {
    const secret = fakeSecrets.anthropic();
    const bottle = await startBottleGate({
      seed: { "README.md": "# api\n", "old/leak.txt": `key=${secret}\n` },
    });
    const work = await bottle.clone();
    await git(["checkout", "-q", "-b", "topic"], { cwd: work, env: bottle.gitEnv.env });
    await commitFiles(work, bottle.gitEnv, { "notes.md": "clean\n" }, "topic work");
    await expectForwarded(bottle, work, "topic");
  });

  it("flags a secret added and deleted again within the same push", async () => {
    const bottle = await startBottleGate();
    const work = await bottle.clone();
    await commitFiles(work, bottle.gitEnv, { "tmp.env": `GH=${fakeSecrets.github()}\n` }, "oops");
    await git(["rm", "-q", "tmp.env"], { cwd: work, env: bottle.gitEnv.env });
    await git(["commit", "-q", "-m", "remove it"], { cwd: work, env: bottle.gitEnv.env });
    const pushed = await tryGit(bottle, work, ["push", "origin", "main"]);
    expect(pushed.code).not.toBe(0);
    expect(pushed.stderr).toContain("tmp.env:1");
    expect(bottle.ssh?.pushes).toBe(0);
  });

  it("flags secrets in a merge resolution, in a tagged commit and in a renamed file", async () => {
    const bottle = await startBottleGate({
      seed: { "README.md": "# api\n", "docs/guide.md": "line one\nline two\n" },
    });
    const work = await bottle.clone();
    const env = bottle.gitEnv.env;
    // A merge whose own resolution adds the secret (in neither parent).
    await git(["checkout", "-q", "-b", "side"], { cwd: work, env });
    await commitFiles(work, bottle.gitEnv, { "side.txt": "side\n" }, "side");
    await git(["checkout", "-q", "main"], { cwd: work, env });
    await commitFiles(work, bottle.gitEnv, { "main.txt": "main\n" }, "main");
    await git(["merge", "-q", "--no-ff", "--no-commit", "side"], { cwd: work, env });
    await writeFile(join(work, "merge.txt"), `token ${fakeSecrets.github()}\n`);
    await git(["add", "merge.txt"], { cwd: work, env });
    await git(["commit", "-q", "-m", "merge side"], { cwd: work, env });
    let pushed = await tryGit(bottle, work, ["push", "origin", "main"]);
    expect(pushed.code).not.toBe(0);
    expect(pushed.stderr).toContain("merge.txt:1");

    // A tag pushed alone, pointing at a commit that holds a secret.
    await git(["reset", "-q", "--hard", "origin/main"], { cwd: work, env });
    await commitFiles(
      work,
      bottle.gitEnv,
      { "release.txt": `k=${fakeSecrets.anthropic()}\n` },
      "release",
    );
    await git(["tag", "-a", "-m", "v1", "v1.0.0"], { cwd: work, env });
    pushed = await tryGit(bottle, work, ["push", "origin", "v1.0.0"]);
    expect(pushed.code).not.toBe(0);
    expect(pushed.stderr).toContain("release.txt:1");
    expect(await bottle.upstreamRef("refs/tags/v1.0.0")).toBeUndefined();

    // A rename with an edit: reported at the new path.
    await git(["reset", "-q", "--hard", "origin/main"], { cwd: work, env });
    await git(["mv", "docs/guide.md", "docs/handbook.md"], { cwd: work, env });
    await writeFile(
      join(work, "docs/handbook.md"),
      `line one\nline two\nkey ${fakeSecrets.github()}\n`,
    );
    await git(["commit", "-q", "-am", "rename guide"], { cwd: work, env });
    pushed = await tryGit(bottle, work, ["push", "origin", "main"]);
    expect(pushed.code).not.toBe(0);
    expect(pushed.stderr).toContain("docs/handbook.md:3");
    expect(bottle.ssh?.pushes).toBe(0);
  });

  it("rejects a push the upstream refuses, with the upstream's own reason", async () => {
    const bottle = await startBottleGate();
    const work = await bottle.clone();
    const before = await bottle.mirrorRef("refs/heads/main");
    const hook = join(bottle.upstream, "hooks", "pre-receive");
    await writeFile(
      hook,
      "#!/bin/sh\necho 'main is protected: open a pull request' >&2\nexit 1\n",
      {
        mode: 0o755,
      },
    );
    await commitFiles(work, bottle.gitEnv, { "p.txt": "p\n" }, "p");
    const pushed = await tryGit(bottle, work, ["push", "origin", "main"]);
    expect(pushed.code).not.toBe(0);
    expect(pushed.stderr).toContain("BTL_GITGATE_UPSTREAM_REJECTED");
    expect(pushed.stderr).toContain("main is protected: open a pull request");
    expect(await bottle.mirrorRef("refs/heads/main")).toBe(before);
    expect(await bottle.upstreamRef("refs/heads/main")).toBe(before);
  });

  it("rejects a push while the upstream is down, with the reason, and leaves the mirror as it was", async () => {
    const bottle = await startBottleGate();
    const work = await bottle.clone();
    const before = await bottle.mirrorRef("refs/heads/main");
    await commitFiles(work, bottle.gitEnv, { "a.txt": "a\n" }, "a");
    await bottle.ssh?.close();
    const pushed = await tryGit(bottle, work, ["push", "origin", "main"]);
    expect(pushed.code).not.toBe(0);
    expect(pushed.stderr).toMatch(
      /remote: bottle-git-gate: push rejected: cannot push api to its upstream: .*(refused|closed)/i,
    );
    expect(pushed.stderr).toContain("BTL_GITGATE_UPSTREAM_UNREACHABLE");
    expect(await bottle.mirrorRef("refs/heads/main")).toBe(before);
  });

  it("refuses a fetch while the upstream is down, with the reason", async () => {
    const bottle = await startBottleGate();
    const work = await bottle.clone();
    await bottle.ssh?.close();
    const fetched = await tryGit(bottle, work, ["fetch", "origin"]);
    expect(fetched.code).not.toBe(0);
    expect(fetched.stderr).toMatch(
      /remote: bottle-git-gate: fetch refused: cannot fetch api from its upstream/,
    );
  });

  it("shows the agent what changed upstream between two fetches, pruned branches included", async () => {
    const bottle = await startBottleGate();
    const work = await bottle.clone();
    const env = bottle.gitEnv.env;
    const sha = await bottle.upstreamCommit({ "upstream.txt": "new\n" });
    await git(["update-ref", "refs/heads/gone", sha], { cwd: bottle.upstream, env });
    let fetched = await tryGit(bottle, work, ["fetch", "--prune", "origin"]);
    expect(fetched.code, fetched.stderr).toBe(0);
    const seen = (await git(["rev-parse", "origin/main"], { cwd: work, env })).stdout.trim();
    expect(seen).toBe(sha);
    expect((await tryGit(bottle, work, ["rev-parse", "--verify", "-q", "origin/gone"])).code).toBe(
      0,
    );
    await git(["update-ref", "-d", "refs/heads/gone"], { cwd: bottle.upstream, env });
    fetched = await tryGit(bottle, work, ["fetch", "--prune", "origin"]);
    expect(fetched.code, fetched.stderr).toBe(0);
    expect(
      (await tryGit(bottle, work, ["rev-parse", "--verify", "-q", "origin/gone"])).code,
    ).not.toBe(0);
    expect(await bottle.mirrorRef("refs/heads/gone")).toBeUndefined();
  });

  it("rejects a push whose upstream host key differs from the pinned one", async () => {
    const bottle = await startBottleGate();
    const work = await bottle.clone();
    const other = await generateSshKey(await testdir());
    const knownHosts = join(bottle.stateDir, "known_hosts", "api");
    const line = (await readFile(knownHosts, "utf8")).trim().split(" ");
    const [, type, blob] = other.publicKeyLine.split(" ");
    await writeFile(knownHosts, `${line[0]} ${type} ${blob}\n`);
    await commitFiles(work, bottle.gitEnv, { "a.txt": "a\n" }, "a");
    const pushed = await tryGit(bottle, work, ["push", "origin", "main"]);
    expect(pushed.code).not.toBe(0);
    expect(pushed.stderr).toMatch(
      /Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED/,
    );
    expect(bottle.ssh?.pushes).toBe(0);
  });

  it("ignores the machine's ssh and git configuration and credentials in the environment", async () => {
    const home = await testdir({
      ".ssh/config": "Host *\n  ProxyCommand /bin/false\n  StrictHostKeyChecking no\n",
      ".gitconfig":
        '[url "http://127.0.0.1:1/"]\n\tinsteadOf = ssh://\n[core]\n\tsshCommand = /bin/false\n',
    });
    const bottle = await startBottleGate({
      env: {
        HOME: home,
        GIT_SSH_COMMAND: "/bin/false",
        GIT_SSH: "/bin/false",
        GIT_CONFIG_PARAMETERS: "'core.sshcommand'='/bin/false'",
        SSH_AUTH_SOCK: join(home, "agent.sock"),
      },
    });
    const work = await bottle.clone();
    await commitFiles(work, bottle.gitEnv, { "h.txt": "h\n" }, "h");
    await expectForwarded(bottle, work);
  });

  it("serialises a fetch and a push on one mirror: both succeed and agree", async () => {
    const bottle = await startBottleGate();
    const pusher = await bottle.clone();
    const fetchers = [await bottle.clone(), await bottle.clone()];
    await commitFiles(pusher, bottle.gitEnv, { "c.txt": "c\n" }, "c");
    const results = await Promise.all([
      tryGit(bottle, pusher, ["push", "origin", "main"]),
      ...fetchers.map((dir) => tryGit(bottle, dir, ["fetch", "origin"])),
    ]);
    for (const result of results) expect(result.code, result.stderr).toBe(0);
    const sha = await head(bottle, pusher);
    expect(await bottle.upstreamRef("refs/heads/main")).toBe(sha);
    expect(await bottle.mirrorRef("refs/heads/main")).toBe(sha);
    const fsck = await git(["fsck", "--strict"], {
      cwd: bottle.mirror,
      env: bottle.gitEnv.env,
      allowFailure: true,
    });
    expect(fsck.code, fsck.stderr).toBe(0);
  });

  it("applies the push policy: no force-push to the default branch, forced elsewhere with a lease", async () => {
    const bottle = await startBottleGate();
    const work = await bottle.clone();
    const env = bottle.gitEnv.env;
    await commitFiles(work, bottle.gitEnv, { "x.txt": "x\n" }, "x");
    expect((await tryGit(bottle, work, ["push", "origin", "main", "main:topic"])).code).toBe(0);
    await git(["commit", "-q", "--amend", "-m", "x rewritten"], { cwd: work, env });
    const forcedMain = await tryGit(bottle, work, ["push", "--force", "origin", "main"]);
    expect(forcedMain.code).not.toBe(0);
    expect(forcedMain.stderr).toContain("BTL_GITGATE_POLICY");
    const forcedTopic = await tryGit(bottle, work, ["push", "--force", "origin", "main:topic"]);
    expect(forcedTopic.code, forcedTopic.stderr).toBe(0);
    expect(await bottle.upstreamRef("refs/heads/topic")).toBe(await head(bottle, work));
    // Someone else moves topic upstream: the next forced update must not clobber it.
    const theirs = await bottle.upstreamCommit({ "theirs.txt": "t\n" }, "theirs", "topic");
    await git(["commit", "-q", "--amend", "-m", "x again"], { cwd: work, env });
    const stale = await tryGit(bottle, work, ["push", "--force", "origin", "main:topic"]);
    expect(stale.code).not.toBe(0);
    expect(stale.stderr).toContain("BTL_GITGATE_UPSTREAM_REJECTED");
    expect(await bottle.upstreamRef("refs/heads/topic")).toBe(theirs);
    // Deleting the default branch is refused; deleting topic is allowed by default.
    expect((await tryGit(bottle, work, ["push", "origin", ":main"])).stderr).toContain(
      "BTL_GITGATE_POLICY",
    );
  });
});

describe("git-gate over an HTTPS-style upstream that demands a credential", {
  tags: ["slow"],
}, () => {
  it("fetches and forwards with the gate-held token, which appears in no output, log or config", async () => {
    const canary = `canary_${"7f3a9c".repeat(6)}`;
    const bottle = await startBottleGate({ transport: "https", env: { UPSTREAM_TOKEN: canary } });
    const work = await bottle.clone();
    await commitFiles(work, bottle.gitEnv, { "b.txt": "b\n" }, "b");
    const pushed = await expectForwarded(bottle, work);
    const mirrorConfig = await readFile(join(bottle.mirror, "config"), "utf8");
    const gitconfig = await readFile(join(bottle.stage, "agent", "gitconfig"), "utf8");
    const log = await hookLog(bottle.stateDir);
    expectNoCanary(
      canary,
      pushed.stderr,
      pushed.stdout,
      mirrorConfig,
      gitconfig,
      log,
      ...bottle.outputs(),
    );
  });

  it("refuses the fetch with the upstream's reason when the token is wrong", async () => {
    const bottle = await startBottleGate({ transport: "https" });
    const work = await bottle.clone();
    await writeFile(join(bottle.stateDir, "secrets", "api.token"), "wrong-token\n", {
      mode: 0o600,
    });
    const fetched = await tryGit(bottle, work, ["fetch", "origin"]);
    expect(fetched.code).not.toBe(0);
    expect(fetched.stderr).toMatch(
      /fetch refused: cannot fetch api from its upstream: .*(401|Authentication failed|could not read)/i,
    );
  });
});

describe("git-gate with a Gitea deploy key", { tags: ["slow"] }, () => {
  it("asks before creating keys and creates nothing without a terminal or --yes", async () => {
    const gitEnv = await createGitEnv();
    const bottle = await startBottleGate({ transport: "gitea", initArgs: ["--yes"] });
    const stage = join(await testdir(), "other-stage");
    const result = await runProcess(
      process.execPath,
      [BIN, "init", "--manifest", bottle.manifest, "--stage", stage],
      { env: createBaseEnv({ ...bottle.env, HOME: gitEnv.home }) },
    );
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("BTL_GITGATE_NOT_CONFIRMED");
    expect(result.stderr).toMatch(
      /create a write deploy key "bottle acme\/api [^"]+" on http:\/\/127\.0\.0\.1:\d+\/acme\/api \(token from \$GITEA_ADMIN\)/,
    );
    expect(bottle.gitea?.keys("acme", "api")).toHaveLength(1);
  });

  it("registers a write deploy key, forwards through it, and revokes it after the gate stopped", async () => {
    const bottle = await startBottleGate({ transport: "gitea", initArgs: ["--yes"] });
    const keys = bottle.gitea?.keys("acme", "api") ?? [];
    expect(keys).toEqual([
      expect.objectContaining({
        read_only: false,
        title: expect.stringMatching(/^bottle acme\/api /),
      }),
    ]);
    const work = await bottle.clone();
    await commitFiles(work, bottle.gitEnv, { "d.txt": "d\n" }, "d");
    await expectForwarded(bottle, work);
    await bottle.gate.kill();
    const revoke = () =>
      runProcess(process.execPath, [BIN, "revoke-keys", "--stage", bottle.stage], {
        env: createBaseEnv(bottle.env),
      });
    const first = await revoke();
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toContain("revoked 1 deploy key(s)");
    expect(bottle.gitea?.keys("acme", "api")).toEqual([]);
    const again = await revoke();
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain("revoked 0 deploy key(s)");
    expectNoCanary(
      bottle.env.GITEA_ADMIN ?? "",
      first.stderr,
      again.stderr,
      ...bottle.outputs(),
      await hookLog(bottle.stateDir),
    );
  });
});

describe("git-gate with a GitHub App token from tokman", { tags: ["slow"] }, () => {
  it("fetches and forwards with installation tokens tokman mints once and the agent never sees", async () => {
    const bottle = await startBottleGate({ transport: "github-app" });
    const work = await bottle.clone();
    await commitFiles(work, bottle.gitEnv, { "app.txt": "from the agent\n" }, "app");
    const pushed = await expectForwarded(bottle, work);
    expect(bottle.github?.mints).toBe(1); // init, the clone's fetch and the push share one token
    const [token] = bottle.github?.tokens() ?? [];
    expect(token?.repositories).toEqual([{ id: 1, name: "api" }]);
    const stateFiles = await readFile(join(bottle.mirror, "config"), "utf8");
    for (const secret of [token?.token ?? "", bottle.env.BOTTLE_TOKMAN_KEY ?? ""]) {
      expectNoCanary(
        secret,
        pushed.stdout,
        pushed.stderr,
        stateFiles,
        ...bottle.outputs(),
        await hookLog(bottle.stateDir),
      );
    }
  });
});
