export type { AccessHookOptions, HookResult } from "./access-hook.ts";
export { createAccessHook, splitCommand } from "./access-hook.ts";
export { codes, GATE_ERRORS, GateError } from "./errors.ts";
export type { ListenTarget } from "./listen.ts";
export { systemdListenFd } from "./listen.ts";
export type { GitRoute } from "./routes.ts";
export { parseGitRoute } from "./routes.ts";
export type { GateServer, GateServerOptions } from "./server.ts";
export { createGateServer } from "./server.ts";
