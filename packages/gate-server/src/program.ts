/** The `bottle-gate` command line: the gate's own options → a running gate (see @bottle/sidecar). */
import { createRequire } from "node:module";
import type { Logger } from "@bottle/log";
import type { CommonFlags, SidecarProcess } from "@bottle/sidecar";
import { DEFAULT_PORTS, detach, runSidecar, serveInetd, serverLimits } from "@bottle/sidecar";
import { accessHookArgv } from "./access-hook-flag.ts";
import { GateError } from "./errors.ts";
import { createGateServer, type GateServer } from "./server.ts";

/** What the process gives the program; `cli.ts` passes the real ones. */
export interface GateProcess extends SidecarProcess {
  readonly pid: number;
  /** The command line again, for `--detach`. */
  readonly execPath: string;
  readonly script: string;
}

interface Flags extends CommonFlags {
  basePath: string;
  tokenFile: string;
  adminToken?: string;
  accessHook?: string;
  hooksDir?: string;
  inetd?: boolean;
  detach?: boolean;
  pidFile?: string;
  logFile?: string;
}

const require = createRequire(import.meta.url);
const VERSION = (require("../package.json") as { version: string }).version;

const HELP_AFTER = `
Listeners (first that applies): --inetd (one connection on fd 0, systemd Accept=yes);
a socket passed by systemd (LISTEN_FDS); --socket PATH (mode 0600); --bind/--port.

Environment:
  BOTTLE_GATE_ADMIN_TOKEN  admin token (preferred to --admin-token, which other users can see in ps)

Exit codes:
  0  stopped cleanly (SIGTERM or SIGINT; in-flight requests finished)
  1  internal error, or requests cut by a second signal or after the 30 s grace period
  2  invalid options
  3  cannot listen (address in use, socket path taken)`;

/** Runs the gate until it is stopped; returns the exit code. */
export function runGate(proc: GateProcess): Promise<number> {
  return runSidecar<Flags>(proc, {
    name: "bottle-gate",
    description: "Serve git over smart HTTP to agents, with per-task tokens scoped to a project.",
    version: VERSION,
    usageCode: "BTL_GATE_CONFIG",
    defaults: {
      port: DEFAULT_PORTS.gate,
      maxConcurrent: 32,
      help: { maxConcurrent: "requests served at once; up to 8x more wait, beyond that 503" },
    },
    options: (command) =>
      command
        .requiredOption(
          "--base-path <dir>",
          "directory of the repositories (<project>.git, <project>/<repo>.git)",
        )
        .requiredOption(
          "--token-file <file>",
          "gate token file (bottle-gate-tokens); re-read when it changes",
        )
        .option(
          "--admin-token <token>",
          "token with access to every project (prefer BOTTLE_GATE_ADMIN_TOKEN)",
        )
        .option(
          "--access-hook <cmd>",
          'command run before every fetch; non-zero exit refuses it: a JSON array (["cmd","arg"]) or words split without a shell (quotes group, backslash escapes)',
        )
        .option("--hooks-dir <dir>", "gate-owned git hooks directory (default: an empty one)")
        .option("--inetd", "serve the one connection on fd 0 (systemd Accept=yes), then exit")
        .option("--detach", "run in the background (needs --pid-file)")
        .option("--pid-file <file>", "with --detach: where the pid goes")
        .option(
          "--log-file <file>",
          "with --detach: where logs go (default: the pid file with .log)",
        ),
    help: HELP_AFTER,
    start: (flags, log) => (flags.detach ? background(proc, flags, log) : start(proc, flags, log)),
  });
}

/** The gate the flags describe; with `--inetd`, served on fd 0 here (resolves to the exit code). */
async function start(proc: GateProcess, flags: Flags, log: Logger): Promise<GateServer | number> {
  const adminToken = flags.adminToken ?? proc.env.BOTTLE_GATE_ADMIN_TOKEN;
  if (flags.adminToken)
    log.warn(
      {},
      "--admin-token is visible to other users in the process list; prefer BOTTLE_GATE_ADMIN_TOKEN",
    );
  const hook = flags.accessHook === undefined ? undefined : accessHookArgv(flags.accessHook);
  if (flags.inetd && flags.socket)
    throw new GateError("BTL_GATE_CONFIG", "--inetd and --socket exclude each other");

  const gate = createGateServer({
    basePath: flags.basePath,
    tokenFile: flags.tokenFile,
    logger: log,
    ...serverLimits(flags),
    ...(proc.env.PATH ? { path: proc.env.PATH } : {}),
    ...(adminToken ? { adminToken } : {}),
    ...(hook ? { accessHook: hook } : {}),
    ...(flags.hooksDir ? { hooksDir: flags.hooksDir } : {}),
  });
  return flags.inetd ? await serveInetd(gate, { onSignal: proc.onSignal, logger: log }) : gate;
}

/** Starts the gate in the background, waits until it listens, writes the pid file, returns. */
async function background(proc: GateProcess, flags: Flags, log: Logger): Promise<number> {
  if (!flags.pidFile) throw new GateError("BTL_GATE_CONFIG", "--detach needs --pid-file");
  if (flags.inetd)
    throw new GateError("BTL_GATE_CONFIG", "--detach and --inetd exclude each other");
  const logFile = flags.logFile ?? `${flags.pidFile.replace(/\.pid$/, "")}.log`;
  const { url, pid } = await detach({
    name: "bottle-gate",
    execPath: proc.execPath,
    script: proc.script,
    argv: proc.argv.filter((arg) => arg !== "--detach"),
    env: proc.env,
    keepEnv: ["BOTTLE_GATE_*"],
    pidFile: flags.pidFile,
    logFile,
    listenError: (message, options) => new GateError("BTL_GATE_LISTEN", message, options),
  });
  log.info({ url, pid, pidFile: flags.pidFile, logFile }, "listening");
  return 0;
}
