import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  commitFiles,
  createGitEnv,
  createWorkRepo,
  git,
  startHttpGitUpstream,
  testdir,
} from "../src/index.ts";

const USER = "upstream-user";
const PASSWORD = "upstream-password-1";

function basic(user: string, password: string): string {
  return `http.extraHeader=Authorization: Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
}

async function setup() {
  const gitEnv = await createGitEnv();
  const root = await testdir();
  const bare = join(root, "repo.git");
  await git(["init", "--quiet", "--bare", "-b", "main", bare], { cwd: root, env: gitEnv.env });
  const upstream = await startHttpGitUpstream({ root, username: USER, password: PASSWORD });
  return { gitEnv, root, bare, upstream };
}

describe("startHttpGitUpstream", { tags: ["slow"] }, () => {
  it("builds URLs from paths relative to root or absolute inside it", async () => {
    const { upstream, bare } = await setup();
    const url = upstream.url("repo.git");
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/repo\.git$/);
    expect(upstream.url(bare)).toBe(url);
    expect(() => upstream.url("/etc/passwd")).toThrow(/inside/);
  });

  it("serves a real push and clone to a client carrying the credential", async () => {
    const { gitEnv, bare, upstream } = await setup();
    const env = gitEnv.env;
    const auth = ["-c", basic(USER, PASSWORD)];
    const work = await createWorkRepo(gitEnv, { remote: upstream.url("repo.git") });
    // A body over 1 KiB makes git gzip the request; over 1 MiB makes it chunked.
    const big = "x".repeat(2 * 1024 * 1024);
    const sha = await commitFiles(work, gitEnv, { "big.txt": big, "a.txt": "a\n" }, "big");
    await git([...auth, "push", "--quiet", "origin", "main"], { cwd: work, env });
    expect((await git(["rev-parse", "main"], { cwd: bare, env })).stdout.trim()).toBe(sha);

    const target = await testdir();
    await git([...auth, "clone", "--quiet", upstream.url("repo.git"), "clone"], {
      cwd: target,
      env,
    });
    expect(await readFile(join(target, "clone", "a.txt"), "utf8")).toBe("a\n");
    expect(upstream.requests).toBeGreaterThanOrEqual(4);
    expect(upstream.unauthorized).toBe(0);
  });

  it("speaks protocol v2 when the client sends Git-Protocol", async () => {
    const { gitEnv, upstream } = await setup();
    const work = await createWorkRepo(gitEnv, { remote: upstream.url("repo.git") });
    const auth = ["-c", basic(USER, PASSWORD)];
    await git([...auth, "push", "--quiet", "origin", "main"], { cwd: work, env: gitEnv.env });
    const result = await git([...auth, "-c", "protocol.version=2", "ls-remote", "origin"], {
      cwd: work,
      env: { ...gitEnv.env, GIT_TRACE_PACKET: "1" },
    });
    expect(result.stdout).toMatch(/refs\/heads\/main/);
    expect(result.stderr).toMatch(/< version 2$/m);
  });

  it("answers 401 to a missing or wrong credential and counts it", async () => {
    const { gitEnv, upstream } = await setup();
    const target = await testdir();
    const missing = await git(["clone", upstream.url("repo.git"), "a"], {
      cwd: target,
      env: gitEnv.env,
      allowFailure: true,
    });
    expect(missing.code).not.toBe(0);
    expect(upstream.unauthorized).toBe(1);
    const wrong = await git(["-c", basic(USER, "wrong"), "clone", upstream.url("repo.git"), "b"], {
      cwd: target,
      env: gitEnv.env,
      allowFailure: true,
    });
    expect(wrong.code).not.toBe(0);
    expect(upstream.unauthorized).toBe(2);

    const reply = await fetch(`${upstream.url("repo.git")}/info/refs?service=git-upload-pack`);
    expect(reply.status).toBe(401);
    expect(reply.headers.get("www-authenticate")).toBe('Basic realm="upstream"');
    await reply.text();
  });

  it("does not serve paths that climb out of root", async () => {
    const { upstream } = await setup();
    const authorization = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString("base64")}`;
    const base = upstream.url("repo.git").replace(/\/repo\.git$/, "");
    const reply = await fetch(
      `${base}/sub%2F..%2F..%2Frepo.git/info/refs?service=git-upload-pack`,
      {
        headers: { authorization },
      },
    );
    expect(reply.status).toBe(404);
    await reply.text();
  });
});
