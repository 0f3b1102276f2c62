/**
 * A sidecar's whole command line on the shared skeleton: the program, the common flags, the
 * logger, the listener, the lifecycle and the exit code. A sidecar brings its own options and
 * the service it serves.
 */
import { createLogger, type Logger } from "@bottle/log";
import { Command } from "commander";
import { reportFailure } from "./exit.ts";
import { type OnSignal, type Serving, serveUntilStopped } from "./lifecycle.ts";
import { listenTargetFrom } from "./listen.ts";
import { type CommonDefaults, type CommonFlags, commonOptions, withOutput } from "./options.ts";

/** What a sidecar's process gives its program; `cli.ts` passes the real ones. */
export interface SidecarProcess {
  readonly argv: readonly string[];
  readonly env: Readonly<Record<string, string | undefined>>;
  /** This process's id: a socket systemd passed (`LISTEN_PID`) is served only when it matches. */
  readonly pid?: number;
  readonly stdout: { write(text: string): unknown };
  readonly stderr: NodeJS.WritableStream;
  /**
   * stderr's descriptor when `stderr` is the process's own: the log is then written in the
   * background (`buffered` in @bottle/log) instead of one blocking write per record.
   */
  readonly stderrFd?: number;
  onSignal: OnSignal;
}

/**
 * The {@link SidecarProcess} of the process a bin's `cli.ts` passes (its own `process`): the
 * arguments after the script, the environment, the id, stdout and stderr, and `onSignal`
 * installing handlers on it. `stderrFd` is the bin's to add, where its log may be written in
 * the background.
 */
export function sidecarProcess(proc: NodeJS.Process): SidecarProcess & { readonly pid: number } {
  return {
    argv: proc.argv.slice(2),
    env: proc.env,
    pid: proc.pid,
    stdout: proc.stdout,
    stderr: proc.stderr,
    onSignal: (signal, handler) => proc.on(signal, handler),
  };
}

/** How a sidecar starts from its parsed flags. */
export interface SidecarService<F extends CommonFlags> {
  /** The executable's name, also the logger's (`bottle-gate`). */
  readonly name: string;
  /**
   * Builds what to serve, or ends the command with an exit code (`--detach`, `--inetd`).
   * Throws the package's errors, which end the command as `CODE: message`.
   */
  start(flags: F, log: Logger): Serving | number | Promise<Serving | number>;
  /** How long in-flight requests may run after a stop signal (default `DEFAULT_GRACE_MS`). */
  readonly graceMs?: number;
}

/** A sidecar's command line: its names, defaults and own options, and its service. */
export interface SidecarSpec<F extends CommonFlags> extends SidecarService<F> {
  readonly description: string;
  readonly version: string;
  /** The package's code for invalid options (`BTL_GATE_CONFIG`). */
  readonly usageCode: string;
  /** Its defaults for the common flags (its `DEFAULT_PORTS` entry, its concurrency). */
  readonly defaults: CommonDefaults;
  /** Adds the sidecar's own options (listed before the common ones). */
  options?(command: Command): void;
  /** Help after the options: listeners, environment, exit codes. */
  readonly help?: string;
}

/**
 * Runs a sidecar's command line until the sidecar is stopped; resolves to the exit code (see
 * `exitCodeOf`). Command-line errors print as `<usageCode>: message` and exit 2.
 */
export async function runSidecar<F extends CommonFlags>(
  proc: SidecarProcess,
  spec: SidecarSpec<F>,
): Promise<number> {
  const program = withOutput(new Command(spec.name), proc, spec.usageCode)
    .description(spec.description)
    .version(spec.version, "-V, --version");
  spec.options?.(program);
  commonOptions(program, spec.defaults);
  if (spec.help !== undefined) program.addHelpText("after", spec.help);
  let flags: F;
  try {
    program.parse([...proc.argv], { from: "user" });
    flags = program.opts<F>();
  } catch (error) {
    return reportFailure(error, proc);
  }
  return await serveSidecar(proc, flags, spec);
}

/**
 * With flags already parsed (a `serve` subcommand): creates the logger (`--log-level`, on
 * stderr), starts the service, listens where the flags and the environment say, and serves
 * until stopped. Every failure is reported; resolves to the exit code.
 */
export async function serveSidecar<F extends CommonFlags>(
  proc: SidecarProcess,
  flags: F,
  service: SidecarService<F>,
): Promise<number> {
  const log = createLogger({
    name: service.name,
    level: flags.logLevel,
    destination: proc.stderrFd ?? proc.stderr,
    buffered: proc.stderrFd !== undefined,
  });
  try {
    const started = await service.start(flags, log);
    if (typeof started === "number") return started;
    return await serveUntilStopped(started, {
      target: listenTargetFrom(flags, proc.env, proc.pid ?? -1),
      env: proc.env,
      onSignal: proc.onSignal,
      logger: log,
      ...(service.graceMs === undefined ? {} : { graceMs: service.graceMs }),
    });
  } catch (error) {
    return reportFailure(error, { stderr: proc.stderr, logger: log });
  }
}
