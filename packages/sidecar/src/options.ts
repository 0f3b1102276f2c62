/** Command-line value parsers shared by the sidecars' commands (commander argument parsers). */
import { type Command, CommanderError, InvalidArgumentError } from "commander";

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
