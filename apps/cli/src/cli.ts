#!/usr/bin/env node
// The `bottle` executable: the only place that touches process globals.
import { runCli } from "./program.ts";

process.exitCode = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
});
