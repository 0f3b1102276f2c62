#!/usr/bin/env node
// The `bottle-scan` executable: the only place that touches process globals.
import { enableCompileCache } from "node:module";

// Node keeps the compiled code of the modules (in its temporary directory) for the next start.
enableCompileCache();
const { runScan } = await import("./program.ts");

process.exitCode = await runScan({
  argv: process.argv.slice(2),
  env: process.env,
  cwd: process.cwd(),
  stdout: process.stdout,
  stderr: process.stderr,
});
