/**
 * bubblewrap: finding it, and the command line that makes the sandbox. bwrap(1) documents every
 * flag used here; all of them exist since bubblewrap 0.8.0 (`--disable-userns` is the newest).
 */
import { execFile } from "node:child_process";
import { constants } from "node:fs";
import { access, lstat, readlink } from "node:fs/promises";
import { basename, delimiter, dirname, join, relative } from "node:path";
import { CliError } from "../errors.ts";
import { SANDBOX_HOSTNAME, SANDBOX_USER } from "./etc.ts";
import { isShownWhole, SANDBOX_PATHS, type SandboxTerminal } from "./spec.ts";

/** The oldest bubblewrap with every flag the sandbox uses. */
export const MIN_BWRAP_VERSION = [0, 8, 0] as const;

/** Descriptors the launch opens for bwrap (0–9: what a POSIX shell redirects portably). */
export const LAUNCH_FDS = { env: 3, seccomp: 4, status: 5, init: 6 } as const;

/** The descriptor the start-up program reports "ready" on, inside the sandbox. */
const INIT_READY_FD = 3;

/** The exit status of the sandbox when it could not start the agent (as `docker run` uses it). */
export const SANDBOX_START_FAILED = 125;

const found = new Map<string, Promise<string>>();

function parseVersion(text: string): number[] | undefined {
  const match = /(\d+)\.(\d+)\.(\d+)/.exec(text);
  return match ? match.slice(1, 4).map(Number) : undefined;
}

function olderThanMinimum(version: readonly number[]): boolean {
  for (const [index, min] of MIN_BWRAP_VERSION.entries()) {
    const part = version[index] ?? 0;
    if (part !== min) return part < min;
  }
  return false;
}

async function locateBwrap(searchPath: string): Promise<string> {
  for (const dir of searchPath.split(delimiter)) {
    if (!dir.startsWith("/")) continue;
    const candidate = join(dir, "bwrap");
    try {
      await access(candidate, constants.X_OK);
    } catch {
      continue;
    }
    const output = await new Promise<string>((resolve) => {
      execFile(candidate, ["--version"], { timeout: 5_000, env: {} }, (error, stdout) =>
        resolve(error ? "" : stdout),
      );
    });
    const version = parseVersion(output);
    if (version === undefined || olderThanMinimum(version)) {
      throw new CliError(
        "BTL_CLI_SANDBOX_BWRAP",
        `${candidate} is ${output.trim() || "not a working bubblewrap"}; the sandbox needs bubblewrap ${MIN_BWRAP_VERSION.join(".")} or later`,
      );
    }
    return candidate;
  }
  throw new CliError(
    "BTL_CLI_SANDBOX_BWRAP",
    "bwrap is not installed (on Debian and Ubuntu: apt-get install bubblewrap)",
  );
}

/**
 * Returns the absolute path of the first `bwrap` on `searchPath` (a PATH value), checked once
 * per process; throws BTL_CLI_SANDBOX_BWRAP when there is none or it is older than 0.8.0.
 */
export function findBwrap(searchPath: string): Promise<string> {
  let pending = found.get(searchPath);
  if (pending === undefined) {
    pending = locateBwrap(searchPath);
    found.set(searchPath, pending);
    pending.catch(() => found.delete(searchPath));
  }
  return pending;
}

/** The top-level directories of a merged /usr: a symlink is recreated, a directory bound. */
async function rootLinks(): Promise<string[]> {
  const args: string[] = [];
  for (const name of ["bin", "sbin", "lib", "lib32", "lib64", "libx32"]) {
    const path = `/${name}`;
    try {
      const info = await lstat(path);
      if (info.isSymbolicLink()) args.push("--symlink", await readlink(path), path);
      else if (info.isDirectory()) args.push("--ro-bind", path, path);
    } catch {
      // absent on this host
    }
  }
  return args;
}

/** What of this process's Node the sandbox gets, and where its binary is inside. */
export interface NodeBind {
  /** A host path to bind read-only at `target`; null when Node already lives under /usr. */
  readonly bind: { readonly source: string; readonly target: string } | null;
  readonly inside: string;
}

/**
 * This Node for the sandbox: its install prefix (`<prefix>/bin/node`, with npm and its other
 * tools) at SANDBOX_PATHS.node, or the binary alone when the prefix would show more than Node
 * (the root, or a directory holding the sandbox's own).
 */
export function locateNode(execPath: string, hidden: readonly string[]): NodeBind {
  if (execPath.startsWith("/usr/")) return { bind: null, inside: execPath };
  const prefix = dirname(dirname(execPath));
  const whole =
    basename(dirname(execPath)) === "bin" &&
    prefix !== "/" &&
    !hidden.some((path) => path === prefix || path.startsWith(`${prefix}/`));
  if (whole) {
    const inside = join(SANDBOX_PATHS.node, relative(prefix, execPath));
    return { bind: { source: prefix, target: SANDBOX_PATHS.node }, inside };
  }
  const inside = join(SANDBOX_PATHS.node, "bin", "node");
  return { bind: { source: execPath, target: inside }, inside };
}

/** Where things are, host-side, for {@link buildBwrapArgs}. */
export interface BwrapLayout {
  readonly etcDir: string;
  readonly etcHostBinds: readonly string[];
  /** This Node (its install prefix, or its binary) to bind read-only; null when under /usr. */
  readonly node: NodeBind["bind"];
  /** Whether the start-up program (--ro-bind-data on LAUNCH_FDS.init) is part of the sandbox. */
  readonly init: boolean;
  readonly socketsDir: string;
  readonly roBinds: readonly string[];
  readonly workspace: string;
  readonly workdir: string;
  readonly terminal: SandboxTerminal;
}

/**
 * The bwrap options, in order (mounts apply in the order given), without the command. The
 * environment comes from the descriptor LAUNCH_FDS.env (`--args`), never from the command line.
 */
export async function buildBwrapArgs(layout: BwrapLayout): Promise<string[]> {
  const args = [
    // SECURITY: every namespace; as root on the host, the new user namespace maps uid 1000 to
    // the caller and keeps no capability; no nested user namespace.
    "--unshare-all",
    "--unshare-user",
    "--unshare-pid",
    "--disable-userns",
    "--die-with-parent",
    "--cap-drop",
    "ALL",
    "--uid",
    String(SANDBOX_USER.uid),
    "--gid",
    String(SANDBOX_USER.gid),
    "--hostname",
    SANDBOX_HOSTNAME,
    // SECURITY: a terminal the sandbox does not own stays out of its session (TIOCSTI, job control).
    ...(layout.terminal === "pty" ? [] : ["--new-session"]),
    "--clearenv",
    "--args",
    String(LAUNCH_FDS.env),
    "--seccomp",
    String(LAUNCH_FDS.seccomp),
    "--json-status-fd",
    String(LAUNCH_FDS.status),
    "--ro-bind",
    "/usr",
    "/usr",
    ...(await rootLinks()),
    "--ro-bind",
    layout.etcDir,
    "/etc",
  ];
  for (const path of layout.etcHostBinds) args.push("--ro-bind", path, path);
  args.push("--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--dir", "/var");
  args.push("--symlink", "../tmp", "/var/tmp", "--dir", "/home");
  args.push("--perms", "0700", "--tmpfs", SANDBOX_PATHS.home);
  if (layout.node !== null) args.push("--ro-bind", layout.node.source, layout.node.target);
  if (layout.init) args.push("--ro-bind-data", String(LAUNCH_FDS.init), SANDBOX_PATHS.init);
  args.push("--ro-bind", layout.socketsDir, SANDBOX_PATHS.sockets);
  // /usr is bound whole above (bwrap binds recursively): a bind under it would show it twice.
  for (const path of layout.roBinds) {
    if (!isShownWhole(path)) args.push("--ro-bind", path, path);
  }
  args.push("--bind", layout.workspace, layout.workdir);
  // The root itself (bwrap's tmpfs, holding the mount points) becomes read-only last.
  args.push("--remount-ro", "/", "--chdir", layout.workdir);
  return args;
}

/** Quotes `value` as one word for a POSIX shell. */
function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/**
 * A Perl program that puts itself in a process group of its own, makes that group the
 * terminal's foreground group, and becomes the agent. On a pty the sandbox keeps as its
 * controlling terminal, the keys the terminal driver turns into signals (Ctrl-C, Ctrl-\,
 * Ctrl-Z) and window-size changes then reach the agent's group only, not bwrap's, which they
 * would otherwise end. (tcsetpgrp(3) from a background group raises SIGTTOU: ignored for it.)
 */
const FOREGROUND_PROGRAM = [
  "use POSIX ();",
  "POSIX::setpgid(0, 0);",
  '$SIG{TTOU} = "IGNORE";',
  "POSIX::tcsetpgrp(0, POSIX::getpgrp());",
  '$SIG{TTOU} = "DEFAULT";',
  "exec { $ARGV[0] } @ARGV;",
  'print STDERR "$ARGV[0]: $!\\n";',
  "exit 127;",
].join(" ");

/** How the agent's command is started inside the sandbox. */
export interface SandboxCommandOptions {
  /** The Node (inside path) that runs the start-up program; null when there is none. */
  readonly node: string | null;
  /** Perl (inside path) to hand the terminal's foreground to the agent; null to leave it. */
  readonly perl: string | null;
}

/**
 * The command bwrap runs: the agent's command, or, when there is a start-up program, a shell
 * that runs it in the background (with an empty environment, so nothing of the agent's, such as
 * NODE_OPTIONS, reaches it), waits for its "ready" line and then becomes the agent (through
 * FOREGROUND_PROGRAM on a pty). The agent is therefore bwrap's direct child: its pid is the one
 * to signal and its exit status is bwrap's.
 */
export function sandboxCommand(
  command: readonly string[],
  { node, perl }: SandboxCommandOptions,
): string[] {
  const agent = perl === null ? [...command] : [perl, "-e", FOREGROUND_PROGRAM, "--", ...command];
  if (node === null) return agent;
  const script = [
    `ready=$(/usr/bin/env -i ${shellQuote(node)} ${SANDBOX_PATHS.init} ${INIT_READY_FD}>&1 >/dev/null </dev/null &)`,
    `[ "$ready" = ready ] || { echo "BTL_CLI_SANDBOX_FORWARDER: the sandbox's forwarder did not start" >&2; exit ${SANDBOX_START_FAILED}; }`,
    perl === null
      ? 'exec "$@"'
      : `exec ${shellQuote(perl)} -e ${shellQuote(FOREGROUND_PROGRAM)} -- "$@"`,
  ].join("\n");
  return ["/bin/sh", "-c", script, "bottle-init", ...command];
}

/**
 * The launch's own shell script: it opens the files bwrap reads on fixed descriptors (so that a
 * spawner that passes no extra descriptors, such as node-pty, can run it), removes the files
 * that hold the agent's environment and home files once they are open, and becomes bwrap.
 * Positional parameters: env file, seccomp file, status file, init file or "", then bwrap's argv.
 */
export const LAUNCH_SCRIPT = [
  `exec ${LAUNCH_FDS.env}<"$1" ${LAUNCH_FDS.seccomp}<"$2" ${LAUNCH_FDS.status}>"$3" || exit ${SANDBOX_START_FAILED}`,
  `if [ -n "$4" ]; then exec ${LAUNCH_FDS.init}<"$4" || exit ${SANDBOX_START_FAILED}; rm -f -- "$4"; fi`,
  'rm -f -- "$1"',
  "shift 4",
  'exec "$@"',
].join("\n");
