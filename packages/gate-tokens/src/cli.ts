#!/usr/bin/env node
// The `bottle-gate-tokens` executable: the only place that touches process globals.
import { text } from "node:stream/consumers";
import { runTokensCli } from "./program.ts";

process.exitCode = await runTokensCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  readStdin: () => text(process.stdin),
});
