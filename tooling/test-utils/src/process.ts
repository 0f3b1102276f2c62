import { type ChildProcess, spawn } from "node:child_process";
import { onTestFinished } from "vitest";
import { type ProcessExit, superviseChild } from "./child-supervisor.ts";
import { createDeferred } from "./deferred.ts";
import { createBaseEnv } from "./env.ts";
import { captureStream, MAX_OUTPUT_BYTES } from "./output-capture.ts";

const DEFAULT_READY_TIMEOUT_MS = 10_000;
const DEFAULT_RUN_TIMEOUT_MS = 30_000;
/** How much of a child's stderr an error message quotes (its tail). */
const STDERR_QUOTE_CHARS = 8_192;

/** One parsed JSON log line of a child (pino writes one object per line). */
export type LogRecord = Record<string, unknown>;

/** Options of {@link startProcess}. Without `env` the child gets {@link createBaseEnv}. */
export interface StartProcessOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** How long to wait for the ready record (default 10 000 ms). */
  readyTimeoutMs?: number;
  /** The `msg` of the record that means "ready" (default `"listening"`). */
  readyMessage?: string;
}

/** A long-running child that logged its ready record. */
export interface StartedProcess {
  child: ChildProcess;
  pid: number;
  /** The ready record's `url`, when it is a string. */
  url: string | undefined;
  record: LogRecord;
  stdout(): string;
  stderr(): string;
  /** Every JSON record parsed from stderr and stdout so far. */
  logs(): LogRecord[];
  wait(): Promise<ProcessExit>;
  /** Signals the process group (default SIGTERM), SIGKILL after 2 s, and awaits the exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Options of {@link runProcess}. Without `env` the child gets {@link createBaseEnv}. */
export interface RunProcessOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  input?: string | Buffer;
  /** Default 30 000 ms. */
  timeoutMs?: number;
  /** Per-stream cap, default 64 MiB. */
  maxOutputBytes?: number;
}

/** The outcome of {@link runProcess}. */
export interface RunProcessResult extends ProcessExit {
  stdout: string;
  stderr: string;
}

function parseRecord(line: string): LogRecord | undefined {
  const text = line.trim();
  if (!text.startsWith("{")) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === "object" && value !== null ? (value as LogRecord) : undefined;
  } catch {
    return undefined;
  }
}

function quote(stderr: string): string {
  const tail =
    stderr.length > STDERR_QUOTE_CHARS ? `…${stderr.slice(-STDERR_QUOTE_CHARS)}` : stderr;
  return tail.trim() === "" ? "(no stderr)" : tail;
}

function spawnGroup(
  command: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string },
) {
  // SECURITY: no shell, argument array, allowlisted env. detached makes the child a process
  // group leader, so cleanup reaches grandchildren too.
  return spawn(command, [...args], {
    cwd: options.cwd,
    env: options.env ?? createBaseEnv(),
    detached: true,
    stdio: ["pipe", "pipe", "pipe"],
  });
}

/**
 * Spawns a long-running `command` and resolves once it logs a JSON record whose `msg` is the
 * ready message. Rejects, quoting stderr, if it exits first or the timeout passes.
 * The process group is stopped (SIGTERM, SIGKILL after 2 s) when the current test finishes.
 */
export async function startProcess(
  command: string,
  args: readonly string[],
  options: StartProcessOptions = {},
): Promise<StartedProcess> {
  const readyMessage = options.readyMessage ?? "listening";
  const timeoutMs = options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS;
  const child = spawnGroup(command, args, options);
  child.stdin.end();
  const supervisor = superviseChild(child);
  onTestFinished(() => supervisor.stop());

  const logs: LogRecord[] = [];
  const ready = createDeferred<LogRecord>();
  const onLine = (line: string): void => {
    const record = parseRecord(line);
    if (record === undefined) return;
    logs.push(record);
    if (record.msg === readyMessage) ready.resolve(record);
  };
  const onOverflow = (): void => void supervisor.stop("SIGKILL");
  const stdout = captureStream(child.stdout, { maxBytes: MAX_OUTPUT_BYTES, onOverflow, onLine });
  const stderr = captureStream(child.stderr, { maxBytes: MAX_OUTPUT_BYTES, onOverflow, onLine });
  const fail = (why: string): Error =>
    new Error(`\`${command}\` ${why}; stderr:\n${quote(stderr())}`, {
      cause: supervisor.spawnError(),
    });

  void supervisor.closed.then(({ code, signal }) => {
    const spawnError = supervisor.spawnError();
    const why = spawnError
      ? `failed to start (${spawnError.message})`
      : `exited before logging "${readyMessage}" (code ${code}, signal ${signal})`;
    ready.reject(fail(why));
  });
  const timer = setTimeout(
    () => ready.reject(fail(`did not log "${readyMessage}" within ${timeoutMs} ms`)),
    timeoutMs,
  );
  let record: LogRecord;
  try {
    record = await ready.promise;
  } catch (error) {
    await supervisor.stop();
    throw error;
  } finally {
    clearTimeout(timer);
  }
  const pid = child.pid;
  if (pid === undefined) throw fail("has no pid");
  return {
    child,
    pid,
    url: typeof record.url === "string" ? record.url : undefined,
    record,
    stdout,
    stderr,
    logs: () => [...logs],
    wait: () => supervisor.closed,
    kill: (signal) => supervisor.stop(signal),
  };
}

/**
 * Runs a short-lived `command` to completion and returns its exit and output. Never rejects on
 * a non-zero exit; rejects (after killing the group) on timeout, output overflow or spawn error.
 */
export async function runProcess(
  command: string,
  args: readonly string[],
  options: RunProcessOptions = {},
): Promise<RunProcessResult> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_RUN_TIMEOUT_MS;
  const maxBytes = options.maxOutputBytes ?? MAX_OUTPUT_BYTES;
  const child = spawnGroup(command, args, options);
  const supervisor = superviseChild(child);
  onTestFinished(() => supervisor.stop("SIGKILL"));

  let failure: Error | undefined;
  const abort = (why: string): void => {
    failure ??= new Error(`\`${command} ${args.join(" ")}\` ${why}`);
    void supervisor.stop("SIGKILL");
  };
  const onOverflow = (): void => abort(`wrote more than ${maxBytes} bytes to one stream`);
  const stdout = captureStream(child.stdout, { maxBytes, onOverflow });
  const stderr = captureStream(child.stderr, { maxBytes, onOverflow });
  // A child that exits without reading its input makes the write fail with EPIPE; its exit
  // status is what the caller cares about.
  child.stdin.on("error", () => {});
  child.stdin.end(options.input);

  const timer = setTimeout(() => abort(`timed out after ${timeoutMs} ms`), timeoutMs);
  const exit = await supervisor.closed.finally(() => clearTimeout(timer));
  const spawnError = supervisor.spawnError();
  if (spawnError !== undefined) throw spawnError;
  if (failure !== undefined) throw failure;
  return { ...exit, stdout: stdout(), stderr: stderr() };
}
