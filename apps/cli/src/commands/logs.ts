/** `bottle logs NAME`: the sidecars' logs (JSON lines), kept until `bottle down`. */
import { closeSync, existsSync, openSync, readdirSync, readSync, statSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { sleep } from "../bottle/sidecars.ts";
import { bottlePaths, isAlive, readRecord, stateRoot } from "../bottle/state.ts";
import { engineOf, writeContainerLogs } from "../docker/engine.ts";
import { CliError } from "../errors.ts";
import { type CommandContext, EXIT_CODES } from "./context.ts";
import { processOf } from "./up.ts";

export function logsCommand(program: Command, ctx: CommandContext): void {
  program
    .command("logs")
    .description("print a bottle's sidecar logs")
    .argument("<name>", "the bottle (see `bottle ps`)")
    .option("--sidecar <name>", "only this sidecar's log: gate or proxy")
    .option("-f, --follow", "keep printing as the logs grow, until the bottle stops or Ctrl-C")
    .addHelpText(
      "after",
      `
Examples:
  bottle logs task-42
  bottle logs task-42 --sidecar gate --follow
${EXIT_CODES}`,
    )
    .action(async (name: string, flags: { sidecar?: string; follow?: boolean }) => {
      const paths = bottlePaths(stateRoot(ctx.io.env), name);
      if (!existsSync(paths.logs)) {
        throw new CliError("BTL_CLI_NO_BOTTLE", `no bottle ${name} (see \`bottle ps\`)`);
      }
      const current = readRecord(paths);
      if (current?.backend === "docker" && current.state !== "stopped") {
        // A running docker bottle's logs are its containers' (kept in files at teardown).
        const abort = new AbortController();
        const off = processOf(ctx).onSignal(() => abort.abort());
        try {
          await writeContainerLogs(engineOf(ctx.io.env), paths, name, {
            ...(flags.sidecar === undefined ? {} : { only: flags.sidecar }),
            follow: flags.follow === true,
            write: (text) => ctx.io.stdout.write(text),
            signal: abort.signal,
          });
        } finally {
          off();
        }
        return;
      }
      const available = readdirSync(paths.logs)
        .filter((f) => f.endsWith(".log"))
        .map((f) => f.slice(0, -4))
        .sort();
      const names = flags.sidecar === undefined ? available : [flags.sidecar];
      if (flags.sidecar !== undefined && !available.includes(flags.sidecar)) {
        throw new CliError(
          "BTL_CLI_USAGE",
          `bottle ${name} has no ${flags.sidecar} log (it has: ${available.join(", ") || "none"})`,
        );
      }
      const offsets = new Map(names.map((n) => [n, 0]));
      const prefix = names.length > 1;
      const drain = () => {
        for (const each of names) {
          const file = join(paths.logs, `${each}.log`);
          const from = offsets.get(each) ?? 0;
          const size = existsSync(file) ? statSync(file).size : 0;
          if (size <= from) continue;
          const fd = openSync(file, "r");
          const buffer = Buffer.alloc(size - from);
          readSync(fd, buffer, 0, buffer.length, from);
          closeSync(fd);
          const text = buffer.toString("utf8");
          const end = text.lastIndexOf("\n") + 1; // whole lines only
          offsets.set(each, from + Buffer.byteLength(text.slice(0, end)));
          for (const line of text.slice(0, end).split("\n").slice(0, -1)) {
            ctx.io.stdout.write(prefix ? `${each.padEnd(6)}| ${line}\n` : `${line}\n`);
          }
        }
      };
      drain();
      if (!flags.follow) return;
      let stopped = false;
      const off = processOf(ctx).onSignal(() => {
        stopped = true;
      });
      try {
        while (!stopped) {
          await sleep(200);
          drain();
          const record = readRecord(paths);
          const running =
            record !== null &&
            record.state !== "stopped" &&
            (record.sidecars.some(isAlive) || (record.owner !== null && isAlive(record.owner)));
          if (!running) break;
        }
        drain();
      } finally {
        off();
      }
    });
}
