// The sandbox against the real bwrap: who the agent is, what it may call, what it sees.
import { readFile, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { makeCanary, testdir } from "@bottle/test-utils";
import { describe, expect, it, onTestFinished } from "vitest";
import { SANDBOX_START_FAILED } from "../src/sandbox/index.ts";
import { seccompArch, syscallNumber } from "../src/sandbox/seccomp.ts";
import { runInSandbox, sandboxDirs, sandboxSpec, startSandbox } from "./sandbox-helpers.ts";

const FIXTURES = join(import.meta.dirname, "fixtures");
const ARCH = seccompArch(process.arch);

/** The probes of fixtures/syscall-probe.pl, with this machine's numbers. */
function probeArgs(): string[] {
  const names = [
    "ptrace",
    "process_vm_readv",
    "keyctl",
    "bpf",
    "io_uring_setup",
    "mount",
    "setns",
    "unshare",
    "clone3",
    "clone",
  ] as const;
  const args = names.map((name) => `${name}=${syscallNumber(ARCH, name)}`);
  args.push(`clone_newuser=${syscallNumber(ARCH, "clone")}`);
  args.push(`tiocsti=${syscallNumber(ARCH, "ioctl")}`);
  if (ARCH === "x86_64") args.push(`x32_getpid=${0x40000000 + 39}`);
  return args;
}

function parseProbes(stdout: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of stdout.trim().split("\n")) {
    const [name, errno] = line.split(" ");
    if (name !== undefined && errno !== undefined) out[name] = Number(errno);
  }
  return out;
}

describe("the sandbox", { tags: ["slow"] }, () => {
  it("runs the agent as uid 1000 with no capability, no new privileges and the filter on", async () => {
    const { code, stdout } = await runInSandbox([
      "sh",
      "-c",
      "id -u; id -g; cat /proc/self/status",
    ]);
    expect(code).toBe(0);
    const [uid, gid] = stdout.split("\n");
    expect([uid, gid]).toEqual(["1000", "1000"]);
    const field = (name: string) => new RegExp(`^${name}:\\s*(\\S+)`, "m").exec(stdout)?.[1];
    for (const name of ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]) {
      expect(field(name)).toBe("0000000000000000");
    }
    expect(field("NoNewPrivs")).toBe("1");
    expect(field("Seccomp")).toBe("2");
  });

  it("refuses the filtered system calls and still lets processes start", async () => {
    const { code, stdout, stderr } = await runInSandbox(
      ["perl", join(FIXTURES, "syscall-probe.pl"), ...probeArgs()],
      { roBinds: [FIXTURES] },
    );
    expect(stderr).toBe("");
    expect(code).toBe(0);
    const EPERM = 1;
    const ENOSYS = 38;
    const expected: Record<string, number> = {
      ptrace: EPERM,
      process_vm_readv: EPERM,
      keyctl: EPERM,
      bpf: EPERM,
      io_uring_setup: EPERM,
      mount: EPERM,
      setns: EPERM,
      unshare: EPERM,
      clone3: ENOSYS,
      clone: 0,
      clone_newuser: EPERM,
      tiocsti: EPERM,
    };
    if (ARCH === "x86_64") expected.x32_getpid = EPERM;
    expect(parseProbes(stdout)).toEqual(expected);
  });

  it("has no user namespaces to make: unshare -U and unshare -n fail", async () => {
    const { code, stdout } = await runInSandbox([
      "sh",
      "-c",
      "unshare -U true 2>/dev/null; echo $?; unshare -n true 2>/dev/null; echo $?",
    ]);
    expect(code).toBe(0);
    expect(stdout).toBe("1\n1\n");
  });

  it("runs node, git, bash and npm", async () => {
    const script = [
      'node -e \'require("node:child_process").execFileSync("true"); new (require("node:worker_threads").Worker)("1", { eval: true }).on("exit", (c) => console.log("node", c))\'',
      "git init -q -b main repo && cd repo && echo hi > f && git add f",
      "git -c user.name=a -c user.email=a@b.invalid commit -qm one && git log --format=%s",
      "bash -c 'echo bash $BASH_VERSINFO'",
      "npm --version >/dev/null && echo npm ok",
    ].join(" && ");
    const { code, stdout, stderr } = await runInSandbox(["sh", "-c", script]);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    expect(stdout).toMatch(/^node 0\none\nbash \d+\nnpm ok\n$/);
  });

  it("has an /etc of its own: only the files written for it and the bound certificates", async () => {
    const { code, stdout } = await runInSandbox([
      "sh",
      "-c",
      "ls -A /etc; echo --; ls -A /etc/ssl; echo --; cat /etc/passwd; echo --; cat /etc/resolv.conf; echo --; test -s /etc/ssl/certs/ca-certificates.crt && echo certs",
    ]);
    expect(code).toBe(0);
    const [etc, ssl, passwd, resolv, certs] = stdout.split("--\n");
    expect(etc?.trim().split("\n")).toEqual([
      "alternatives",
      "group",
      "hosts",
      "ld.so.cache",
      "nsswitch.conf",
      "passwd",
      "resolv.conf",
      "ssl",
    ]);
    expect(ssl?.trim().split("\n")).toEqual(["certs", "openssl.cnf"]);
    expect(passwd).toContain("agent:x:1000:1000:bottle agent:/home/agent:/bin/bash\n");
    expect(resolv).not.toMatch(/nameserver/);
    expect(certs).toBe("certs\n");
  });

  it("shows git no configuration but the home files' .gitconfig", async () => {
    // The host's /etc/gitconfig, if any, must not count: git would read it by default.
    const { code, stdout, spec } = await runInSandbox(
      ["git", "config", "--list", "--show-origin"],
      {
        homeFiles: { ".gitconfig": "[user]\n\tname = Agent\n" },
      },
    );
    expect(code).toBe(0);
    expect(stdout).toBe("file:/home/agent/.gitconfig\tuser.name=Agent\n");
    // The file that carried the home files is gone once the sandbox has them.
    await expect(stat(join(spec.dir, "init.mjs"))).rejects.toThrow();
  });

  it("gives the agent exactly its environment plus HOME, USER, LOGNAME and a PATH", async () => {
    const canary = makeCanary("sandbox-env");
    const spawnerOnly = makeCanary("spawner-env");
    const spec = await sandboxSpec({
      command: ["env", "-0"],
      env: { SIDECAR_TOKEN: canary, LANG: "C.UTF-8" },
    });
    // A spawner that passes more than the launch's env still gives the agent none of it.
    const started = await startSandbox(spec, { SPAWNER_SECRET: spawnerOnly });
    expect(await started.exited).toEqual({ code: 0, signal: null });
    const env = Object.fromEntries(
      started
        .stdout()
        .split("\0")
        .filter(Boolean)
        .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]),
    );
    expect(env).toEqual({
      SIDECAR_TOKEN: canary,
      LANG: "C.UTF-8",
      HOME: "/home/agent",
      USER: "agent",
      LOGNAME: "agent",
      PATH: expect.stringMatching(/:\/usr\/bin:\/bin$/),
      PWD: "/workspace",
    });
    // The file that carried the environment is gone once the sandbox has it.
    await expect(stat(join(spec.dir, "sandbox.env"))).rejects.toThrow();
  });

  it("has a tmpfs home with the home files, and a writable /tmp, and nothing else writable", async () => {
    const { code, stdout } = await runInSandbox(
      [
        "sh",
        "-c",
        [
          'stat -f -c %T "$HOME" /tmp',
          'stat -c "%a %U" "$HOME" "$HOME/.config" "$HOME/.config/tool/settings.json"',
          'cat "$HOME/.config/tool/settings.json"; echo',
          "touch /tmp/t $HOME/t && echo writable",
          "for p in /x /usr/x /etc/x /run/bottle/x /opt/bottle/x /home/x; do touch $p 2>/dev/null && echo wrote $p; done; true",
        ].join("; "),
      ],
      { homeFiles: { ".config/tool/settings.json": '{"a":1}' } },
    );
    expect(code).toBe(0);
    expect(stdout).toBe("tmpfs\ntmpfs\n700 agent\n700 agent\n600 agent\n" + '{"a":1}\nwritable\n');
  });

  it("binds the workspace read-write at workdir, owned by the agent", async () => {
    const { dir, workspace, sockets } = await sandboxDirs();
    await writeFile(join(workspace, "seeded"), "from-host\n");
    const { code, stdout } = await runInSandbox(
      ["sh", "-c", "pwd; stat -c %U .; cat seeded; echo from-agent > made-inside"],
      { dir, workspace, socketsDir: sockets },
    );
    expect(code).toBe(0);
    expect(stdout).toBe("/workspace\nagent\nfrom-host\n");
    expect(await readFile(join(workspace, "made-inside"), "utf8")).toBe("from-agent\n");
    expect((await stat(join(workspace, "made-inside"))).uid).toBe(process.getuid?.());
  });

  it("binds roBinds read-only at the same path", async () => {
    const extra = await testdir({
      "tool.sh": { content: "#!/bin/sh\necho tool ran\n", mode: 0o755 },
    });
    const { code, stdout } = await runInSandbox(
      ["sh", "-c", `${extra}/tool.sh; touch ${extra}/x 2>/dev/null || echo read-only`],
      { roBinds: [extra] },
    );
    expect(code).toBe(0);
    expect(stdout).toBe("tool ran\nread-only\n");
  });

  it("starts with roBinds under /usr, which it shows read-only already", async () => {
    const { code, stdout, stderr } = await runInSandbox(
      [
        "sh",
        "-c",
        "test -x /usr/bin/env && echo found; touch /usr/bin/x 2>/dev/null || echo read-only",
      ],
      { roBinds: ["/usr/bin"] },
    );
    expect(code, stderr).toBe(0);
    expect(stdout).toBe("found\nread-only\n");
  });

  it("shows of the caller's state only the sockets directory, at /run/bottle", async () => {
    const { code, stdout, spec } = await runInSandbox(
      ["sh", "-c", "ls -A /run/bottle; echo --; ls -A /run; echo --; cat /proc/self/mountinfo"],
      {
        homeFiles: { ".npmrc": "registry=http://127.0.0.1:9420/\n" },
        forwards: [{ port: 9420, socket: "proxy.sock" }],
      },
    );
    expect(code).toBe(0);
    const [sockets, run, mountinfo = ""] = stdout.split("--\n");
    expect(sockets).toBe("");
    expect(run).toBe("bottle\n");
    // Every mount's source root (mountinfo's 4th field): from spec.dir only its etc directory.
    const roots = mountinfo
      .trim()
      .split("\n")
      .map((line) => line.split(" ")[3] ?? "");
    const fromDir = roots.filter((root) => root.startsWith(spec.dir));
    expect(fromDir).toEqual([join(spec.dir, "etc")]);
    expect(roots.some((root) => root.startsWith(spec.socketsDir))).toBe(true);
  });

  it("lists the sockets directory's entries as they are, read-only", async () => {
    const { dir, workspace, sockets } = await sandboxDirs();
    await writeFile(join(sockets, "gate.sock.placeholder"), "");
    const { code, stdout } = await runInSandbox(
      ["sh", "-c", "ls -A /run/bottle; touch /run/bottle/new 2>/dev/null || echo read-only"],
      { dir, workspace, socketsDir: sockets },
    );
    expect(code).toBe(0);
    expect(stdout).toBe("gate.sock.placeholder\nread-only\n");
  });

  it("has only its own loopback: no other interface, no host service, no DNS", async () => {
    const host = createServer((socket) => socket.end("host service\n"));
    let connections = 0;
    host.on("connection", () => {
      connections += 1;
    });
    await new Promise<void>((resolve) => host.listen(0, "127.0.0.1", resolve));
    onTestFinished(() => new Promise<void>((resolve) => host.close(() => resolve())));
    const address = host.address();
    if (address === null || typeof address === "string") throw new Error("no port");
    const { code, stdout } = await runInSandbox([
      "sh",
      "-c",
      [
        "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '",
        `curl -sS --max-time 5 http://127.0.0.1:${address.port}/ 2>/dev/null; echo "curl $?"`,
        'getent hosts example.com; echo "getent $?"',
      ].join("; "),
    ]);
    expect(code).toBe(0);
    // curl 7: could not connect; getent 2: not found
    expect(stdout).toBe("lo\ncurl 7\ngetent 2\n");
    expect(connections).toBe(0);
  });

  it("exits with the agent's exit code", async () => {
    expect((await runInSandbox(["sh", "-c", "exit 7"])).code).toBe(7);
    const forwards = [{ port: 9420, socket: "gate.sock" }];
    expect((await runInSandbox(["sh", "-c", "exit 7"], { forwards })).code).toBe(7);
    expect((await runInSandbox(["sh", "-c", "kill -TERM $$"], { forwards })).code).toBe(128 + 15);
  });

  it("exits 125 with BTL_CLI_SANDBOX_FORWARDER when a forward cannot listen", async () => {
    // Port 1 is privileged: a new network namespace starts with ip_unprivileged_port_start
    // 1024, and the agent has no CAP_NET_BIND_SERVICE.
    const { code, stdout, stderr } = await runInSandbox(["echo", "agent ran"], {
      forwards: [{ port: 1, socket: "s" }],
    });
    expect(code).toBe(SANDBOX_START_FAILED);
    expect(stdout).toBe("");
    expect(stderr).toMatch(/^BTL_CLI_SANDBOX_FORWARDER: /m);
  });
});
