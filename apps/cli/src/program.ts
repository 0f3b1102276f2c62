/** The `bottle` command line, as a function of its arguments and its I/O (no globals). */
import { createRequire } from "node:module";
import { withOutput } from "@bottle/sidecar";
import { Command } from "commander";
import { type CliIo, type CommandContext, EXIT_CODES, report } from "./commands/context.ts";
import { downCommand } from "./commands/down.ts";
import { logsCommand } from "./commands/logs.ts";
import { planCommand } from "./commands/plan.ts";
import { psCommand } from "./commands/ps.ts";
import { runCommand } from "./commands/run.ts";
import { schemaCommand } from "./commands/schema.ts";
import { upCommand } from "./commands/up.ts";
import { validateCommand } from "./commands/validate.ts";

export type { CliIo } from "./commands/context.ts";

const require = createRequire(import.meta.url);
const VERSION = (require("../package.json") as { version: string }).version;

/** Runs the CLI with `argv` (without node and script) and returns the exit code. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  let exitCode = 0;
  const ctx: CommandContext = {
    io,
    exit: (code) => {
      exitCode = Math.max(exitCode, code);
    },
  };
  const program = new Command("bottle")
    .description("Run AI coding agents in bottles that never hold a real credential.")
    .version(VERSION, "-V, --version", "print the version")
    .helpOption("-h, --help", "show help")
    .helpCommand("help [command]", "show help for a command")
    .showHelpAfterError("(run with --help for usage)")
    .addHelpText("after", EXIT_CODES);
  withOutput(program, io, "BTL_CLI_USAGE");
  for (const add of [
    validateCommand,
    planCommand,
    upCommand,
    runCommand,
    psCommand,
    logsCommand,
    downCommand,
    schemaCommand,
  ])
    add(program, ctx);

  try {
    await program.parseAsync([...argv], { from: "user" });
  } catch (error) {
    ctx.exit(report(error, io));
  }
  return exitCode;
}
