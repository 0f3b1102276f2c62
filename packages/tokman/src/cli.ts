#!/usr/bin/env node
// The `bottle-tokman` executable: the only place that touches process globals.
import { enableCompileCache } from "node:module";

// Node keeps the compiled code of the modules (in its temporary directory) for the next start.
enableCompileCache();
const { runTokman } = await import("./program.ts");

process.exitCode = await runTokman({
  argv: process.argv.slice(2),
  env: process.env,
  pid: process.pid,
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
  onSignal: (signal, handler) => process.on(signal, handler),
});
