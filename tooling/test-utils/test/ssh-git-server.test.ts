import { readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import ssh2 from "ssh2";
import { describe, expect, it } from "vitest";
import {
  commitFiles,
  createGitEnv,
  createWorkRepo,
  type GitEnv,
  generateSshKey,
  git,
  gitSshCommand,
  runProcess,
  type SshGitServer,
  type SshKey,
  startSshGitServer,
  testdir,
} from "../src/index.ts";
import { parseGitCommand } from "../src/ssh-git-server.ts";

interface Setup {
  gitEnv: GitEnv;
  root: string;
  bare: string;
  key: SshKey;
  server: SshGitServer;
  knownHosts: string;
  /** The git env with GIT_SSH_COMMAND offering `identity` and trusting `knownHosts`. */
  sshEnv(identity?: string, knownHosts?: string): NodeJS.ProcessEnv;
}

async function setup(): Promise<Setup> {
  const gitEnv = await createGitEnv();
  const root = await testdir();
  const bare = join(root, "repo.git");
  await git(["init", "--quiet", "--bare", "-b", "main", bare], { cwd: root, env: gitEnv.env });
  const keys = await testdir();
  const key = await generateSshKey(keys);
  const server = await startSshGitServer({ root, authorizedKeys: [key.publicKeyLine] });
  const knownHosts = join(keys, "known_hosts");
  await writeFile(knownHosts, `${server.knownHostsLine}\n`);
  const sshEnv = (identity = key.privateKeyPath, hosts = knownHosts) => ({
    ...gitEnv.env,
    GIT_SSH_COMMAND: gitSshCommand({ identityFile: identity, knownHostsFile: hosts }),
  });
  return { gitEnv, root, bare, key, server, knownHosts, sshEnv };
}

/** Runs the OpenSSH client with `command` as the remote command line. */
function ssh(s: Setup, command: string) {
  const args = ["-F", "/dev/null", "-o", `UserKnownHostsFile=${s.knownHosts}`];
  args.push("-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes");
  args.push("-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i", s.key.privateKeyPath);
  args.push("-p", String(s.server.port), "git@127.0.0.1", command);
  return runProcess("ssh", args, { env: s.gitEnv.env });
}

describe("parseGitCommand", () => {
  it("reads the service and the single-quoted path git sends", () => {
    expect(parseGitCommand("git-upload-pack '/srv/a.git'")).toEqual({
      service: "git-upload-pack",
      path: "/srv/a.git",
    });
    expect(parseGitCommand("git-receive-pack '/srv/it'\\''s!.git'")).toEqual({
      service: "git-receive-pack",
      path: "/srv/it's!.git",
    });
    expect(parseGitCommand("git-upload-pack '/srv/a'\\!'b.git'")?.path).toBe("/srv/a!b.git");
  });

  it("refuses other commands and malformed quoting", () => {
    for (const command of [
      "ls /",
      "git-upload-archive '/srv/a.git'",
      "git-upload-pack /srv/a.git",
      "git-upload-pack '/srv/a.git' '/other'",
      "git-upload-pack '/srv/a.git'; rm -rf /",
      "git-upload-pack '/srv/a.git",
      "git upload-pack '/srv/a.git'",
    ]) {
      expect(parseGitCommand(command), command).toBeUndefined();
    }
  });
});

describe("generateSshKey", () => {
  it("writes an OpenSSH private key with mode 0600 and returns the public line", async () => {
    const dir = await testdir();
    const key = await generateSshKey(dir, "deploy");
    expect(key.privateKeyPath).toBe(join(dir, "deploy"));
    expect((await stat(key.privateKeyPath)).mode & 0o777).toBe(0o600);
    expect(await readFile(key.privateKeyPath, "utf8")).toMatch(/^-----BEGIN OPENSSH PRIVATE KEY/);
    expect(key.publicKeyLine).toMatch(/^ssh-ed25519 AAAA[A-Za-z0-9+/=]+$/);
    const derived = await runProcess("ssh-keygen", ["-y", "-f", key.privateKeyPath]);
    expect(derived.stdout.trim().split(" ").slice(0, 2).join(" ")).toBe(key.publicKeyLine);
  });

  it("never hands out a pair ssh2 generated malformed (about 1 in 256 raw pairs)", {
    tags: ["slow"],
  }, async () => {
    const dir = await testdir();
    for (let i = 0; i < 1000; i++) {
      const key = await generateSshKey(dir, `k${i}`);
      const parsed = ssh2.utils.parseKey(key.publicKeyLine);
      if (parsed instanceof Error || parsed.getPublicSSH().length !== 51) {
        throw new Error(`malformed public key ${key.publicKeyLine}`);
      }
    }
  });
});

describe("startSshGitServer", { tags: ["slow"] }, () => {
  it("serves a real clone and push through the OpenSSH client", async () => {
    const s = await setup();
    expect(s.server.knownHostsLine).toBe(`[127.0.0.1]:${s.server.port} ${s.server.hostKeyLine}`);
    expect(s.server.hostKeyLine).toMatch(/^ssh-ed25519 AAAA[A-Za-z0-9+/=]+$/);
    expect(s.server.url(s.bare)).toBe(`ssh://git@127.0.0.1:${s.server.port}${s.bare}`);

    const work = await createWorkRepo(s.gitEnv, { remote: s.server.url(s.bare) });
    const env = s.sshEnv();
    await git(["push", "--quiet", "origin", "main"], { cwd: work, env });
    const sha = await commitFiles(work, s.gitEnv, { "b.txt": "second\n" }, "second");
    await git(["push", "--quiet", "origin", "main"], { cwd: work, env });
    expect(s.server.pushes).toBe(2);
    const local = { cwd: s.bare, env: s.gitEnv.env };
    expect((await git(["rev-parse", "main"], local)).stdout.trim()).toBe(sha);

    const target = await testdir();
    await git(["clone", "--quiet", s.server.url(s.bare), "clone"], { cwd: target, env });
    expect(await readFile(join(target, "clone", "b.txt"), "utf8")).toBe("second\n");
    expect(s.server.pushes).toBe(2);
  });

  it("speaks protocol v2 when the client asks for it over the GIT_PROTOCOL env request", async () => {
    const s = await setup();
    const work = await createWorkRepo(s.gitEnv, { remote: s.server.url(s.bare) });
    await git(["push", "--quiet", "origin", "main"], { cwd: work, env: s.sshEnv() });
    const trace = { ...s.sshEnv(), GIT_TRACE_PACKET: "1" };
    const v2 = await git(["-c", "protocol.version=2", "ls-remote", "origin"], {
      cwd: work,
      env: trace,
    });
    expect(v2.stdout).toMatch(/^[0-9a-f]{40}\tHEAD$/m);
    expect(v2.stderr).toMatch(/< version 2$/m);
    const v0 = await git(["-c", "protocol.version=0", "ls-remote", "origin"], {
      cwd: work,
      env: trace,
    });
    expect(v0.stdout).toMatch(/refs\/heads\/main/);
    expect(v0.stderr).not.toMatch(/< version 2$/m);
  });

  it("is refused by OpenSSH when known_hosts pins another host key", async () => {
    const s = await setup();
    const other = await startSshGitServer({ root: s.root, authorizedKeys: [] });
    const wrong = join(await testdir(), "known_hosts");
    await writeFile(wrong, `[127.0.0.1]:${s.server.port} ${other.hostKeyLine}\n`);
    const target = await testdir();
    const result = await git(["clone", s.server.url(s.bare), "clone"], {
      cwd: target,
      env: s.sshEnv(s.key.privateKeyPath, wrong),
      allowFailure: true,
    });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/Host key verification failed/);
  });

  it("refuses a client key that is not authorized, and follows authorize and revoke", async () => {
    const s = await setup();
    const stranger = await generateSshKey(await testdir());
    const target = await testdir();
    const clone = (name: string) =>
      git(["clone", "--quiet", s.server.url(s.bare), name], {
        cwd: target,
        env: s.sshEnv(stranger.privateKeyPath),
        allowFailure: true,
      });
    const refused = await clone("a");
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/Permission denied \(publickey\)/);

    s.server.authorize(`${stranger.publicKeyLine} added-later`);
    expect((await clone("b")).code).toBe(0);

    s.server.revoke(stranger.publicKeyLine);
    expect((await clone("c")).stderr).toMatch(/Permission denied \(publickey\)/);
  });

  it("refuses other commands, paths outside root and dot-dot paths", async () => {
    const s = await setup();
    const outsideRoot = await testdir();
    await git(["init", "--quiet", "--bare", join(outsideRoot, "x.git")], {
      cwd: outsideRoot,
      env: s.gitEnv.env,
    });
    const cases = [
      "ls /",
      "sh -c id",
      `git-upload-pack '${join(outsideRoot, "x.git")}'`,
      `git-upload-pack '${s.root}/../${s.root.split("/").pop()}/repo.git'`,
      `git-receive-pack '${s.root}/missing.git'`,
      "git-upload-pack 'repo.git'",
    ];
    for (const command of cases) {
      const result = await ssh(s, command);
      expect(result.code, command).toBe(128);
      expect(result.stderr, command).toMatch(/^fatal: /m);
    }
    expect(s.server.pushes).toBe(0);
  });

  it("serves with a given host key, so a pinned known_hosts line stays valid", async () => {
    const s = await setup();
    const hostKey = await readFile(s.key.privateKeyPath, "utf8");
    const server = await startSshGitServer({ root: s.root, authorizedKeys: [], hostKey });
    expect(server.hostKeyLine).toBe(s.key.publicKeyLine);
  });

  it("stops accepting connections once closed", async () => {
    const s = await setup();
    await s.server.close();
    const result = await ssh(s, `git-upload-pack '${s.bare}'`);
    expect(result.code).toBe(255);
    expect(result.stderr).toMatch(/Connection refused/);
  });
});
