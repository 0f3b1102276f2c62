/**
 * The command line the sidecars share: commander's output and usage errors, the integer
 * parser, and the common flags.
 */
import { type Command, CommanderError, InvalidArgumentError, Option } from "commander";

/** Log levels a sidecar takes with `--log-level`. */
export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;

/** A level of {@link LOG_LEVELS}. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/** A parser for an integer option from `min` to `max`; anything else is a usage error. */
export function intOption(min: number, max: number): (value: string) => number {
  return (value: string) => {
    const n = Number(value);
    if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(`expected an integer from ${min} to ${max}`);
    return n;
  };
}

/** Where a command writes: its stdout (help, results) and stderr (errors). */
export interface CommandOutput {
  readonly stdout: { write(text: string): unknown };
  readonly stderr: { write(text: string): unknown };
}

/**
 * Routes `command`'s output to `out` and makes it throw instead of exiting (library code never
 * calls `process.exit`): usage errors print as `CODE: message` with the command's own usage
 * code, through `clean` (e.g. a redaction) when given. Returns `command`.
 */
export function withOutput(
  command: Command,
  out: CommandOutput,
  usageCode: string,
  clean: (text: string) => string = (text) => text,
): Command {
  return command.exitOverride().configureOutput({
    writeOut: (text) => out.stdout.write(text),
    writeErr: (text) => out.stderr.write(text),
    outputError: (text, write) => write(`${usageCode}: ${clean(text.replace(/^error: /, ""))}`),
  });
}

/**
 * The exit code of a commander "error" thrown by a command made with {@link withOutput}: 0 for
 * `--help` and `--version`, `usageExit` for a usage error (already printed); `undefined` for any
 * other error, which the caller reports.
 */
export function commanderExit(error: unknown, usageExit: number): number | undefined {
  if (!(error instanceof CommanderError)) return undefined;
  return error.exitCode === 0 ? 0 : usageExit;
}

/** The parsed common flags. */
export interface CommonFlags {
  readonly bind: string;
  readonly port: number;
  readonly socket?: string;
  readonly logLevel: LogLevel;
  /** Seconds. */
  readonly idleTimeout: number;
  readonly maxConcurrent: number;
  readonly maxConnections: number;
}

/** The limits of the common flags under the option names the sidecars' factories take. */
export interface ServerLimits {
  readonly maxConcurrent: number;
  readonly maxConnections: number;
  readonly idleTimeoutMs: number;
}

/** {@link ServerLimits} from the parsed common flags (`--idle-timeout` is in seconds). */
export function serverLimits(flags: CommonFlags): ServerLimits {
  return {
    maxConcurrent: flags.maxConcurrent,
    maxConnections: flags.maxConnections,
    idleTimeoutMs: flags.idleTimeout * 1000,
  };
}

/** The common flags' help lines a package words in its own terms. */
export type CommonHelp = Partial<
  Record<"idleTimeout" | "maxConcurrent" | "maxConnections", string>
>;

/** A sidecar's defaults for {@link commonOptions}. */
export interface CommonDefaults {
  /** Its entry of `DEFAULT_PORTS`. */
  readonly port: number;
  readonly maxConcurrent: number;
  /** Seconds (default 300). */
  readonly idleTimeout?: number;
  /** Default 1024. */
  readonly maxConnections?: number;
  readonly help?: CommonHelp;
}

/**
 * Adds the flags every sidecar takes: `--bind --port --socket --log-level --idle-timeout
 * --max-concurrent --max-connections`. `--socket` excludes `--bind` and `--port`.
 */
export function commonOptions(command: Command, defaults: CommonDefaults): Command {
  const help = defaults.help ?? {};
  return command
    .option(
      "--bind <addr>",
      "address to listen on (anything but loopback must be asked for)",
      "127.0.0.1",
    )
    .option("--port <n>", "TCP port (0: any free port)", intOption(0, 65_535), defaults.port)
    .addOption(
      new Option("--socket <path>", "listen on a unix socket (mode 0600) instead of TCP").conflicts(
        ["bind", "port"],
      ),
    )
    .option(
      "--idle-timeout <seconds>",
      help.idleTimeout ?? "close connections silent this long (no total limit)",
      intOption(1, 86_400),
      defaults.idleTimeout ?? 300,
    )
    .option(
      "--max-concurrent <n>",
      help.maxConcurrent ?? "requests served at once; beyond that 503",
      intOption(1, 65_536),
      defaults.maxConcurrent,
    )
    .option(
      "--max-connections <n>",
      help.maxConnections ??
        "open connections at once; beyond that new ones are closed unanswered (and counted in the log)",
      intOption(1, 1_048_576),
      defaults.maxConnections ?? 1024,
    )
    .addOption(new Option("--log-level <level>", "log level").choices(LOG_LEVELS).default("info"));
}
