#!/usr/bin/env node
// The `bottle-gate-tokens` executable: the only place that touches process globals.
import module from "node:module";
import { text } from "node:stream/consumers";
import { exitIfNodeTooOld } from "@bottle/sidecar/node-version";

// Before anything that needs a newer Node.js loads (node:sqlite, the compile cache).
exitIfNodeTooOld("bottle-gate-tokens", process);
// Node keeps the compiled code of the modules (in its temporary directory) for the next start.
module.enableCompileCache();
const { runTokensCli } = await import("./program.ts");

process.exitCode = await runTokensCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  readStdin: () => text(process.stdin),
});
