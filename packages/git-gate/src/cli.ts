#!/usr/bin/env node
// The `bottle-git-gate` executable: the only place that touches process globals.
import { enableCompileCache } from "node:module";

// Node keeps the compiled code of the modules (in its temporary directory) for the next start.
enableCompileCache();
const { runGitGate } = await import("./program.ts");

process.exitCode = await runGitGate({
  argv: process.argv.slice(2),
  env: process.env,
  pid: process.pid,
  cwd: process.cwd(),
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
  onSignal: (signal, handler) => process.on(signal, handler),
});
