export type { ConnectionCap } from "./connections.ts";
export { capConnections, DROP_LOG_INTERVAL_MS } from "./connections.ts";
export type { ListenError, ListenTarget } from "./listen.ts";
export { listenOn, systemdListenFd } from "./listen.ts";
export type { CommandOutput } from "./options.ts";
export { commanderExit, intOption, withOutput } from "./options.ts";
export { DEFAULT_PORTS } from "./ports.ts";
