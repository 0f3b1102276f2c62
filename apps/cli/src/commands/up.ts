/** `bottle up FILE`: the sidecars of a bottle, started and ready, until `bottle down`. */

import { join } from "node:path";
import { createInterface } from "node:readline/promises";
import type { Command } from "commander";
import { type Bottle, bringUp, SOCKETS } from "../bottle/up.ts";
import { CliError } from "../errors.ts";
import { createProgress, type Progress } from "../progress.ts";
import { type CliProcess, type CommandContext, EXIT_CODES } from "./context.ts";

/** The flags `up` and `run` share. */
export interface UpFlags {
  name?: string;
  workspace?: string;
  yes?: boolean;
  json?: boolean;
  backend?: string;
}

/** Adds the flags `up` and `run` share. */
export function upOptions(command: Command): Command {
  return command
    .argument("<file>", "manifest file (YAML or JSON)")
    .option("--name <name>", "the bottle's name (default: the manifest's name, made unique)")
    .option("--workspace <dir>", "the directory the agent works in (default: this one)")
    .option("-y, --yes", "bring the bottle up without asking (needed without a terminal)")
    .option(
      "--backend <backend>",
      "sandbox (bubblewrap, the default) or docker (containers on DOCKER_HOST's engine)",
      "sandbox",
    )
    .option("--json", "progress as JSON lines on stderr");
}

/** The process parts a bottle command needs; a CliError when the caller passed none. */
export function processOf(ctx: CommandContext): CliProcess {
  const proc = ctx.io.process;
  if (proc === undefined) throw new CliError("BTL_CLI_USAGE", "this command needs a process");
  return proc;
}

/** Progress on stderr: JSON with `--json`, a spinner on a terminal, plain lines otherwise. */
export function progressOf(ctx: CommandContext, json: boolean | undefined): Promise<Progress> {
  const mode = json ? "json" : ctx.io.stderr.isTTY ? "tty" : "plain";
  return createProgress(mode, ctx.io.stderr);
}

/** Brings the bottle of `file` up, asking on the terminal unless `--yes`. */
export async function bringUpFrom(
  file: string,
  flags: UpFlags,
  ctx: CommandContext,
  mode: "run" | "up",
  progress: Progress,
): Promise<Bottle> {
  const proc = processOf(ctx);
  const terminal = proc.stdin.isTTY === true && ctx.io.stderr.isTTY === true;
  const backend = flags.backend ?? "sandbox";
  if (backend !== "sandbox" && backend !== "docker") {
    throw new CliError("BTL_CLI_USAGE", `--backend ${backend}: expected sandbox or docker`);
  }
  return bringUp({
    backend,
    file,
    ...(flags.name === undefined ? {} : { name: flags.name }),
    ...(flags.workspace === undefined ? {} : { workspace: flags.workspace }),
    yes: flags.yes === true,
    env: ctx.io.env,
    cwd: proc.cwd,
    progress,
    say: (text) => ctx.io.stderr.write(text),
    confirm: terminal
      ? async (question) => {
          const rl = createInterface({
            input: proc.stdin,
            output: ctx.io.stderr as NodeJS.WritableStream,
          });
          try {
            return /^y(?:es)?$/i.test((await rl.question(question)).trim());
          } finally {
            rl.close();
          }
        }
      : null,
    mode,
  });
}

export function upCommand(program: Command, ctx: CommandContext): void {
  upOptions(program.command("up"))
    .description("start a bottle's sidecars and leave them running until `bottle down`")
    .addHelpText(
      "after",
      `
Examples:
  bottle up bottle.yaml                  preflight, confirm, start; prints the bottle's name
  bottle up bottle.yaml --name task-42 --yes
  bottle ps                              what runs
  bottle down task-42                    stop it, revoke its token and deploy keys
${EXIT_CODES}`,
    )
    .action(async (file: string, flags: UpFlags) => {
      const progress = await progressOf(ctx, flags.json);
      const bottle = await bringUpFrom(file, flags, ctx, "up", progress);
      const { name } = bottle.record;
      progress.event("up", { name, sockets: bottle.paths.sockets });
      const lines = [`bottle ${name} is up; the agent's sidecars listen on:`];
      if (bottle.gate) lines.push(`  git gate  ${join(bottle.paths.sockets, SOCKETS.gate)}`);
      if (bottle.proxy) lines.push(`  proxy     ${join(bottle.paths.sockets, SOCKETS.proxy)}`);
      lines.push(`stop it with: bottle down ${name}`);
      ctx.io.stdout.write(`${lines.join("\n")}\n`);
    });
}
