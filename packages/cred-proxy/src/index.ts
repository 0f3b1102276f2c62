export type { ProxyErrorCode } from "./errors.ts";
export { codes, PROXY_ERRORS, ProxyError } from "./errors.ts";
export type { ListenTarget } from "./listen.ts";
export type { CredProxyPlan, RouteEntry, RoutesFile } from "./plan.ts";
export { prepareCredProxy, proxyTokenEnv } from "./plan.ts";
export type { ProxyAuth, ProxyRoute } from "./routes.ts";
export { loadRoutes, parseRoutes } from "./routes.ts";
export type { CredProxy, CredProxyOptions } from "./server.ts";
export { createCredProxy } from "./server.ts";
