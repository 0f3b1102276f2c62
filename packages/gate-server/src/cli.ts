#!/usr/bin/env node
// The `bottle-gate` executable: the only place that touches process globals.
import { enableCompileCache } from "node:module";

// Node keeps the compiled code of the modules (in its temporary directory) for the next start.
enableCompileCache();
const { runGate } = await import("./program.ts");

process.exitCode = await runGate({
  argv: process.argv.slice(2),
  env: process.env,
  pid: process.pid,
  execPath: process.execPath,
  script: process.argv[1] ?? "",
  stdout: process.stdout,
  stderr: process.stderr,
  onSignal: (signal, handler) => process.on(signal, handler),
});
