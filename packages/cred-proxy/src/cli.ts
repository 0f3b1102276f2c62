#!/usr/bin/env node
// The `bottle-cred-proxy` executable: the only place that touches process globals.
import { enableCompileCache } from "node:module";

// Node keeps the compiled code of the modules (in its temporary directory) for the next start.
enableCompileCache();
const { runCredProxy } = await import("./program.ts");

process.exitCode = await runCredProxy({
  argv: process.argv.slice(2),
  env: process.env,
  pid: process.pid,
  stdout: process.stdout,
  stderr: process.stderr,
  stderrFd: 2,
  onSignal: (signal, handler) => process.on(signal, handler),
});
