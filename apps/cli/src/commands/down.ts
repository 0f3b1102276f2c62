/** `bottle down NAME|--all`: stop bottles, revoke what they were given, remove their files. */
import type { Command } from "commander";
import {
  bottlePaths,
  listBottles,
  readRecord,
  removeBottleDir,
  stateRoot,
} from "../bottle/state.ts";
import { cleanOrphans, teardown } from "../bottle/up.ts";
import { CliError } from "../errors.ts";
import { type CommandContext, EXIT_CODES } from "./context.ts";
import { progressOf } from "./up.ts";

export function downCommand(program: Command, ctx: CommandContext): void {
  program
    .command("down")
    .description("stop bottles: sidecars, gate tokens, deploy keys, stage, sockets and logs")
    .argument("[name]", "the bottle (see `bottle ps`)")
    .option("--all", "every bottle")
    .option("--json", "progress as JSON lines on stderr")
    .addHelpText(
      "after",
      `
Examples:
  bottle down task-42
  bottle down --all
${EXIT_CODES}`,
    )
    .action(async (name: string | undefined, flags: { all?: boolean; json?: boolean }) => {
      if ((name === undefined) === (flags.all !== true)) {
        throw new CliError("BTL_CLI_USAGE", "name one bottle, or pass --all");
      }
      const progress = await progressOf(ctx, flags.json);
      const root = stateRoot(ctx.io.env);
      await cleanOrphans(root, ctx.io.env, progress);
      const names = name === undefined ? listBottles(root) : [name];
      for (const each of names) {
        const paths = bottlePaths(root, each);
        if (readRecord(paths) === null && !listBottles(root).includes(each)) {
          throw new CliError("BTL_CLI_NO_BOTTLE", `no bottle ${each} (see \`bottle ps\`)`);
        }
        await teardown(paths, ctx.io.env, progress);
        removeBottleDir(paths);
        ctx.io.stdout.write(`bottle ${each}: down\n`);
      }
    });
}
