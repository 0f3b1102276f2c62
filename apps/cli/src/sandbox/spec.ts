/**
 * What a sandbox is made of, as its caller describes it, and the checks that refuse a spec
 * before anything is written or started.
 */
import { isAbsolute, normalize, relative, sep } from "node:path";
import { CliError } from "../errors.ts";
import { SANDBOX_USER } from "./etc.ts";
import type { SandboxForward } from "./forwarder.ts";

/** How the sandbox meets a terminal. */
export type SandboxTerminal = "pty" | "inherit" | "none";

/** Everything a sandbox is made of. Paths are host paths unless said otherwise. */
export interface SandboxSpec {
  /**
   * A directory owned by the caller, mode 0700, for what the sandbox needs: its /etc, the
   * start-up program, the seccomp program, the environment file and the status file.
   */
  readonly dir: string;
  /** Bound read-write at `workdir`; owned by the caller (it is uid 1000 inside). */
  readonly workspace: string;
  /** Where the workspace appears inside, absolute (e.g. "/workspace"); the agent's cwd. */
  readonly workdir: string;
  /** The sidecars' unix sockets, bound read-only (the directory, not the files) at /run/bottle. */
  readonly socketsDir: string;
  /** Inside the sandbox, 127.0.0.1:<port> leads to /run/bottle/<socket>. */
  readonly forwards: readonly SandboxForward[];
  /**
   * The agent's environment. The sandbox adds HOME, USER and LOGNAME (which `env` must not
   * hold), PATH when `env` has none, and TERM from this process when a terminal is attached and
   * `env` has none. Nothing else of this process's environment enters the sandbox.
   */
  readonly env: Readonly<Record<string, string>>;
  /** Files written into the tmpfs $HOME before the agent starts: path relative to $HOME → content. */
  readonly homeFiles: Readonly<Record<string, string>>;
  /**
   * Host paths bound read-only at the same path (where the agent's own program lives). One
   * under /usr is there already: the sandbox shows the host's /usr whole, read-only.
   */
  readonly roBinds: readonly string[];
  /** The agent's command: the program (looked up on the sandbox's PATH) and its arguments. */
  readonly command: readonly string[];
  /**
   * "pty": the caller gives the sandbox a pseudo-terminal of its own (the sandbox keeps it as
   * its controlling terminal); "inherit": the sandbox gets the caller's terminal and a new
   * session, so it cannot reach the terminal's session; "none": pipes, and a new session.
   */
  readonly terminal: SandboxTerminal;
}

/** Paths inside the sandbox. */
export const SANDBOX_PATHS = {
  home: SANDBOX_USER.home,
  sockets: "/run/bottle",
  /** The Node that runs the start-up program, when it lives outside /usr. */
  node: "/opt/bottle/node",
  init: "/opt/bottle/init.mjs",
} as const;

/** The host tree the sandbox shows whole, read-only, at the same path. */
const HOST_USR = "/usr";

/** Inside paths a workdir or an extra bind may not be, or be under. */
const RESERVED_TREES = ["/usr", "/etc", "/proc", "/dev", "/sys", "/run/bottle", "/opt/bottle"];
/** Inside paths a workdir or an extra bind may not be (they may be under them). */
const RESERVED_EXACT = ["/", "/bin", "/lib", "/lib64", "/sbin", "/tmp", "/run", "/home", "/opt"];
const RESERVED_ENV = ["HOME", "USER", "LOGNAME"];
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const SOCKET_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

function fail(message: string): never {
  throw new CliError("BTL_CLI_SANDBOX_SPEC", message);
}

function isUnder(path: string, tree: string): boolean {
  const rel = relative(tree, path);
  return rel === "" || (!rel.startsWith(`..${sep}`) && rel !== ".." && !isAbsolute(rel));
}

/** Whether host path `path` is in the sandbox already, read-only at the same path. */
export function isShownWhole(path: string): boolean {
  return isUnder(path, HOST_USR);
}

function checkAbsolute(what: string, path: string): void {
  if (
    typeof path !== "string" ||
    !isAbsolute(path) ||
    normalize(path) !== path ||
    /\0/.test(path)
  ) {
    fail(`Expected \`${what}\` to be a normalized absolute path, got ${JSON.stringify(path)}`);
  }
}

function checkInsidePath(what: string, path: string): void {
  checkAbsolute(what, path);
  const clash = RESERVED_EXACT.includes(path) || RESERVED_TREES.some((tree) => isUnder(path, tree));
  if (clash || path === SANDBOX_PATHS.home) {
    fail(`Expected \`${what}\` to be outside the sandbox's own paths, got ${path}`);
  }
}

/** Refuses a spec that cannot make a sandbox; throws BTL_CLI_SANDBOX_SPEC. */
export function checkSandboxSpec(spec: SandboxSpec): void {
  for (const key of ["dir", "workspace", "socketsDir"] as const) checkAbsolute(key, spec[key]);
  checkInsidePath("workdir", spec.workdir);
  if (spec.command.length === 0 || spec.command.some((arg) => /\0/.test(arg))) {
    fail("Expected `command` to be a non-empty list of strings without NUL");
  }
  if (!["pty", "inherit", "none"].includes(spec.terminal)) {
    fail(`Expected \`terminal\` to be "pty", "inherit" or "none", got ${String(spec.terminal)}`);
  }
  const ports = new Set<number>();
  for (const { port, socket } of spec.forwards) {
    if (!Number.isInteger(port) || port < 1 || port > 65535 || ports.has(port)) {
      fail(`Expected \`forwards\` to have distinct ports from 1 to 65535, got ${port}`);
    }
    ports.add(port);
    if (!SOCKET_NAME.test(socket)) {
      fail(`Expected a forward's \`socket\` to be a file name, got ${JSON.stringify(socket)}`);
    }
  }
  for (const [name, value] of Object.entries(spec.env)) {
    if (!ENV_NAME.test(name) || /\0/.test(value)) {
      fail(`Expected \`env\` names like NAME_1 and values without NUL, got ${name}`);
    }
    if (RESERVED_ENV.includes(name)) fail(`\`env\` may not set ${name}: the sandbox sets it`);
  }
  for (const [name, content] of Object.entries(spec.homeFiles)) {
    const path = normalize(name);
    const escapes = path === "." || path.startsWith("..") || isAbsolute(path) || path !== name;
    if (escapes || /\0/.test(name) || typeof content !== "string") {
      fail(`Expected \`homeFiles\` keys to be normalized paths inside $HOME, got ${name}`);
    }
  }
  // SECURITY: what the sandbox sees of the host must not include the caller's state.
  for (const [what, path] of [
    ["workspace", spec.workspace],
    ...spec.roBinds.map((bind) => ["roBinds", bind] as const),
  ] as const) {
    if (what === "roBinds") {
      checkAbsolute(what, path);
      // A bind under /usr adds nothing (and a global npm install under /usr/local is common).
      if (!isShownWhole(path)) checkInsidePath(what, path);
    }
    if (isUnder(spec.dir, path) || isUnder(spec.socketsDir, path)) {
      fail(`\`${what}\` may not show the sandbox's own directories, got ${path}`);
    }
  }
}
