/** `--detach`: start the sidecar in the background, wait until it listens, write its pid file. */
import { spawn } from "node:child_process";
import { closeSync, openSync, writeFileSync } from "node:fs";
import type { Readable } from "node:stream";
import { READY_FD_ENV } from "./lifecycle.ts";
import type { ListenError } from "./listen.ts";
import { SIDECAR_NODE_OPTIONS } from "./node-options.ts";

/**
 * What a background sidecar inherits of the environment besides the names a package adds.
 * SECURITY: an allowlist, never a copy of the environment (which may hold unrelated secrets).
 */
export const DETACH_ENV: readonly string[] = Object.freeze([
  "PATH",
  "HOME",
  "USER",
  "LOGNAME",
  "LANG",
  "LC_ALL",
  "LC_CTYPE",
  "LC_MESSAGES",
  "TZ",
  "TMPDIR",
  "NODE_EXTRA_CA_CERTS",
]);

/** Options of {@link detach}. */
export interface DetachOptions {
  /** The executable's name, for messages (`bottle-gate`). */
  readonly name: string;
  /** The command line to run again in the background (without `--detach`). */
  readonly execPath: string;
  readonly script: string;
  readonly argv: readonly string[];
  readonly env: Readonly<Record<string, string | undefined>>;
  /**
   * Variables the sidecar needs on top of {@link DETACH_ENV}: exact names, or prefixes ending
   * in `*` (`BOTTLE_GATE_*`).
   */
  readonly keepEnv: readonly string[];
  readonly pidFile: string;
  /** Where the background process's stderr (its log) goes; created mode 0600. */
  readonly logFile: string;
  /** The package's listen error, thrown when the process exits before it listens. */
  readonly listenError: ListenError;
}

/**
 * Starts the command again in its own session with the ready descriptor on fd 3, resolves
 * once it wrote its URL there, and writes its pid file (mode 0644). Throws `listenError` when
 * the process exits first (its log says why).
 */
export async function detach(options: DetachOptions): Promise<{ url: string; pid: number }> {
  const logFd = openSync(options.logFile, "a", 0o600);
  const child = spawn(
    options.execPath,
    [...SIDECAR_NODE_OPTIONS, options.script, ...options.argv],
    {
      detached: true,
      env: { ...pickEnv(options.env, [...DETACH_ENV, ...options.keepEnv]), [READY_FD_ENV]: "3" },
      stdio: ["ignore", "ignore", logFd, "pipe"],
    },
  );
  closeSync(logFd);
  const ready = child.stdio[3] as Readable;
  const url = await new Promise<string | undefined>((resolve) => {
    let text = "";
    ready.on("data", (chunk: Buffer) => {
      text += chunk.toString();
      if (text.includes("\n")) resolve(text.trim());
    });
    child.once("exit", () => resolve(undefined));
  });
  if (url === undefined || child.pid === undefined)
    throw options.listenError(`${options.name} did not start; see ${options.logFile}`);
  writeFileSync(options.pidFile, `${child.pid}\n`, { mode: 0o644 });
  child.unref();
  ready.destroy();
  return { url, pid: child.pid };
}

/** The variables of `env` that `names` allow (exact names, or prefixes ending in `*`). */
function pickEnv(
  env: Readonly<Record<string, string | undefined>>,
  names: readonly string[],
): Record<string, string> {
  const out: Record<string, string> = Object.create(null);
  for (const [key, value] of Object.entries(env)) {
    if (value === undefined) continue;
    const allowed = names.some((name) =>
      name.endsWith("*") ? key.startsWith(name.slice(0, -1)) : key === name,
    );
    if (allowed) out[key] = value;
  }
  return out;
}
