#!/usr/bin/env node
// The `bottle-scan` executable: the only place that touches process globals.
import { runScan } from "./program.ts";

process.exitCode = await runScan({
  argv: process.argv.slice(2),
  env: process.env,
  cwd: process.cwd(),
  stdout: process.stdout,
  stderr: process.stderr,
});
