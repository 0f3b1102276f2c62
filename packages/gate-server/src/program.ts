/** The `bottle-gate` command line: the gate's own options → a running gate (see @bottle/sidecar). */
import { createRequire } from "node:module";
import type { Logger } from "@bottle/log";
import type { SidecarProcess } from "@bottle/sidecar";
import { detach, runSidecar, serveInetd } from "@bottle/sidecar";
import { accessHookArgv } from "./access-hook-flag.ts";
import { GateError } from "./errors.ts";
import {
  GATE_DEFAULTS,
  GATE_HELP,
  type GateFlags,
  gateOptions,
  gateServerOptions,
} from "./gate-command.ts";
import { createGateServer, type GateServer } from "./server.ts";

/** What the process gives the program; `cli.ts` passes the real ones. */
export interface GateProcess extends SidecarProcess {
  readonly pid: number;
  /** The command line again, for `--detach`. */
  readonly execPath: string;
  readonly script: string;
}

interface Flags extends GateFlags {
  basePath: string;
  accessHook?: string;
  hooksDir?: string;
  detach?: boolean;
  pidFile?: string;
  logFile?: string;
}

const require = createRequire(import.meta.url);
const VERSION = (require("../package.json") as { version: string }).version;

const HELP_AFTER = `${GATE_HELP}

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
    defaults: GATE_DEFAULTS,
    options: (command) =>
      gateOptions(
        command.requiredOption(
          "--base-path <dir>",
          "directory of the repositories (<project>.git, <project>/<repo>.git)",
        ),
      )
        .option(
          "--access-hook <cmd>",
          'command run before every fetch; non-zero exit refuses it: a JSON array (["cmd","arg"]) or words split without a shell (quotes group, backslash escapes)',
        )
        .option("--hooks-dir <dir>", "gate-owned git hooks directory (default: an empty one)")
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
  const hook = flags.accessHook === undefined ? undefined : accessHookArgv(flags.accessHook);
  const gate = createGateServer({
    ...gateServerOptions(flags, proc.env, log),
    basePath: flags.basePath,
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
