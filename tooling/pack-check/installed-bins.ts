/**
 * Running what a project installed from the tarballs holds: its bins in an environment of
 * their own, and its sidecars until they listen.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { Installed } from "./install-check.ts";
import { run, runOk } from "./packs.ts";

/** The environment of the installed bins: PATH, a scratch HOME, and git isolated from the host. */
export function binEnv(project: Installed, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: project.work,
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_CONFIG_GLOBAL: join(project.work, "gitconfig"),
    ...extra,
  };
}

function binPath(project: Installed, name: string): string {
  const bin = project.bins.get(name);
  if (bin === undefined) throw new Error(`${project.installer}: no bin ${name} was installed`);
  return bin;
}

/** Runs an installed bin; throws unless it exits `expectCode` (0 by default). */
export async function runBin(
  project: Installed,
  name: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; input?: string; expectCode?: number } = {},
) {
  const result = await run(binPath(project, name), args, {
    cwd: project.work,
    env: binEnv(project, options.env),
    ...(options.input === undefined ? {} : { input: options.input }),
  });
  if (result.code !== (options.expectCode ?? 0)) {
    throw new Error(
      `${name} ${args.join(" ")} exited ${result.code ?? result.signal}\n${result.stdout}${result.stderr}`,
    );
  }
  return result;
}

/** A started sidecar: its URL (from the `listening` record) and a stop that awaits its exit. */
export interface Started {
  readonly url: string;
  readonly stderr: () => string;
  stop(): Promise<number | null>;
}

/** Starts an installed sidecar and waits (20 s at most) for its `listening` log record. */
export async function startSidecar(
  project: Installed,
  name: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv = {},
): Promise<Started> {
  const child = spawn(binPath(project, name), args, {
    cwd: project.work,
    env: binEnv(project, env),
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  const exited = once(child, "exit");
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    const [code] = (await exited) as [number | null];
    return code;
  };
  const lines = createInterface({ input: child.stderr });
  const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
  try {
    for await (const line of lines) {
      stderr += `${line}\n`;
      const record = line.startsWith("{") ? JSON.parse(line) : {};
      if (record.msg === "listening" && typeof record.url === "string") {
        lines.on("line", (more) => (stderr += `${more}\n`));
        return { url: record.url, stderr: () => stderr, stop };
      }
    }
  } finally {
    clearTimeout(timer);
  }
  await stop();
  throw new Error(`${name} stopped before it listened\n${stderr}`);
}

/** Runs `fn` while `sidecar` serves, then stops it: a SIGTERM must end it with 0. */
export async function whileRunning<T>(
  name: string,
  sidecar: Started,
  fn: () => Promise<T>,
): Promise<T> {
  let result: T;
  try {
    result = await fn();
  } catch (error) {
    await sidecar.stop();
    throw error;
  }
  const code = await sidecar.stop();
  if (code !== 0) throw new Error(`${name} exited ${code} on SIGTERM\n${sidecar.stderr()}`);
  return result;
}

export async function git(
  args: readonly string[],
  project: Installed,
  env: NodeJS.ProcessEnv = {},
) {
  return runOk("git", args, { cwd: project.work, env: binEnv(project, env) });
}
