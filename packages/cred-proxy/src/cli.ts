#!/usr/bin/env -S node --max-semi-space-size=1 --no-concurrent-recompilation
// The `bottle-cred-proxy` executable: the only place that touches process globals.
import { enableCompileCache } from "node:module";

// Node keeps the compiled code of the modules (in its temporary directory) for the next start.
enableCompileCache();
const { runCredProxy } = await import("./program.ts");
const { sidecarProcess } = await import("@bottle/sidecar");

process.exitCode = await runCredProxy({ ...sidecarProcess(process), stderrFd: 2 });
