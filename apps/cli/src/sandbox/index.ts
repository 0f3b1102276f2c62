/**
 * The sandbox backend's core: prepareSandbox() turns a SandboxSpec into a launch (a file, its
 * arguments and its environment) that a caller spawns with child_process.spawn or node-pty, and
 * sandboxProcess() watches and stops what it started.
 */
import { constants } from "node:fs";
import { access, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { CliError } from "../errors.ts";
import { buildBwrapArgs, findBwrap, LAUNCH_SCRIPT, locateNode, sandboxCommand } from "./bwrap.ts";
import { SANDBOX_USER, writeSandboxEtc } from "./etc.ts";
import { renderForwarder } from "./forwarder.ts";
import { buildSeccompProgram, seccompArch } from "./seccomp.ts";
import { checkSandboxSpec, SANDBOX_PATHS, type SandboxSpec } from "./spec.ts";

export { SANDBOX_START_FAILED } from "./bwrap.ts";
export { SANDBOX_USER } from "./etc.ts";
export type { SandboxForward } from "./forwarder.ts";
export type { SandboxProcess } from "./process.ts";
export { sandboxProcess } from "./process.ts";
export type { SandboxSpec, SandboxTerminal } from "./spec.ts";
export { SANDBOX_PATHS } from "./spec.ts";

/**
 * What to spawn. `file` and `args` hold no secret (the agent's environment and home files are
 * in files under the spec's `dir`, which the launch removes once it has opened them): spawn it
 * once, with exactly `env`, by child_process.spawn or node-pty.
 */
export interface SandboxLaunch {
  readonly file: string;
  readonly args: string[];
  readonly env: Record<string, string>;
  /** bwrap's --json-status-fd output, which sandboxProcess() reads. */
  readonly statusFile: string;
}

/** The sandbox's PATH when the spec's env has none. */
function defaultPath(nodeBin: string): string {
  return [nodeBin, "/usr/local/bin", "/usr/bin", "/bin"].join(":");
}

/** Throws BTL_CLI_SANDBOX_PATH unless `path` is a directory (the caller's, and 0700, if asked). */
async function checkDir(
  what: string,
  path: string,
  { owned = false, private: only = false } = {},
): Promise<void> {
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(path);
  } catch (error) {
    throw new CliError("BTL_CLI_SANDBOX_PATH", `${what} ${path} cannot be used`, { cause: error });
  }
  const fail = (why: string): never => {
    throw new CliError("BTL_CLI_SANDBOX_PATH", `${what} ${path} ${why}`);
  };
  if (!info.isDirectory()) fail("is not a directory");
  const uid = process.getuid?.();
  if (owned && uid !== undefined && info.uid !== uid) {
    fail(`belongs to uid ${info.uid}; the sandbox maps only uid ${uid} (the caller)`);
  }
  if (only && (info.mode & 0o077) !== 0) fail("must be mode 0700");
}

/** The host paths of `spec` exist and can be used. */
async function checkHostPaths(spec: SandboxSpec): Promise<void> {
  await checkDir("dir", spec.dir, { owned: true, private: true });
  await checkDir("workspace", spec.workspace, { owned: true });
  await checkDir("socketsDir", spec.socketsDir);
  for (const path of spec.roBinds) {
    await stat(path).catch((error: unknown) => {
      throw new CliError("BTL_CLI_SANDBOX_PATH", `roBinds ${path} cannot be used`, {
        cause: error,
      });
    });
  }
}

/** Perl, for handing a pty's foreground to the agent (part of Debian's essential set). */
const PERL = "/usr/bin/perl";

async function executable(path: string): Promise<string | null> {
  try {
    await access(path, constants.X_OK);
    return path;
  } catch {
    return null;
  }
}

async function writePrivate(path: string, content: string | Buffer): Promise<void> {
  await rm(path, { force: true });
  await writeFile(path, content, { mode: 0o600, flag: "wx" });
}

/** The agent's whole environment: the spec's, plus what the sandbox sets. */
function agentEnv(spec: SandboxSpec, nodeBin: string): Record<string, string> {
  const env: Record<string, string> = Object.create(null);
  Object.assign(env, spec.env);
  env.HOME = SANDBOX_USER.home;
  env.USER = SANDBOX_USER.name;
  env.LOGNAME = SANDBOX_USER.name;
  env.PATH ??= defaultPath(nodeBin);
  const term = process.env.TERM;
  if (spec.terminal !== "none" && env.TERM === undefined && term) env.TERM = term;
  return env;
}

/**
 * Writes what the sandbox needs into `spec.dir` (its /etc, the seccomp program, the start-up
 * program, the environment file) and returns the launch. Throws BTL_CLI_SANDBOX_SPEC (a spec
 * that cannot make a sandbox), BTL_CLI_SANDBOX_PATH (a host directory missing, not a directory,
 * group- or world-accessible, or owned by someone else), BTL_CLI_SANDBOX_ARCH and
 * BTL_CLI_SANDBOX_BWRAP.
 */
export async function prepareSandbox(spec: SandboxSpec): Promise<SandboxLaunch> {
  checkSandboxSpec(spec);
  const arch = seccompArch(process.arch);
  await checkHostPaths(spec);
  const bwrap = await findBwrap(process.env.PATH ?? "/usr/bin:/bin");

  const node = locateNode(process.execPath, [spec.dir, spec.socketsDir]);
  const files = {
    env: join(spec.dir, "sandbox.env"),
    seccomp: join(spec.dir, "seccomp.bpf"),
    init: join(spec.dir, "init.mjs"),
    status: join(spec.dir, "status.json"),
  };
  const etc = await writeSandboxEtc(spec.dir);
  await writePrivate(files.seccomp, buildSeccompProgram(arch));
  // SECURITY: the environment goes to bwrap through a file (`--args`), never its argv.
  const env = agentEnv(spec, dirname(node.inside));
  const envArgs = Object.entries(env).flatMap(([name, value]) => ["--setenv", name, value]);
  await writePrivate(files.env, envArgs.map((arg) => `${arg}\0`).join(""));
  const homeFiles = Object.entries(spec.homeFiles);
  const init = spec.forwards.length > 0 || homeFiles.length > 0;
  if (init) {
    const source = renderForwarder({
      files: homeFiles.map(([path, content]) => [join(SANDBOX_PATHS.home, path), content] as const),
      forwards: spec.forwards.map(
        ({ port, socket }) => [port, join(SANDBOX_PATHS.sockets, socket)] as const,
      ),
    });
    await writePrivate(files.init, source);
  } else {
    await rm(files.init, { force: true });
  }
  // A stale status file would name an earlier sandbox's processes.
  await rm(files.status, { force: true });

  const bwrapArgs = await buildBwrapArgs({
    etcDir: etc.dir,
    etcHostBinds: etc.hostBinds,
    node: node.bind,
    init,
    socketsDir: spec.socketsDir,
    roBinds: spec.roBinds,
    workspace: spec.workspace,
    workdir: spec.workdir,
    terminal: spec.terminal,
  });
  const command = sandboxCommand(spec.command, {
    node: init ? node.inside : null,
    perl: spec.terminal === "pty" ? await executable(PERL) : null,
  });
  return {
    file: "/bin/sh",
    args: [
      "-c",
      LAUNCH_SCRIPT,
      "bottle-sandbox",
      files.env,
      files.seccomp,
      files.status,
      init ? files.init : "",
      bwrap,
      ...bwrapArgs,
      "--",
      ...command,
    ],
    env: { PATH: "/usr/bin:/bin" },
    statusFile: files.status,
  };
}
