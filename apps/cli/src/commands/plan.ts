/** `bottle plan FILE`: what the bottle would run, as text or JSON (never a secret value). */
import { loadManifest } from "@bottle/manifest";
import type { Command } from "commander";
import { formatPlan } from "../format.ts";
import { planBottle } from "../plan.ts";
import { type CommandContext, EXIT_CODES, FILE_CHECKS } from "./context.ts";

export function planCommand(program: Command, ctx: CommandContext): void {
  program
    .command("plan")
    .description(
      "show what the bottle would run: repos, upstreams, routes, host variables (never values)",
    )
    .argument("<file>", "manifest file (YAML or JSON)")
    .option("--json", "print the plan as JSON")
    .option(FILE_CHECKS.flag, FILE_CHECKS.help)
    .addHelpText(
      "after",
      `\nExamples:\n  bottle plan bottle.yaml\n  bottle plan --json bottle.yaml | jq .host_env\n${EXIT_CODES}`,
    )
    .action(async (file: string, options: { json?: boolean; fileChecks: boolean }) => {
      const manifest = await loadManifest(file, { checkFiles: options.fileChecks });
      const plan = planBottle(manifest, ctx.io.env);
      ctx.io.stdout.write(
        options.json ? `${JSON.stringify(plan, null, 2)}\n` : formatPlan(plan, file),
      );
    });
}
