// The listener types of every sidecar, re-exported for callers of `gate.listen()`.
export type { ListenTarget } from "@bottle/sidecar";
export { systemdListenFd } from "@bottle/sidecar";
export type { AccessHookOptions, HookResult } from "./access-hook.ts";
export { createAccessHook } from "./access-hook.ts";
export { codes, GATE_ERRORS, GateError } from "./errors.ts";
export type { GateFlags } from "./gate-command.ts";
export { GATE_DEFAULTS, GATE_HELP, gateOptions, gateServerOptions } from "./gate-command.ts";
export type { GateProcess } from "./program.ts";
export { runGate } from "./program.ts";
export type { GitRoute } from "./routes.ts";
export { parseGitRoute } from "./routes.ts";
export type { GateServer, GateServerOptions } from "./server.ts";
export { createGateServer } from "./server.ts";
