#!/usr/bin/env -S node --max-semi-space-size=1 --no-concurrent-recompilation
// The `bottle-gate` executable: the only place that touches process globals.
import module from "node:module";
import { exitIfNodeTooOld } from "@bottle/sidecar/node-version";

// Before anything that needs a newer Node.js loads (node:sqlite, the compile cache).
exitIfNodeTooOld("bottle-gate", process);
// Node keeps the compiled code of the modules (in its temporary directory) for the next start.
module.enableCompileCache();
const { runGate } = await import("./program.ts");
const { sidecarProcess } = await import("@bottle/sidecar");

process.exitCode = await runGate({
  ...sidecarProcess(process),
  execPath: process.execPath,
  script: process.argv[1] ?? "",
});
