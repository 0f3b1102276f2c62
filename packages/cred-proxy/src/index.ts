export type { ListenTarget } from "@bottle/sidecar";
export type { ProxyErrorCode } from "./errors.ts";
export { codes, PROXY_ERRORS, ProxyError } from "./errors.ts";
export type { CredProxyPlan, RouteEntry, RoutesFile, TokmanEntry, TokmanPlan } from "./plan.ts";
export { prepareCredProxy, proxyTokenEnv } from "./plan.ts";
export type { ProxyAuth, ProxyRoute, ProxyTokman } from "./routes.ts";
export { loadRoutes, parseRoutes } from "./routes.ts";
export type { CredProxy, CredProxyOptions } from "./server.ts";
export { createCredProxy } from "./server.ts";
export type {
  TokmanFetch,
  TokmanSettings,
  TokmanSource,
  TokmanSourceOptions,
} from "./tokman.ts";
export { createTokmanSource, TOKMAN_KEY_ENV, TOKMAN_URL_ENV } from "./tokman.ts";
