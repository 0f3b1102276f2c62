/** The command line every sidecar shares: the program skeleton and the common flags. */
import { Command, InvalidArgumentError, Option } from "commander";

/** Log levels a sidecar takes with `--log-level`. */
export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;

/** A level of {@link LOG_LEVELS}. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * A commander parser for a decimal integer from `min` to `max`: digits only, so that `""`,
 * `1e3`, `0x10` or ` 5` are refused rather than read as some other number.
 */
export function int(min: number, max: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^\d{1,16}$/.test(value) || n < min || n > max)
      throw new InvalidArgumentError(`expected an integer from ${min} to ${max}`);
    return n;
  };
}

/** What a sidecar's program writes to. */
export interface ProgramOutput {
  readonly stdout: { write(text: string): unknown };
  readonly stderr: { write(text: string): unknown };
}

/** Options of {@link createProgram}. */
export interface ProgramOptions extends ProgramOutput {
  readonly name: string;
  readonly description: string;
  readonly version: string;
  /** The package's code for invalid options: command-line errors print as `CODE: message`. */
  readonly usageCode: string;
}

/**
 * A commander program that throws instead of exiting (see `exitCodeOf`), writes to the given
 * streams, and prints command-line errors as `<usageCode>: message`.
 */
export function createProgram(options: ProgramOptions): Command {
  return new Command(options.name)
    .description(options.description)
    .version(options.version, "-V, --version")
    .exitOverride()
    .configureOutput({
      writeOut: (text) => options.stdout.write(text),
      writeErr: (text) => options.stderr.write(text),
      outputError: (text, write) => write(`${options.usageCode}: ${text.replace(/^error: /, "")}`),
    });
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
    .option("--port <n>", "TCP port (0: any free port)", int(0, 65_535), defaults.port)
    .addOption(
      new Option("--socket <path>", "listen on a unix socket (mode 0600) instead of TCP").conflicts(
        ["bind", "port"],
      ),
    )
    .option(
      "--idle-timeout <seconds>",
      help.idleTimeout ?? "close connections silent this long (no total limit)",
      int(1, 86_400),
      defaults.idleTimeout ?? 300,
    )
    .option(
      "--max-concurrent <n>",
      help.maxConcurrent ?? "requests served at once; beyond that 503",
      int(1, 65_536),
      defaults.maxConcurrent,
    )
    .option(
      "--max-connections <n>",
      help.maxConnections ??
        "open connections at once; beyond that new ones are closed unanswered (and counted in the log)",
      int(1, 1_048_576),
      defaults.maxConnections ?? 1024,
    )
    .addOption(new Option("--log-level <level>", "log level").choices(LOG_LEVELS).default("info"));
}
