#!/usr/bin/env node
// The `bottle-scan` executable: the only place that touches process globals.
import module from "node:module";
import { exitIfNodeTooOld } from "@bottle/sidecar/node-version";

// Before anything that needs a newer Node.js loads (node:sqlite, the compile cache).
exitIfNodeTooOld("bottle-scan", process);
// Node keeps the compiled code of the modules (in its temporary directory) for the next start.
module.enableCompileCache();
const { runScan } = await import("./program.ts");

process.exitCode = await runScan({
  argv: process.argv.slice(2),
  env: process.env,
  cwd: process.cwd(),
  stdout: process.stdout,
  stderr: process.stderr,
});
