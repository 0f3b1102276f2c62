/**
 * Starting and stopping a bottle's sidecars: each is its package's own binary on this Node,
 * in its own session (a Ctrl-C on the terminal reaches bottle, which stops them in order),
 * logging to its file, and ready once it wrote its URL to the ready descriptor
 * (`BOTTLE_READY_FD`, from the sidecar runtime).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, openSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { READY_FD_ENV, SIDECAR_NODE_OPTIONS } from "@bottle/sidecar";
import { CliError } from "../errors.ts";
import { isAlive, type ProcessRef, processRef, type SidecarRecord } from "./state.ts";

const require = createRequire(import.meta.url);

/** The JavaScript file of a package's binary: `bin` of its package.json. */
export function binOf(pkg: string, bin: string): string {
  const manifest = require.resolve(`${pkg}/package.json`);
  const bins = (JSON.parse(readFileSync(manifest, "utf8")) as { bin: Record<string, string> }).bin;
  const file = bins[bin];
  if (file === undefined) throw new Error(`${pkg} has no bin ${bin}`);
  return join(dirname(manifest), file);
}

/** What to start. */
export interface SidecarLaunch {
  readonly name: string;
  readonly pkg: string;
  readonly bin: string;
  readonly args: readonly string[];
  /** The sidecar's whole environment (secrets only where the sidecar needs them). */
  readonly env: Readonly<Record<string, string>>;
  /** Its unix socket, for a sidecar the agent reaches. */
  readonly socket?: string;
  readonly log: string;
  /** How long it may take to listen (default 30 s). */
  readonly readyTimeoutMs?: number;
}

/** What a running sidecar's owner watches: its child process, or its container. */
export interface SidecarHandle {
  once(event: "exit", listener: (code: number | null, signal: string | null) => void): unknown;
  off(event: "exit", listener: (code: number | null, signal: string | null) => void): unknown;
  /** Lets this process exit while the sidecar runs on (`bottle up`). */
  unref(): void;
}

/** A sidecar that listens, with its child process (or its container). */
export interface StartedSidecar {
  readonly record: SidecarRecord;
  readonly child: SidecarHandle;
  /** Where it listens: the URL it wrote on the ready descriptor. */
  readonly url: string;
}

/**
 * Starts a sidecar and resolves once it listens. Throws CliError BTL_CLI_SIDECAR when it exits
 * first or stays silent too long, with the last lines of its log (the sidecars log no secret).
 */
export async function startSidecar(launch: SidecarLaunch): Promise<StartedSidecar> {
  const log = openSync(launch.log, "a", 0o600);
  let child: ChildProcess;
  try {
    child = spawn(
      process.execPath,
      [...SIDECAR_NODE_OPTIONS, binOf(launch.pkg, launch.bin), ...launch.args],
      {
        env: { ...launch.env, [READY_FD_ENV]: "3" },
        stdio: ["ignore", log, log, "pipe"],
        detached: true,
      },
    );
  } finally {
    closeSync(log);
  }
  const ready = child.stdio[3] as NodeJS.ReadableStream;
  const timeoutMs = launch.readyTimeoutMs ?? 30_000;
  let url: string;
  try {
    url = await new Promise<string>((resolve, reject) => {
      let text = "";
      const fail = (why: string) => {
        clearTimeout(timer);
        reject(
          new CliError(
            "BTL_CLI_SIDECAR",
            `${launch.name} ${why}${tail(launch.log)}\n(its log: ${launch.log})`,
          ),
        );
      };
      const timer = setTimeout(() => fail(`did not listen within ${timeoutMs} ms`), timeoutMs);
      ready.setEncoding?.("utf8");
      ready.on("data", (chunk: string) => {
        text += chunk;
        if (text.includes("\n")) {
          clearTimeout(timer);
          resolve(text.slice(0, text.indexOf("\n")).trim());
        }
      });
      child.once("error", (error) => fail(`could not start: ${error.message}`));
      child.once("exit", (code, signal) =>
        fail(`exited before it listened (${signal ?? `exit code ${code}`})`),
      );
    });
  } catch (error) {
    child.kill("SIGKILL");
    throw error;
  }
  child.removeAllListeners("exit");
  child.removeAllListeners("error");
  (ready as NodeJS.ReadableStream & { destroy(): void }).destroy();
  if (child.pid === undefined) throw new CliError("BTL_CLI_SIDECAR", `${launch.name}: no pid`);
  return {
    child,
    record: {
      name: launch.name,
      ...(launch.socket === undefined ? {} : { socket: launch.socket }),
      log: launch.log,
      ...processRef(child.pid),
    },
    url,
  };
}

/** The last lines of a log, indented, for an error message. */
export function tail(file: string, lines = 8): string {
  try {
    const text = readFileSync(file, "utf8").trimEnd();
    if (text === "") return "";
    const last = text.split("\n").slice(-lines);
    return `:\n${last.map((line) => `  ${line}`).join("\n")}`;
  } catch {
    return "";
  }
}

/**
 * Stops a process the record names: SIGTERM, then SIGKILL after `graceMs`. Resolves once it is
 * gone. A process that is already gone, or whose pid now names another process, is left alone.
 */
export async function stopProcess(ref: ProcessRef, graceMs: number): Promise<void> {
  if (!isAlive(ref)) return;
  signal(ref, "SIGTERM");
  const deadline = Date.now() + graceMs;
  while (isAlive(ref) && Date.now() < deadline) await sleep(20);
  if (isAlive(ref)) signal(ref, "SIGKILL");
  const killDeadline = Date.now() + 5_000;
  while (isAlive(ref) && Date.now() < killDeadline) await sleep(20);
}

function signal(ref: ProcessRef, name: NodeJS.Signals): void {
  try {
    process.kill(ref.pid, name);
  } catch {
    // Gone between the check and the signal.
  }
}

export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));
