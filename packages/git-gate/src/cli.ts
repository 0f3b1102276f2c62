#!/usr/bin/env node
// The `bottle-git-gate` executable: the only place that touches process globals.
import module from "node:module";
import { exitIfNodeTooOld } from "@bottle/sidecar/node-version";

// Before anything that needs a newer Node.js loads (node:sqlite, the compile cache).
exitIfNodeTooOld("bottle-git-gate", process);
// Node keeps the compiled code of the modules (in its temporary directory) for the next start.
module.enableCompileCache();
const { runGitGate } = await import("./program.ts");
const { sidecarProcess } = await import("@bottle/sidecar");

process.exitCode = await runGitGate({
  ...sidecarProcess(process),
  cwd: process.cwd(),
  stdin: process.stdin,
});
