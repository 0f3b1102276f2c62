/**
 * Subprocesses of the gate: argument arrays only (no shell), an environment built from an
 * allowlist, a timeout, an output cap, and a kill of the whole process group on timeout.
 */
import { spawn } from "node:child_process";
import { ScanError } from "./errors.ts";

/** Options of {@link run}. */
export interface RunOptions {
  readonly cwd?: string;
  /** The child's whole environment (never a copy of `process.env`). */
  readonly env: Readonly<Record<string, string>>;
  /** Written to stdin, then stdin is closed. */
  readonly input?: string | Buffer;
  /** Killed (with its process group) after this long (default 120 s). */
  readonly timeoutMs?: number;
  /** stdout beyond this is an error (default 256 MiB); stderr keeps its last 64 KiB. */
  readonly maxOutputBytes?: number;
  /** Called with each stdout chunk instead of collecting it. */
  readonly onStdout?: (chunk: Buffer) => void;
}

/** How a child ended. */
export interface RunResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: Buffer;
  readonly stderr: string;
  readonly timedOut: boolean;
}

const STDERR_KEEP = 64 * 1024;

/** Runs `command args`; resolves with how it ended (never rejects for a non-zero exit). */
export function run(
  command: string,
  args: readonly string[],
  options: RunOptions,
): Promise<RunResult> {
  const timeoutMs = options.timeoutMs ?? 120_000;
  const maxOutput = options.maxOutputBytes ?? 256 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env,
      stdio: ["pipe", "pipe", "pipe"],
      detached: true, // its own process group, killed as a whole on timeout
    });
    const chunks: Buffer[] = [];
    let size = 0;
    let stderr = "";
    let timedOut = false;
    let overflow = false;
    const killGroup = () => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {}
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, timeoutMs);
    child.stdout.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxOutput) {
        overflow = true;
        killGroup();
        return;
      }
      if (options.onStdout) options.onStdout(chunk);
      else chunks.push(chunk);
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString("utf8")).slice(-STDERR_KEEP);
    });
    child.stdin.on("error", () => {}); // the child may exit before reading everything
    child.stdin.end(options.input);
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(
        new ScanError("BTL_SCAN_GIT", `cannot run ${command}: ${error.message}`, {
          cause: error,
        }),
      );
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (overflow) {
        reject(new ScanError("BTL_SCAN_GIT", `${command} wrote more than ${maxOutput} bytes`));
        return;
      }
      resolve({ code, signal, stdout: Buffer.concat(chunks), stderr, timedOut });
    });
  });
}

/** Options of {@link git}. */
export interface GitOptions extends RunOptions {
  /** Resolve on a non-zero exit instead of throwing. */
  readonly allowFailure?: boolean;
}

/**
 * Runs `git args`. Throws `ScanError` BTL_SCAN_GIT with git's stderr when git fails
 * (unless `allowFailure`), or when it is killed or times out.
 */
export async function git(args: readonly string[], options: GitOptions): Promise<RunResult> {
  const result = await run("git", args, options);
  if (result.timedOut) {
    throw new ScanError("BTL_SCAN_GIT", `git ${args[0] ?? ""} timed out`);
  }
  if (result.code !== 0 && !(options.allowFailure && result.code !== null)) {
    throw new ScanError(
      "BTL_SCAN_GIT",
      `git ${args[0] ?? ""} failed (${result.code ?? result.signal}): ${oneLine(result.stderr)}`,
    );
  }
  return result;
}

/** Last meaningful lines of a stderr, printable, capped: safe to show a client. */
export function oneLine(text: string, max = 1000): string {
  const clean = text
    .replace(/\r\n?/g, "\n")
    .replace(/[^\n\x20-\x7e\u00a0-\uffff]/g, "")
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "")
    .join("; ");
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}

/**
 * The git environment of the gate's own git commands, from an allowlist: the machine's system
 * and global git config are never read, prompts are off, and only the variables git sets for
 * hooks (object directories of the push quarantine) are carried over from `from`.
 * SECURITY: replacement objects and grafts never apply, so every command reads the objects
 * that a forwarding push sends (a pushed or stale `refs/replace/*` must not show the scan a
 * harmless object in place of the real one). A graft file that cannot exist: git is silent
 * about ENOTDIR, where an empty file would print a deprecation notice on every command.
 */
export function gitEnv(
  from: Readonly<Record<string, string | undefined>>,
  extra: Readonly<Record<string, string>> = {},
): Record<string, string> {
  const env: Record<string, string> = {
    PATH: from.PATH ?? "/usr/local/bin:/usr/bin:/bin",
    LANG: "C",
    LC_ALL: "C",
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_CONFIG_GLOBAL: "/dev/null",
    GIT_TERMINAL_PROMPT: "0",
    GIT_ATTR_NOSYSTEM: "1",
    GIT_NO_REPLACE_OBJECTS: "1",
    GIT_GRAFT_FILE: NO_GRAFTS,
  };
  if (from.HOME) env.HOME = from.HOME;
  for (const name of HOOK_VARIABLES) {
    const value = from[name];
    if (value !== undefined) env[name] = value;
  }
  return Object.assign(env, extra);
}

/** A graft file path that can never exist (`/dev/null` is not a directory). */
export const NO_GRAFTS = "/dev/null/bottle-no-grafts";

// What git sets for a pre-receive hook: without these the pushed objects (still in the
// quarantine directory) are invisible to the hook's own git commands.
const HOOK_VARIABLES = [
  "GIT_DIR",
  "GIT_OBJECT_DIRECTORY",
  "GIT_ALTERNATE_OBJECT_DIRECTORIES",
  "GIT_QUARANTINE_PATH",
] as const;

/**
 * A stdout handler that feeds each chunk to `parse`. The parser runs inside the child's data
 * event, so an exception there must not escape it: the first one is kept, later chunks are
 * dropped, and `rethrow()` throws it once the child has finished.
 */
export function parsingStdout(parse: (chunk: Buffer) => void): {
  onStdout(chunk: Buffer): void;
  rethrow(): void;
} {
  let failure: unknown;
  return {
    onStdout(chunk) {
      if (failure !== undefined) return;
      try {
        parse(chunk);
      } catch (error) {
        failure = error;
      }
    },
    rethrow() {
      if (failure !== undefined) throw failure;
    },
  };
}
