#!/usr/bin/env node
// The `bottle` executable: the only place that touches process globals.
import module from "node:module";
import { exitIfNodeTooOld } from "@bottle/sidecar/node-version";

// Before anything that needs a newer Node.js loads (node:sqlite, the compile cache).
exitIfNodeTooOld("bottle", process);
// Start-up is most of a short command's time: Node keeps the compiled code of bottle's modules
// (in its temporary directory) for the next run.
module.enableCompileCache();
const { runCli } = await import("./program.ts");

process.exitCode = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  process: {
    stdin: process.stdin,
    stdout: process.stdout,
    cwd: process.cwd(),
    onSignal(handler) {
      const signals = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
      for (const signal of signals) process.on(signal, handler);
      return () => {
        for (const signal of signals) process.off(signal, handler);
      };
    },
  },
});
