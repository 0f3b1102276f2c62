/** Exit codes: one mapping from whatever ended a command to the number the process exits with. */
import { isBottleError } from "@bottle/errors";
import type { Logger } from "@bottle/log";
import { CommanderError } from "commander";
import { commanderExit } from "./options.ts";

/** The exit code of invalid options in every bottle package's error table. */
export const USAGE_EXIT = 2;

/**
 * The exit code for `error`: a bottle error's own (from its package's table); 0 after
 * `--help` or `--version`; {@link USAGE_EXIT} for any other command-line error; 1 otherwise.
 */
export function exitCodeOf(error: unknown): number {
  if (isBottleError(error)) return error.exitCode;
  return commanderExit(error, USAGE_EXIT) ?? 1;
}

/**
 * Reports what ended a command and returns {@link exitCodeOf} it. A bottle error prints as
 * `CODE: message` on stderr (the message never carries a secret); commander printed its own
 * already; anything else is logged with its stack (or, before there is a logger, named in
 * one line as `BTL_INTERNAL`, followed by its stack when `debug` is set: `BOTTLE_DEBUG=1`).
 */
export function reportFailure(
  error: unknown,
  out: {
    readonly stderr: { write(text: string): unknown };
    readonly logger?: Logger;
    readonly debug?: boolean;
  },
): number {
  if (isBottleError(error)) out.stderr.write(`${error.code}: ${error.message}\n`);
  else if (error instanceof CommanderError) {
    // Printed by commander (outputError), or --help / --version output.
  } else if (out.logger !== undefined) out.logger.error({ err: error }, "unexpected failure");
  else {
    out.stderr.write(`BTL_INTERNAL: unexpected failure (${errorName(error)})\n`);
    if (out.debug) out.stderr.write(`${(error as Error)?.stack ?? String(error)}\n`);
  }
  return exitCodeOf(error);
}

/** The error's code or class name: safe to log (never a message, which could quote data). */
export function errorName(error: unknown): string {
  const { code, name } = (error ?? {}) as { code?: unknown; name?: unknown };
  return typeof code === "string" ? code : typeof name === "string" ? name : "unknown";
}
