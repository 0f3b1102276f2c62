#!/usr/bin/env node
import { enableCompileCache } from "node:module";
// The `bottle-gate-tokens` executable: the only place that touches process globals.
import { text } from "node:stream/consumers";

// Node keeps the compiled code of the modules (in its temporary directory) for the next start.
enableCompileCache();
const { runTokensCli } = await import("./program.ts");

process.exitCode = await runTokensCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  readStdin: () => text(process.stdin),
});
