/** `bottle ps`: the bottles of this user, their sidecars and their age. */
import type { Command } from "commander";
import {
  type BottleRecord,
  bottlePaths,
  isAlive,
  listBottles,
  readRecord,
  stateRoot,
} from "../bottle/state.ts";
import { cleanOrphans } from "../bottle/up.ts";
import { containerStates, engineOf } from "../docker/engine.ts";
import { type CommandContext, EXIT_CODES } from "./context.ts";
import { progressOf } from "./up.ts";

/** One row of `bottle ps --json`. */
export interface PsRow {
  readonly name: string;
  readonly manifest: string;
  readonly backend: string;
  readonly state: string;
  readonly age_seconds: number;
  readonly sidecars: ReadonlyArray<{ name: string; pid: number; state: "running" | "exited" }>;
  readonly agent: { pid: number; state: "running" | "exited" } | null;
  readonly ended: BottleRecord["ended"] | null;
}

export function psCommand(program: Command, ctx: CommandContext): void {
  program
    .command("ps")
    .description("list bottles: name, manifest, backend, sidecars with pids and state, age")
    .option("--json", "one JSON array")
    .addHelpText("after", `\nExample:\n  bottle ps --json | jq '.[].name'\n${EXIT_CODES}`)
    .action(async (flags: { json?: boolean }) => {
      const root = stateRoot(ctx.io.env);
      await cleanOrphans(root, ctx.io.env, await progressOf(ctx, flags.json));
      const rows: PsRow[] = [];
      for (const name of listBottles(root)) {
        const paths = bottlePaths(root, name);
        const record = readRecord(paths);
        if (record === null) continue;
        // A docker bottle's processes are its containers: the engine says whether they run.
        const states =
          record.backend === "docker" && record.state !== "stopped"
            ? await containerStates(engineOf(ctx.io.env), paths, name).catch(() => new Map())
            : null;
        rows.push(rowOf(record, states));
      }
      if (flags.json) {
        ctx.io.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
        return;
      }
      if (rows.length === 0) {
        ctx.io.stdout.write("no bottles\n");
        return;
      }
      const table = [["NAME", "STATE", "AGE", "BACKEND", "SIDECARS", "MANIFEST"]];
      for (const row of rows) {
        const sidecars = row.sidecars.map(
          (s) => `${s.name}:${s.pid}${s.state === "exited" ? "(exited)" : ""}`,
        );
        if (row.agent) sidecars.push(`agent:${row.agent.pid}`);
        table.push([
          row.name,
          row.state,
          age(row.age_seconds),
          row.backend,
          sidecars.join(" ") || "-",
          row.manifest,
        ]);
      }
      const widths =
        table[0]?.map((_, i) => Math.max(...table.map((r) => (r[i] ?? "").length))) ?? [];
      for (const r of table) {
        ctx.io.stdout.write(
          `${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join("  ")}\n`,
        );
      }
    });
}

function rowOf(record: BottleRecord, containers: Map<string, "running" | "exited"> | null): PsRow {
  const state = (ref: { pid: number; start: string }, role: string): "running" | "exited" =>
    containers === null
      ? isAlive(ref)
        ? "running"
        : "exited"
      : (containers.get(role) ?? "exited");
  const degraded =
    record.state === "running" && record.sidecars.some((s) => state(s, s.name) === "exited");
  return {
    name: record.name,
    manifest: record.manifest,
    backend: record.backend,
    state: degraded ? "degraded" : record.state,
    age_seconds: Math.round((Date.now() - Date.parse(record.createdAt)) / 1000),
    sidecars: record.sidecars.map((s) => ({ name: s.name, pid: s.pid, state: state(s, s.name) })),
    agent: record.agent ? { pid: record.agent.pid, state: state(record.agent, "agent") } : null,
    ended: record.ended ?? null,
  };
}

function age(seconds: number): string {
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)}h`;
  return `${Math.round(seconds / 86400)}d`;
}
