/** The error table of the bottle CLI (manifest errors keep their own codes and exit codes). */
import { BottleError, COMMON_ERRORS, defineErrors } from "@bottle/errors";

export const { table: CLI_ERRORS, codes } = defineErrors({
  BTL_CLI_USAGE: {
    status: 400,
    exit: 2,
    meaning: "The command line is wrong: an unknown command or option, or a missing argument.",
  },
  ...COMMON_ERRORS,
});

/** An error of the CLI itself. */
export class CliError extends BottleError {
  constructor(code: keyof typeof CLI_ERRORS, message: string, options: { cause?: unknown } = {}) {
    super(code, message, CLI_ERRORS[code], options);
    this.name = "CliError";
  }
}
