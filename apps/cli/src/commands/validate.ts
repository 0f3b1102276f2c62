/** `bottle validate FILE…`: schema, cross-field rules and secret files of each manifest. */
import { expandRoutes, loadManifest } from "@bottle/manifest";
import type { Command } from "commander";
import { type CommandContext, EXIT_CODES, FILE_CHECKS, report } from "./context.ts";

export function validateCommand(program: Command, ctx: CommandContext): void {
  program
    .command("validate")
    .description("check manifests: schema, cross-field rules, secret files")
    .argument("<file...>", "manifest files (YAML or JSON)")
    .option(FILE_CHECKS.flag, FILE_CHECKS.help)
    .addHelpText(
      "after",
      `\nExamples:\n  bottle validate bottle.yaml examples/*.yaml\n  bottle validate --no-file-checks bottle.yaml   # on a machine without the key files\n${EXIT_CODES}`,
    )
    .action(async (files: string[], options: { fileChecks: boolean }) => {
      // Every file is checked and reported; the exit code is the worst one seen.
      for (const file of files) {
        try {
          const m = await loadManifest(file, { checkFiles: options.fileChecks });
          const repos = Object.keys(m.git_gate?.repos ?? {}).length;
          const routes = expandRoutes(m).length;
          ctx.io.stdout.write(
            `ok: ${file} (project ${m.name}: ${repos} repositories, ${routes} proxy routes)\n`,
          );
        } catch (error) {
          ctx.exit(report(error, ctx.io));
        }
      }
    });
}
