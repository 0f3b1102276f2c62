export type { AnswerFormat, ErrorAnswer, ErrorAnswerOptions } from "./answer.ts";
export { answerHealth, errorAnswer, rawErrorAnswer, writeErrorAnswer } from "./answer.ts";
export type { ConnectionCap } from "./connections.ts";
export { capConnections, DROP_LOG_INTERVAL_MS } from "./connections.ts";
export type { DetachOptions } from "./detach.ts";
export { DETACH_ENV, detach } from "./detach.ts";
export { errorName, exitCodeOf, reportFailure, USAGE_EXIT } from "./exit.ts";
export type { InFlight } from "./in-flight.ts";
export { trackInFlight } from "./in-flight.ts";
export type { ConnectionServing, InetdOptions } from "./inetd.ts";
export { serveInetd } from "./inetd.ts";
export type {
  OnSignal,
  ServeOptions,
  Serving,
  StopOptions,
  Stoppable,
  Stopped,
  StopSignal,
} from "./lifecycle.ts";
export {
  announceReady,
  DEFAULT_GRACE_MS,
  READY_FD_ENV,
  serveUntilStopped,
  untilStopped,
} from "./lifecycle.ts";
export type { ListenError, ListenFlags, ListenTarget } from "./listen.ts";
export { listenOn, listenTargetFrom, systemdListenFd } from "./listen.ts";
export { answerMalformedRequests } from "./malformed.ts";
export { nodeHttp } from "./node-http.ts";
export { SIDECAR_NODE_OPTIONS } from "./node-options.ts";
export type {
  CommandOutput,
  CommonDefaults,
  CommonFlags,
  CommonHelp,
  LogLevel,
  ServerLimits,
} from "./options.ts";
export {
  commanderExit,
  commonOptions,
  intOption,
  LOG_LEVELS,
  serverLimits,
  withOutput,
} from "./options.ts";
export { DEFAULT_PORTS } from "./ports.ts";
export type { SidecarProcess, SidecarService, SidecarSpec } from "./program.ts";
export { runSidecar, serveSidecar, sidecarProcess } from "./program.ts";
export type { RequestRecord } from "./request-record.ts";
export { logRequest, startRequestRecord } from "./request-record.ts";
