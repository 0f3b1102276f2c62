// Shared set-up of the sandbox tests: real directories, real bwrap, real processes.
import { type ChildProcess, spawn } from "node:child_process";
import { chmod, mkdir, readdir, readFile, readlink } from "node:fs/promises";
import { join } from "node:path";
import { testdir } from "@bottle/test-utils";
import { onTestFinished } from "vitest";
import {
  prepareSandbox,
  type SandboxLaunch,
  type SandboxProcess,
  type SandboxSpec,
  sandboxProcess,
} from "../src/sandbox/index.ts";

const RUN_TIMEOUT_MS = 30_000;

/** A fresh state directory (0700), workspace and sockets directory. */
export async function sandboxDirs(): Promise<{
  root: string;
  dir: string;
  workspace: string;
  sockets: string;
}> {
  const root = await testdir();
  const dir = join(root, "sandbox");
  const workspace = join(root, "workspace");
  const sockets = join(root, "sockets");
  for (const path of [dir, workspace, sockets]) await mkdir(path);
  await chmod(dir, 0o700);
  return { root, dir, workspace, sockets };
}

/** A spec in fresh directories, with `overrides`. */
export async function sandboxSpec(overrides: Partial<SandboxSpec> = {}): Promise<SandboxSpec> {
  const { dir, workspace, sockets } = await sandboxDirs();
  return {
    dir,
    workspace,
    workdir: "/workspace",
    socketsDir: sockets,
    forwards: [],
    env: {},
    homeFiles: {},
    roBinds: [],
    command: ["true"],
    terminal: "none",
    ...overrides,
  };
}

/** A started sandbox on pipes. */
export interface StartedSandbox {
  launch: SandboxLaunch;
  child: ChildProcess;
  sandbox: SandboxProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Prepares and spawns a sandbox on pipes, with `extraEnv` added to the launch's environment;
 * it is stopped when the test finishes.
 */
export async function startSandbox(
  spec: SandboxSpec,
  extraEnv: Record<string, string> = {},
): Promise<StartedSandbox> {
  const launch = await prepareSandbox(spec);
  const env = { ...launch.env, ...extraEnv };
  const child = spawn(launch.file, launch.args, { env, stdio: "pipe" });
  child.stdin.end();
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk;
  });
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  if (child.pid === undefined) throw new Error("the launch did not spawn");
  const sandbox = sandboxProcess({ pid: child.pid }, launch);
  onTestFinished(() => sandbox.stop(0));
  return { launch, child, sandbox, stdout: () => stdout, stderr: () => stderr, exited };
}

/** Runs `command` in a sandbox made from `overrides` and returns its exit and output. */
export async function runInSandbox(
  command: readonly string[],
  overrides: Partial<SandboxSpec> = {},
): Promise<{ code: number | null; stdout: string; stderr: string; spec: SandboxSpec }> {
  const spec = await sandboxSpec({ ...overrides, command });
  const started = await startSandbox(spec);
  const timer = setTimeout(() => void started.sandbox.stop(0), RUN_TIMEOUT_MS);
  const { code } = await started.exited.finally(() => clearTimeout(timer));
  return { code, stdout: started.stdout(), stderr: started.stderr(), spec };
}

/** A process, identified across pid reuse by its start time. */
export interface ProcessRef {
  pid: number;
  start: string;
}

async function startTime(pid: number): Promise<string | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return fields[0] === "Z" ? undefined : fields[19];
  } catch {
    return undefined;
  }
}

/** Every live host process whose pid namespace is the one `pid` is in. */
export async function pidnsMembers(pid: number): Promise<ProcessRef[]> {
  const ns = await readlink(`/proc/${pid}/ns/pid`);
  const members: ProcessRef[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if ((await readlink(`/proc/${entry}/ns/pid`)) !== ns) continue;
    } catch {
      continue;
    }
    const start = await startTime(Number(entry));
    if (start !== undefined) members.push({ pid: Number(entry), start });
  }
  return members;
}

/** Those of `processes` still running (not exited, not zombies). */
export async function stillRunning(processes: readonly ProcessRef[]): Promise<ProcessRef[]> {
  const alive: ProcessRef[] = [];
  for (const ref of processes) {
    if ((await startTime(ref.pid)) === ref.start) alive.push(ref);
  }
  return alive;
}

/** Polls `check` until it is true or `ms` pass; returns its last answer. */
export async function eventually(check: () => Promise<boolean>, ms = 5_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
