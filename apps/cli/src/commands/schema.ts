/** `bottle schema`: the manifest's JSON Schema, for editors and CI. */
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import type { Command } from "commander";
import { type CommandContext, EXIT_CODES } from "./context.ts";

const require = createRequire(import.meta.url);

export function schemaCommand(program: Command, ctx: CommandContext): void {
  program
    .command("schema")
    .description("print the manifest's JSON Schema (for editors and CI)")
    .addHelpText(
      "after",
      `\nExamples:\n  bottle schema > bottle.schema.json     # for editors: $schema: ./bottle.schema.json\n${EXIT_CODES}`,
    )
    .action(async () => {
      ctx.io.stdout.write(await readFile(require.resolve("@bottle/manifest/schema.json"), "utf8"));
    });
}
