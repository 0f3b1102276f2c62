// prepareSandbox's checks and the launch it returns (no sandbox is started here).
import { chmod, chown, readdir, readFile, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { isBottleError } from "@bottle/errors";
import { makeCanary, testdir } from "@bottle/test-utils";
import { describe, expect, it } from "vitest";
import { findBwrap, locateNode } from "../src/sandbox/bwrap.ts";
import { prepareSandbox, type SandboxSpec } from "../src/sandbox/index.ts";
import { buildSeccompProgram, seccompArch } from "../src/sandbox/seccomp.ts";
import { sandboxSpec } from "./sandbox-helpers.ts";

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
  } catch (error) {
    if (isBottleError(error)) return error.code;
    throw error;
  }
  return undefined;
}

describe("prepareSandbox", () => {
  const refused: Array<[string, Partial<SandboxSpec>]> = [
    ["a relative workdir", { workdir: "workspace" }],
    ["a workdir that is not normalized", { workdir: "/workspace/../x" }],
    ["the root as workdir", { workdir: "/" }],
    ["a workdir under /etc", { workdir: "/etc/project" }],
    ["a workdir under /usr", { workdir: "/usr/src" }],
    ["the sockets' place as workdir", { workdir: "/run/bottle" }],
    ["$HOME as workdir", { workdir: "/home/agent" }],
    ["an empty command", { command: [] }],
    ["port 0", { forwards: [{ port: 0, socket: "s" }] }],
    ["port 65536", { forwards: [{ port: 65536, socket: "s" }] }],
    ["a fractional port", { forwards: [{ port: 80.5, socket: "s" }] }],
    [
      "one port twice",
      {
        forwards: [
          { port: 9420, socket: "a" },
          { port: 9420, socket: "b" },
        ],
      },
    ],
    ["a socket path with a slash", { forwards: [{ port: 9420, socket: "../state/x.sock" }] }],
    ["a socket named ..", { forwards: [{ port: 9420, socket: ".." }] }],
    ["HOME in env", { env: { HOME: "/root" } }],
    ["USER in env", { env: { USER: "root" } }],
    ["an env name with =", { env: { "A=B": "x" } }],
    ["an env value with NUL", { env: { A: "x\0y" } }],
    ["a home file outside $HOME", { homeFiles: { "../etc/passwd": "x" } }],
    ["an absolute home file", { homeFiles: { "/etc/passwd": "x" } }],
    ["a home file path that is not normalized", { homeFiles: { "a/../b": "x" } }],
    ["$HOME itself as a home file", { homeFiles: { ".": "x" } }],
    ["the root as an extra bind", { roBinds: ["/"] }],
    ["/etc as an extra bind", { roBinds: ["/etc"] }],
    ["an extra bind under /proc", { roBinds: ["/proc/1"] }],
    ["a relative extra bind", { roBinds: ["usr/lib"] }],
  ];

  it.each(refused)(
    "refuses %s with BTL_CLI_SANDBOX_SPEC, writing nothing",
    async (_, overrides) => {
      const spec = await sandboxSpec(overrides);
      expect(await codeOf(prepareSandbox(spec))).toBe("BTL_CLI_SANDBOX_SPEC");
      expect(await readdir(spec.dir)).toEqual([]);
    },
  );

  it("refuses an extra bind or a workspace that would show the state or sockets directory", async () => {
    const spec = await sandboxSpec();
    for (const path of [dirname(spec.dir), spec.dir, spec.socketsDir]) {
      expect(await codeOf(prepareSandbox({ ...spec, roBinds: [path] }))).toBe(
        "BTL_CLI_SANDBOX_SPEC",
      );
      expect(await codeOf(prepareSandbox({ ...spec, workspace: path }))).toBe(
        "BTL_CLI_SANDBOX_SPEC",
      );
    }
  });

  it("accepts an extra bind under /usr, which the sandbox shows whole already, and binds it no second time", async () => {
    // Where `npm install --global` puts Claude Code with a Node under /usr/local.
    const spec = await sandboxSpec({ roBinds: ["/usr/bin", "/usr"] });
    const { args } = await prepareSandbox(spec);
    const binds = args.flatMap((arg, i) => (arg === "--ro-bind" ? [args[i + 1]] : []));
    expect(binds.filter((path) => path === "/usr")).toHaveLength(1);
    expect(binds).not.toContain("/usr/bin");
    for (const path of ["/etc/ssl", "/run/bottle/x", "/opt/bottle"]) {
      expect(await codeOf(prepareSandbox({ ...spec, roBinds: [path] }))).toBe(
        "BTL_CLI_SANDBOX_SPEC",
      );
    }
  });

  it("refuses host directories it cannot use with BTL_CLI_SANDBOX_PATH", async () => {
    const spec = await sandboxSpec();
    const file = join(await testdir({ f: "" }), "f");
    await chmod(spec.dir, 0o750);
    expect(await codeOf(prepareSandbox(spec))).toBe("BTL_CLI_SANDBOX_PATH");
    await chmod(spec.dir, 0o700);
    const missing = join(spec.workspace, "missing");
    expect(await codeOf(prepareSandbox({ ...spec, workspace: missing }))).toBe(
      "BTL_CLI_SANDBOX_PATH",
    );
    expect(await codeOf(prepareSandbox({ ...spec, socketsDir: file }))).toBe(
      "BTL_CLI_SANDBOX_PATH",
    );
    expect(await codeOf(prepareSandbox({ ...spec, roBinds: [missing] }))).toBe(
      "BTL_CLI_SANDBOX_PATH",
    );
    expect(await readdir(spec.dir)).toEqual([]);
  });

  it("refuses a workspace the caller does not own (it would not be uid 1000 inside)", async () => {
    const spec = await sandboxSpec();
    let workspace = "/usr";
    if (process.getuid?.() === 0) {
      workspace = await testdir();
      await chown(workspace, 4321, 4321);
    }
    expect(await codeOf(prepareSandbox({ ...spec, workspace }))).toBe("BTL_CLI_SANDBOX_PATH");
  });

  it("returns a launch whose argv holds neither the environment nor the home files", async () => {
    const canary = makeCanary("launch");
    const spec = await sandboxSpec({
      env: { API_KEY: canary },
      homeFiles: { ".npmrc": `//127.0.0.1:9420/:_authToken=${canary}\n` },
      forwards: [{ port: 9420, socket: "proxy.sock" }],
      command: ["claude", "--print", "hello"],
    });
    const launch = await prepareSandbox(spec);
    expect(launch.file).toBe("/bin/sh");
    expect(launch.env).toEqual({ PATH: "/usr/bin:/bin" });
    expect(JSON.stringify(launch)).not.toContain(canary);
    expect(launch.args.slice(-3)).toEqual(["claude", "--print", "hello"]);
    expect(launch.statusFile).toBe(join(spec.dir, "status.json"));
    // Both files that carry them are the caller's alone.
    for (const name of ["sandbox.env", "init.mjs", "seccomp.bpf"]) {
      expect((await stat(join(spec.dir, name))).mode & 0o777).toBe(0o600);
    }
    const envFile = await readFile(join(spec.dir, "sandbox.env"), "utf8");
    expect(envFile.split("\0")).toContain(canary);
    expect(await readFile(join(spec.dir, "seccomp.bpf"))).toEqual(
      buildSeccompProgram(seccompArch(process.arch)),
    );
  });

  it("asks bwrap for every namespace, no nested user namespace, no capability, no inherited environment", async () => {
    const { args } = await prepareSandbox(await sandboxSpec());
    const options = args.slice(args.indexOf("--unshare-all"), args.indexOf("--"));
    for (const flag of [
      "--unshare-all",
      "--unshare-user",
      "--unshare-pid",
      "--disable-userns",
      "--die-with-parent",
      "--clearenv",
    ]) {
      expect(options).toContain(flag);
    }
    const pairs = options.slice(0, -1).map((option, index) => `${option} ${options[index + 1]}`);
    for (const pair of ["--cap-drop ALL", "--uid 1000", "--gid 1000", "--seccomp 4", "--args 3"]) {
      expect(pairs).toContain(pair);
    }
    expect(options).not.toContain("--share-net");
  });

  it("runs the agent as bwrap's command directly when there is nothing to start first", async () => {
    const launch = await prepareSandbox(await sandboxSpec({ command: ["true"] }));
    expect(launch.args.slice(-2)).toEqual(["--", "true"]);
    expect(launch.args).not.toContain("--ro-bind-data");
  });
});

describe("findBwrap", () => {
  it("finds bwrap on the PATH given", async () => {
    expect(await findBwrap("/nonexistent:/usr/bin")).toBe("/usr/bin/bwrap");
  });

  it("refuses a PATH without bwrap, and a bubblewrap older than 0.8.0", async () => {
    const empty = await testdir();
    expect(await codeOf(findBwrap(empty))).toBe("BTL_CLI_SANDBOX_BWRAP");
    const old = await testdir({
      bwrap: { content: "#!/bin/sh\necho bubblewrap 0.7.0\n", mode: 0o755 },
    });
    expect(await codeOf(findBwrap(old))).toBe("BTL_CLI_SANDBOX_BWRAP");
    const current = await testdir({
      bwrap: { content: "#!/bin/sh\necho bubblewrap 0.11.0\n", mode: 0o755 },
    });
    expect(await findBwrap(current)).toBe(join(current, "bwrap"));
  });
});

describe("locateNode", () => {
  it("binds a Node install prefix, or only the binary when the prefix would show more", () => {
    expect(locateNode("/usr/bin/node", [])).toEqual({ bind: null, inside: "/usr/bin/node" });
    expect(locateNode("/home/u/.cache/node-24/bin/node", ["/home/u/.local/state/b"])).toEqual({
      bind: { source: "/home/u/.cache/node-24", target: "/opt/bottle/node" },
      inside: "/opt/bottle/node/bin/node",
    });
    const binaryOnly = {
      bind: { source: "", target: "/opt/bottle/node/bin/node" },
      inside: "/opt/bottle/node/bin/node",
    };
    for (const [execPath, hidden] of [
      ["/bin/node", []], // the prefix would be the root
      ["/opt/node/node", []], // not <prefix>/bin/node
      ["/home/u/bin/node", ["/home/u/.local/state/b"]], // the prefix holds the state directory
    ] as const) {
      expect(locateNode(execPath, hidden)).toEqual({
        ...binaryOnly,
        bind: { ...binaryOnly.bind, source: execPath },
      });
    }
  });
});
