/**
 * The credential proxy: a reverse proxy with fixed destinations. Each request is matched to a
 * route by its raw path prefix, client credentials are stripped, the route's token is injected,
 * and bodies stream both ways through a keep-alive pool per upstream origin. Redirects are
 * never followed; odd targets, methods and upgrades are refused before any upstream is contacted.
 */
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { createRequire } from "node:module";
import type { Duplex } from "node:stream";
import { rootCertificates } from "node:tls";
import { type Logger, silentLogger } from "@bottle/log";
import {
  answerHealth,
  answerMalformedRequests,
  capConnections,
  errorName,
  type ListenTarget,
  listenOn,
  nodeHttp,
  rawErrorAnswer,
  trackInFlight,
} from "@bottle/sidecar";
import type { Pool as UndiciPool } from "undici";
import { isAllowed, isGitPush } from "./access.ts";
import { PROXY_ERRORS, ProxyError } from "./errors.ts";
import { Exchange } from "./exchange.ts";
import { overridesMethod, upstreamHeaders } from "./headers.ts";
import { checkCa, checkInteger, checkTokens } from "./options.ts";
import { checkTarget, staysOnOrigin, upstreamPath } from "./path.ts";
import { MESSAGES, refuse, unfinishedBody } from "./respond.ts";
import { checkParsedRoutes, matchRoute, type ProxyRoute } from "./routes.ts";
import { createTokmanSources, type TokmanSettings } from "./tokman.ts";

// undici's Pool from its own module: the package's entry loads its whole API (fetch, WebSocket,
// caches, mocks: about 100 modules, 10 MiB more RSS), of which the proxy uses this class alone.
const Pool = createRequire(import.meta.url)("undici/lib/dispatcher/pool.js") as typeof UndiciPool;
type Pool = UndiciPool;

/** Options of {@link createCredProxy}; validated once at creation. */
export interface CredProxyOptions {
  /** Routes from `parseRoutes` or `loadRoutes`, validated there once; nothing hand-made. */
  readonly routes: readonly ProxyRoute[];
  /** Token values by slot (`BOTTLE_PROXY_TOKEN_0`); only the slots the routes name are kept. */
  readonly tokens: Readonly<Record<string, string | undefined>>;
  /** Extra CA certificates (PEM) trusted for https upstreams, on top of Node's root store. */
  readonly ca?: string | Buffer;
  readonly logger?: Logger;
  /** Silence allowed on either side (client socket, upstream headers and body); default 300 s. */
  readonly idleTimeoutMs?: number;
  /** Time for a client to send its request headers (default 30 s). */
  readonly headersTimeoutMs?: number;
  /** Time to connect (and finish TLS) to an upstream (default 10 s). */
  readonly connectTimeoutMs?: number;
  /** Requests proxied at once before 503 (default 128). */
  readonly maxConcurrent?: number;
  /** Open client connections; beyond this a new one is closed at once and counted (default 1024). */
  readonly maxConnections?: number;
  /** Where `NODE_TLS_REJECT_UNAUTHORIZED` is looked up (default `process.env`). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** tokman's URL and this proxy's caller key there: required when a route names `tokman`. */
  readonly tokman?: TokmanSettings;
}

/** A running proxy. */
export interface CredProxy {
  /** Listens and resolves to `http://127.0.0.1:PORT` or `unix:/path`. Throws BTL_PROXY_LISTEN. */
  listen(target?: ListenTarget): Promise<string>;
  /** Stops accepting, lets in-flight requests finish (cut after `graceMs`, default 30 s). */
  close(graceMs?: number): Promise<void>;
  address(): ReturnType<Server["address"]>;
  readonly server: Server;
}

const REFUSED_METHODS = new Set(["CONNECT", "TRACE", "TRACK"]);
const KEEP_ALIVE_MS = 60_000;

/**
 * Creates the proxy (not yet listening). Throws ProxyError BTL_PROXY_CONFIG (bad routes or
 * options, unreadable CA, NODE_TLS_REJECT_UNAUTHORIZED=0, a `tokman` route without the `tokman`
 * option) or BTL_PROXY_TOKEN (a route's slot or tokman's key is unset, empty or malformed; the
 * message names the slot, never the value).
 */
export function createCredProxy(options: CredProxyOptions): CredProxy {
  const env = options.env ?? process.env;
  if (env.NODE_TLS_REJECT_UNAUTHORIZED === "0") {
    throw new ProxyError(
      "BTL_PROXY_CONFIG",
      "NODE_TLS_REJECT_UNAUTHORIZED=0 switches off TLS verification for the whole process; unset it and pass the upstream's CA instead",
    );
  }
  const routes = checkParsedRoutes(options.routes);
  const tokens = checkTokens(routes, options.tokens);
  // GitHub App routes: one renewing source per repository and permission set (lazy: nothing is
  // fetched before the first request).
  const sources = createTokmanSources(routes, options.tokman, {
    ca: options.ca === undefined ? undefined : checkCa(options.ca),
    logger: options.logger,
  });
  /** The route's credential: its slot's value (a promise only while a renewing source fetches). */
  const credential = (route: ProxyRoute): string | Promise<string> => {
    if (route.tokman !== undefined) return sources.get(route);
    const token = tokens.get(route.tokenEnv);
    if (token === undefined) throw new Error("route without token");
    return token;
  };
  /** The upstream refused `token` (401): a GitHub App route's next request gets a new one. */
  const invalidate = (route: ProxyRoute, token: string): void => sources.invalidate(route, token);
  const log = options.logger ?? silentLogger;
  const idleTimeoutMs = checkInteger("idleTimeoutMs", options.idleTimeoutMs, 300_000);
  const headersTimeoutMs = checkInteger("headersTimeoutMs", options.headersTimeoutMs, 30_000);
  const connectTimeoutMs = checkInteger("connectTimeoutMs", options.connectTimeoutMs, 10_000);
  const maxConcurrent = checkInteger("maxConcurrent", options.maxConcurrent, 128, 65_536);
  const maxConnections = checkInteger("maxConnections", options.maxConnections, 1024, 1_048_576);
  const ca = options.ca === undefined ? undefined : checkCa(options.ca);

  // SECURITY: one pool per configured origin and no other: a request can only ever reach these.
  // No redirect interceptor is composed, so undici never follows a 3xx (item 6); HTTP/1.1 only,
  // with certificate checks forced on whatever the environment says (item 12).
  const pools = new Map<string, Pool>();
  for (const route of routes) {
    if (pools.has(route.origin)) continue;
    pools.set(
      route.origin,
      new Pool(route.origin, {
        connections: maxConcurrent,
        pipelining: 1,
        allowH2: false,
        connectTimeout: connectTimeoutMs,
        headersTimeout: idleTimeoutMs,
        bodyTimeout: idleTimeoutMs,
        keepAliveTimeout: 4_000,
        connect: { rejectUnauthorized: true, ...(ca ? { ca: [...rootCertificates, ca] } : {}) },
      }),
    );
  }

  const server = nodeHttp.createServer({
    headersTimeout: headersTimeoutMs,
    requestTimeout: 0, // SECURITY (item 9): no total limit; LLM streams and pushes run long
    keepAliveTimeout: Math.min(KEEP_ALIVE_MS, idleTimeoutMs),
    connectionsCheckingInterval: Math.max(100, Math.min(5_000, Math.floor(headersTimeoutMs / 2))),
    insecureHTTPParser: false, // SECURITY (item 8): the strict parser refuses CL+TE and friends
  });
  // A client waits silently while the proxy connects and the upstream thinks: its socket may
  // stay quiet for connect + idle before the proxy answers 502/504, so it gets that much.
  server.timeout = idleTimeoutMs + connectTimeoutMs + 1_000;
  // SECURITY: a cap on open connections (idle keep-alive ones included).
  const drops = capConnections(server, {
    max: maxConnections,
    log,
    code: "BTL_PROXY_TOO_MANY_CONNECTIONS",
  });
  const inFlight = trackInFlight(server);
  let closing: Promise<void> | undefined;
  let active = 0;

  server.on("request", (req, res) => serve(req, res, false));
  // SECURITY (item 16): `Expect: 100-continue` is answered by the proxy, after the method, the
  // path and the route were checked, so a client never uploads a body that is refused anyway.
  // The header is not forwarded (undici does not support it); the upstream sees a plain request.
  server.on("checkContinue", (req, res) => serve(req, res, true));
  // SECURITY (items 3, 8): no tunnels and no protocol switches through the proxy.
  server.on("connect", (req: IncomingMessage, socket: Duplex) => refuseSocket(req, socket));
  server.on("upgrade", (req: IncomingMessage, socket: Duplex) => refuseSocket(req, socket));
  answerMalformedRequests(server, log, inFlight);

  function refuseSocket(req: IncomingMessage, socket: Duplex): void {
    const code = "BTL_PROXY_METHOD";
    log.warn(
      { method: req.method, route: null, status: PROXY_ERRORS[code].status, code },
      "request",
    );
    socket.once("finish", () => socket.destroy());
    socket.on("error", () => socket.destroy());
    socket.end(rawErrorAnswer(PROXY_ERRORS, code, MESSAGES[code]));
  }

  function serve(req: IncomingMessage, res: ServerResponse, expectContinue: boolean): void {
    inFlight.track(req, res);
    const exchange = new Exchange(req, res, { logger: log, invalidate });
    try {
      handle(exchange, expectContinue);
    } catch (error) {
      log.error({ reqId: exchange.record.reqId, err: error }, "unexpected failure");
      refuse(res, exchange.record, "BTL_INTERNAL");
    }
  }

  function handle(exchange: Exchange, expectContinue: boolean) {
    const { req, res, record } = exchange;
    if (answerHealth(req, res)) return;
    if (REFUSED_METHODS.has(req.method ?? "")) return refuse(res, record, "BTL_PROXY_METHOD");
    if (req.headers.upgrade !== undefined) return refuse(res, record, "BTL_PROXY_METHOD");
    const target = checkTarget(req.url ?? "");
    if (!target.ok) {
      record.reason = target.problem;
      return refuse(res, record, "BTL_PROXY_BAD_PATH");
    }
    const route = matchRoute(routes, target.path);
    if (route === undefined) return refuse(res, record, "BTL_PROXY_NO_ROUTE");
    record.route = route.path;
    const path = upstreamPath(route, target.path, target.query);
    if (!staysOnOrigin(route, path)) {
      record.reason = "origin";
      return refuse(res, record, "BTL_PROXY_BAD_PATH");
    }
    // The path under the route, as the upstream's API sees it: `/repos/acme/api/pulls`.
    const rest = target.path.slice(route.path.length - 1);
    // SECURITY: pushes go through the git gate, where they are scanned; a route lets them
    // through only when it opts in (and the manifest refuses that for a gated upstream).
    if (!route.gitPush && isGitPush(rest, target.query)) {
      unfinishedBody(req, res);
      return refuse(res, record, "BTL_PROXY_PUSH_REFUSED");
    }
    // SECURITY: a route with allow rules passes only the methods and paths they name, so a
    // token with write scopes can be held to reads; a method override would dodge the check.
    if (route.allow !== undefined) {
      const problem = overridesMethod(req.rawHeaders)
        ? "method override"
        : isAllowed(route.allow, req.method ?? "", rest)
          ? undefined
          : "no rule";
      if (problem !== undefined) {
        record.reason = problem;
        unfinishedBody(req, res);
        return refuse(res, record, "BTL_PROXY_NOT_ALLOWED");
      }
    }
    if (closing !== undefined || active >= maxConcurrent) {
      return refuse(res, record, "BTL_PROXY_BUSY", { "retry-after": "1" });
    }
    active++;
    exchange.hold(() => {
      active--;
    });
    exchange.route = route;
    const token = credential(route);
    if (typeof token === "string") {
      if (expectContinue) res.writeContinue();
      return forward(exchange, route, path, token);
    }
    token.then(
      (value) => {
        if (res.destroyed) return;
        if (expectContinue) res.writeContinue();
        forward(exchange, route, path, value);
      },
      (error: unknown) => {
        record.upstreamError = errorName(error);
        unfinishedBody(req, res);
        refuse(res, record, "BTL_PROXY_CREDENTIAL");
      },
    );
  }

  /** Sends the request upstream with undici's dispatcher API; the exchange handles the answer. */
  function forward(exchange: Exchange, route: ProxyRoute, path: string, token: string) {
    const { req } = exchange;
    const pool = pools.get(route.origin);
    if (pool === undefined) throw new Error("route without pool");
    const headers = upstreamHeaders(req.rawHeaders, route, token);
    if (route.tokman) exchange.token = token;
    // SECURITY (item 8): the body is forwarded as Node's parser framed it; undici sends it with
    // the client's validated Content-Length, or chunked when the length is not known.
    const length = req.headers["content-length"];
    const hasBody =
      req.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0");
    pool.dispatch(
      { method: req.method ?? "GET", path, headers, body: hasBody ? req : null },
      exchange,
    );
  }

  return {
    server,
    listen: (target = { port: 0 }) =>
      listenOn(
        server,
        target,
        (message, options) => new ProxyError("BTL_PROXY_LISTEN", message, options),
      ),
    address: () => server.address(),
    close(graceMs = 30_000) {
      closing ??= (async () => {
        const timer = setTimeout(() => server.closeAllConnections(), graceMs);
        await inFlight.drain();
        clearTimeout(timer);
        drops.flush();
        sources.close();
        // Nothing is in flight: what is left are idle keep-alive connections.
        server.closeAllConnections();
        await Promise.all([...pools.values()].map((pool) => pool.destroy()));
      })();
      return closing;
    },
  };
}
