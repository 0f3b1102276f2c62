#!/usr/bin/env node
// Times the start-up of the CLI's bubblewrap sandbox: spawn to exit of a sandbox running `true`,
// with bwrap alone and with the forwarder (two forwarded ports), plus prepareSandbox itself.
import { existsSync, mkdirSync } from "node:fs";
import { availableParallelism, cpus, release } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { createWorkspace, parseBenchArgs, progress, runBench } from "../harness.mjs";
import { summarize } from "../stats.mjs";

const ROOT = join(import.meta.dirname, "../..");
const USAGE = "usage: node bench/sandbox/run.mjs [--runs N] [--json] [--from dist|src]\n";
const BUILT = existsSync(join(ROOT, "apps/cli/dist/sandbox/index.js"));
const { flags, runs: RUNS } = parseBenchArgs(USAGE, {
  runs: "20",
  options: { from: { type: "string", default: BUILT ? "dist" : "src" } },
});
if (flags.from !== "src" && flags.from !== "dist") {
  process.stderr.write(`bench: expected \`--from\` to be src or dist, got ${flags.from}\n`);
  process.exit(2);
}

const CASES = {
  bwrap: { forwards: [], what: "bwrap alone (no forward, no home file)" },
  forwarder: {
    forwards: [
      { port: 9420, socket: "gate.sock" },
      { port: 9421, socket: "proxy.sock" },
    ],
    what: "with the forwarder (two ports)",
  },
};

const workspace = createWorkspace("sandbox");

async function main() {
  const ext = flags.from === "src" ? "ts" : "js";
  const url = pathToFileURL(join(ROOT, "apps/cli", flags.from, `sandbox/index.${ext}`)).href;
  const { prepareSandbox } = await import(url);
  const dirs = {};
  for (const name of ["state", "workspace", "sockets"]) {
    dirs[name] = join(workspace.work, name);
    mkdirSync(dirs[name], { mode: 0o700 });
  }
  const results = {};
  for (const [name, { forwards }] of Object.entries(CASES)) {
    const prepare = [];
    const start = [];
    // One unmeasured run warms the page cache (bwrap, node, the shared libraries).
    for (let run = 0; run <= RUNS; run += 1) {
      const before = performance.now();
      const launch = await prepareSandbox({
        dir: dirs.state,
        workspace: dirs.workspace,
        workdir: "/workspace",
        socketsDir: dirs.sockets,
        forwards,
        env: {},
        homeFiles: {},
        roBinds: [],
        command: ["true"],
        terminal: "none",
      });
      const prepared = performance.now() - before;
      const result = await workspace.run(launch.file, launch.args, { env: launch.env });
      if (result.code !== 0) throw new Error(`the sandbox exited ${result.code}: ${result.stderr}`);
      if (run === 0) continue;
      prepare.push(prepared);
      start.push(result.ms);
    }
    results[name] = { prepareMs: summarize(prepare), startMs: summarize(start) };
    progress(`${name}: median ${results[name].startMs.median} ms`);
  }
  return {
    machine: { cpus: availableParallelism(), model: cpus()[0]?.model, kernel: release() },
    node: process.version,
    runs: RUNS,
    results,
  };
}

function report({ machine, node, runs, results }) {
  const lines = [
    `sandbox start-up, ${runs} runs each (${machine.cpus} CPUs, Linux ${machine.kernel}, Node ${node})`,
    "",
    "case                                         start: median   min    max   prepare: median",
  ];
  for (const [name, { what }] of Object.entries(CASES)) {
    const { startMs, prepareMs } = results[name];
    lines.push(
      `${what.padEnd(44)} ${`${startMs.median} ms`.padStart(14)} ${String(startMs.min).padStart(6)} ${String(startMs.max).padStart(6)} ${`${prepareMs.median} ms`.padStart(17)}`,
    );
  }
  return `${lines.join("\n")}\n`;
}

await runBench({ main, report, json: flags.json, workspace });
