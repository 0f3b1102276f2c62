/** The `bottle-gate` command line: options → a running gate, with signals and activation modes. */
import { spawn } from "node:child_process";
import { closeSync, openSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { Socket } from "node:net";
import { isBottleError } from "@bottle/errors";
import { createLogger, type Logger } from "@bottle/log";
import {
  commanderExit,
  DEFAULT_PORTS,
  intOption,
  type ListenTarget,
  systemdListenFd,
  withOutput,
} from "@bottle/sidecar";
import { Command, Option } from "commander";
import { splitCommand } from "./access-hook.ts";
import { GATE_ERRORS, GateError } from "./errors.ts";
import { createGateServer } from "./server.ts";

/** What the process gives the program; `cli.ts` passes the real ones. */
export interface GateProcess {
  readonly argv: readonly string[];
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly pid: number;
  readonly execPath: string;
  readonly script: string;
  readonly stdout: { write(text: string): unknown };
  readonly stderr: NodeJS.WritableStream;
  onSignal(signal: "SIGTERM" | "SIGINT", handler: () => void): void;
}

interface Flags {
  basePath: string;
  tokenFile: string;
  bind: string;
  port: number;
  socket?: string;
  adminToken?: string;
  accessHook?: string;
  hooksDir?: string;
  inetd?: boolean;
  detach?: boolean;
  pidFile?: string;
  logFile?: string;
  logLevel: "debug" | "info" | "warn" | "error";
  maxConcurrent: number;
  maxConnections: number;
  idleTimeout: number;
}

const require = createRequire(import.meta.url);
const VERSION = (require("../package.json") as { version: string }).version;
const READY_FD_ENV = "BOTTLE_GATE_READY_FD";

const HELP_AFTER = `
Listeners (first that applies): --inetd (one connection on fd 0, systemd Accept=yes);
a socket passed by systemd (LISTEN_FDS); --socket PATH (mode 0600); --bind/--port.

Environment:
  BOTTLE_GATE_ADMIN_TOKEN  admin token (preferred to --admin-token, which other users can see in ps)

Exit codes:
  0  stopped cleanly (SIGTERM or SIGINT; in-flight requests finished)
  1  internal error
  2  invalid options
  3  cannot listen (address in use, socket path taken)`;

/** Runs the gate until it is stopped; returns the exit code. */
export async function runGate(proc: GateProcess): Promise<number> {
  const program = new Command("bottle-gate")
    .description("Serve git over smart HTTP to agents, with per-task tokens scoped to a project.")
    .version(VERSION, "-V, --version")
    .requiredOption(
      "--base-path <dir>",
      "directory of the repositories (<project>.git, <project>/<repo>.git)",
    )
    .requiredOption(
      "--token-file <file>",
      "gate token file (bottle-gate-tokens); re-read when it changes",
    )
    .option("--bind <addr>", "address to listen on", "127.0.0.1")
    .option("--port <n>", "TCP port (0: any free port)", intOption(0, 65535), DEFAULT_PORTS.gate)
    .option("--socket <path>", "listen on a unix socket (mode 0600) instead of TCP")
    .option(
      "--admin-token <token>",
      "token with access to every project (prefer BOTTLE_GATE_ADMIN_TOKEN)",
    )
    .option(
      "--access-hook <cmd>",
      "command run before every fetch; non-zero exit refuses it (no shell)",
    )
    .option("--hooks-dir <dir>", "gate-owned git hooks directory (default: an empty one)")
    .option("--inetd", "serve the one connection on fd 0 (systemd Accept=yes), then exit")
    .option("--detach", "run in the background (needs --pid-file)")
    .option("--pid-file <file>", "with --detach: where the pid goes")
    .option("--log-file <file>", "with --detach: where logs go (default: the pid file with .log)")
    .addOption(
      new Option("--log-level <level>", "log level")
        .choices(["debug", "info", "warn", "error"])
        .default("info"),
    )
    .option(
      "--max-concurrent <n>",
      "requests served at once; up to 8x more wait, beyond that 503",
      intOption(1, 4096),
      32,
    )
    .option(
      "--max-connections <n>",
      "open connections at once; beyond that new ones are closed unanswered",
      intOption(1, 1_048_576),
      1024,
    )
    .option(
      "--idle-timeout <seconds>",
      "close connections silent this long (no total limit)",
      intOption(1, 86_400),
      300,
    )
    .addHelpText("after", HELP_AFTER);
  withOutput(program, proc, "BTL_GATE_CONFIG");
  let flags: Flags;
  try {
    program.parse([...proc.argv], { from: "user" });
    flags = program.opts<Flags>();
  } catch (error) {
    const exit = commanderExit(error, GATE_ERRORS.BTL_GATE_CONFIG.exit);
    if (exit !== undefined) return exit;
    throw error;
  }
  const log = createLogger({
    name: "bottle-gate",
    level: flags.logLevel,
    destination: proc.stderr,
  });
  try {
    if (flags.detach) return await detach(proc, flags, log);
    return await serve(proc, flags, log);
  } catch (error) {
    if (isBottleError(error)) {
      proc.stderr.write(`${error.code}: ${error.message}\n`);
      return error.exitCode;
    }
    log.error({ err: error }, "unexpected failure");
    return 1;
  }
}

async function serve(proc: GateProcess, flags: Flags, log: Logger): Promise<number> {
  const adminToken = flags.adminToken ?? proc.env.BOTTLE_GATE_ADMIN_TOKEN;
  if (flags.adminToken)
    log.warn(
      {},
      "--admin-token is visible to other users in the process list; prefer BOTTLE_GATE_ADMIN_TOKEN",
    );
  let hook: string[] | undefined;
  try {
    hook = flags.accessHook === undefined ? undefined : splitCommand(flags.accessHook);
  } catch (error) {
    throw new GateError("BTL_GATE_CONFIG", (error as Error).message);
  }
  if (hook !== undefined && hook.length === 0)
    throw new GateError("BTL_GATE_CONFIG", "--access-hook is empty");
  if (flags.inetd && flags.socket)
    throw new GateError("BTL_GATE_CONFIG", "--inetd and --socket exclude each other");

  const gate = createGateServer({
    basePath: flags.basePath,
    tokenFile: flags.tokenFile,
    logger: log,
    maxConcurrent: flags.maxConcurrent,
    maxQueued: flags.maxConcurrent * 8,
    maxConnections: flags.maxConnections,
    idleTimeoutMs: flags.idleTimeout * 1000,
    ...(proc.env.PATH ? { path: proc.env.PATH } : {}),
    ...(adminToken ? { adminToken } : {}),
    ...(hook ? { accessHook: hook } : {}),
    ...(flags.hooksDir ? { hooksDir: flags.hooksDir } : {}),
  });

  let stopping = false;
  const stopped = new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      if (stopping) {
        log.warn({ signal }, "second signal: exiting now");
        process.exit(1);
      }
      stopping = true;
      log.info({ signal }, "shutting down: finishing in-flight requests");
      void gate.close().then(resolve);
    };
    proc.onSignal("SIGTERM", () => stop("SIGTERM"));
    proc.onSignal("SIGINT", () => stop("SIGINT"));
  });

  if (flags.inetd) {
    // inetd / systemd Accept=yes: fd 0 is one connected socket; serve it, then exit.
    const socket = new Socket({ fd: 0, readable: true, writable: true });
    socket.on("close", () => void gate.close().then(() => undefined));
    log.info({ url: "fd:0", mode: "inetd" }, "listening");
    gate.handleConnection(socket);
    await Promise.race([stopped, new Promise((resolve) => socket.on("close", resolve))]);
    await gate.close();
  } else {
    const fd = systemdListenFd(proc.env, proc.pid);
    const target: ListenTarget =
      fd !== undefined
        ? { fd }
        : flags.socket
          ? { path: flags.socket }
          : { host: flags.bind, port: flags.port };
    const url = await gate.listen(target);
    log.info({ url, ...(fd !== undefined ? { mode: "systemd" } : {}) }, "listening");
    announceReady(proc, url);
    await stopped;
  }
  log.info({}, "stopped");
  return 0;
}

/** In a detached child: tell the parent the URL through the ready descriptor, then close it. */
function announceReady(proc: GateProcess, url: string): void {
  const fd = Number(proc.env[READY_FD_ENV]);
  if (!Number.isInteger(fd) || fd < 3) return;
  try {
    writeFileSync(fd, `${url}\n`);
    closeSync(fd);
  } catch {}
}

/** Starts the gate in the background, waits until it listens, writes the pid file, returns. */
async function detach(proc: GateProcess, flags: Flags, log: Logger): Promise<number> {
  if (!flags.pidFile) throw new GateError("BTL_GATE_CONFIG", "--detach needs --pid-file");
  if (flags.inetd)
    throw new GateError("BTL_GATE_CONFIG", "--detach and --inetd exclude each other");
  const logFile = flags.logFile ?? `${flags.pidFile.replace(/\.pid$/, "")}.log`;
  const logFd = openSync(logFile, "a", 0o600);
  const args = proc.argv.filter((arg) => arg !== "--detach");
  const env: Record<string, string> = { [READY_FD_ENV]: "3" };
  for (const [key, value] of Object.entries(proc.env)) if (value !== undefined) env[key] = value;
  const child = spawn(proc.execPath, [proc.script, ...args], {
    detached: true,
    env,
    stdio: ["ignore", "ignore", logFd, "pipe"],
  });
  closeSync(logFd);
  const ready = child.stdio[3] as NodeJS.ReadableStream;
  const url = await new Promise<string | undefined>((resolve) => {
    let text = "";
    ready.on("data", (chunk: Buffer) => {
      text += chunk.toString();
      if (text.includes("\n")) resolve(text.trim());
    });
    child.once("exit", () => resolve(undefined));
  });
  if (url === undefined) {
    throw new GateError("BTL_GATE_LISTEN", `the gate did not start; see ${logFile}`);
  }
  writeFileSync(flags.pidFile, `${child.pid}\n`, { mode: 0o644 });
  child.unref();
  (ready as unknown as Socket).destroy();
  log.info({ url, pid: child.pid, pidFile: flags.pidFile, logFile }, "listening");
  return 0;
}
