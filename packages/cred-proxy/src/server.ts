/**
 * The credential proxy: a reverse proxy with fixed destinations. Each request is matched to a
 * route by its raw path prefix, client credentials are stripped, the route's token is injected,
 * and bodies stream both ways through a keep-alive pool per upstream origin. Redirects are
 * never followed; odd targets, methods and upgrades are refused before any upstream is contacted.
 */
import { randomUUID } from "node:crypto";
import {
  createServer,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type Server,
  type ServerResponse,
  STATUS_CODES,
} from "node:http";
import type { Duplex } from "node:stream";
import { rootCertificates } from "node:tls";
import { type Logger, silentLogger } from "@bottle/log";
import { capConnections, type ListenTarget, listenOn } from "@bottle/sidecar";
import { type Dispatcher, Pool } from "undici";
import { isAllowed, isGitPush } from "./access.ts";
import { PROXY_ERRORS, ProxyError, type ProxyErrorCode } from "./errors.ts";
import { clientHeaders, overridesMethod, upstreamHeaders } from "./headers.ts";
import { checkCa, checkInteger, checkTokens } from "./options.ts";
import { checkTarget, staysOnOrigin, upstreamPath } from "./path.ts";
import { type Entry, errorName, MESSAGES, refuse, unfinishedBody } from "./respond.ts";
import { matchRoute, type ProxyRoute, parseRoutes } from "./routes.ts";
import { createTokmanSources, type TokmanSettings } from "./tokman.ts";

/** Options of {@link createCredProxy}; validated once at creation. */
export interface CredProxyOptions {
  /** Routes from `parseRoutes`/`loadRoutes` (checked again here). */
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
  const routes = parseRoutes(
    {
      version: 1,
      routes: options.routes.map((r) => ({
        path: r.path,
        upstream: r.upstream,
        auth: r.auth,
        ...(r.tokman === undefined ? { token_env: r.tokenEnv } : { tokman: r.tokman }),
        ...(r.gitPush ? { git_push: true } : {}),
        ...(r.allow === undefined ? {} : { allow: r.allow }),
      })),
    },
    "routes",
  );
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

  const server = createServer({
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
  const connections = capConnections(server, {
    max: maxConnections,
    log,
    code: "BTL_PROXY_TOO_MANY_CONNECTIONS",
  });

  let closing: Promise<void> | undefined;
  let inFlight = 0;
  let active = 0;
  let drained: (() => void) | undefined;
  const busySockets = new WeakSet<Duplex>();

  server.on("request", (req, res) => serve(req, res, false));
  // SECURITY (item 16): `Expect: 100-continue` is answered by the proxy, after the method, the
  // path and the route were checked, so a client never uploads a body that is refused anyway.
  // The header is not forwarded (undici does not support it); the upstream sees a plain request.
  server.on("checkContinue", (req, res) => serve(req, res, true));
  // SECURITY (items 3, 8): no tunnels and no protocol switches through the proxy.
  server.on("connect", (req: IncomingMessage, socket: Duplex) => refuseSocket(req, socket));
  server.on("upgrade", (req: IncomingMessage, socket: Duplex) => refuseSocket(req, socket));
  server.on("clientError", (error: NodeJS.ErrnoException, socket: Duplex) => {
    if (error.code === "ECONNRESET") {
      // The client reset its connection: nothing to answer and nothing malformed.
      log.debug({ parseError: error.code }, "client reset the connection");
      socket.destroy();
      return;
    }
    const status =
      error.code === "HPE_HEADER_OVERFLOW"
        ? 431
        : error.code === "ERR_HTTP_REQUEST_TIMEOUT"
          ? 408
          : 400;
    log.warn({ status, parseError: error.code ?? "unknown" }, "malformed request");
    // As Node's own handler: answer only when no response is under way on this connection.
    if (!socket.writable || busySockets.has(socket)) {
      socket.destroy();
      return;
    }
    socket.once("finish", () => socket.destroy());
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`,
    );
  });

  function refuseSocket(req: IncomingMessage, socket: Duplex): void {
    const code: ProxyErrorCode = "BTL_PROXY_METHOD";
    const status = PROXY_ERRORS[code].status;
    const body = JSON.stringify({ error: MESSAGES[code], code });
    log.warn({ method: req.method, route: null, status, code }, "request");
    socket.once("finish", () => socket.destroy());
    socket.on("error", () => socket.destroy());
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nX-Bottle-Code: ${code}\r\nConnection: close\r\n\r\n${body}`,
    );
  }

  function serve(req: IncomingMessage, res: ServerResponse, expectContinue: boolean): void {
    const exchange = new Exchange(req, res);
    try {
      handle(exchange, expectContinue);
    } catch (error) {
      log.error({ reqId: exchange.entry.reqId, err: error }, "unexpected failure");
      refuse(res, exchange.entry, "BTL_INTERNAL");
    }
  }

  /**
   * One request from arrival to the close of its response, and undici's handler of its upstream
   * exchange: the answer is written straight to the client, with no intermediate streams, and
   * backpressure by pausing the upstream socket while the client's is full.
   */
  class Exchange implements Dispatcher.DispatchHandler {
    readonly started = performance.now();
    readonly entry: Entry;
    /** Holds one of the `maxConcurrent` places. */
    counted = false;
    route: ProxyRoute | undefined;
    upstream: Dispatcher.DispatchController | undefined;
    /** The client went away before the answer was complete. */
    gone = false;
    /** The token a GitHub App route's request went with (a 401 for it renews the token). */
    token: string | undefined;

    readonly req: IncomingMessage;
    readonly res: ServerResponse;

    constructor(req: IncomingMessage, res: ServerResponse) {
      this.req = req;
      this.res = res;
      this.entry = {
        reqId: randomUUID().slice(0, 8),
        route: null,
        method: req.method,
        bytesIn: 0,
        bytesOut: 0,
      };
      inFlight++;
      busySockets.add(req.socket);
      res.once("close", this.closed);
    }

    readonly closed = (): void => {
      const { req, res, entry } = this;
      busySockets.delete(req.socket);
      if (this.counted) active--;
      if (!res.writableFinished) {
        entry.aborted = true;
        // A client that goes away aborts the upstream request (and frees its connection).
        this.gone = true;
        this.upstream?.abort(new Error("client went away"));
      }
      entry.status = res.statusCode;
      entry.durationMs = Math.round(performance.now() - this.started);
      // SECURITY (item 13): route, method, status, sizes and codes; never headers, path or query.
      if (res.statusCode >= 400 || entry.code !== undefined) log.warn(entry, "request");
      else log.info(entry, "request");
      if (--inFlight === 0 && drained) drained();
    };

    readonly resume = (): void => this.upstream?.resume();

    onRequestStart(controller: Dispatcher.DispatchController): void {
      this.upstream = controller;
      if (this.gone) controller.abort(new Error("client went away"));
    }

    onBodySent(chunk: Buffer): void {
      this.entry.bytesIn += chunk.length;
    }

    onResponseStart(
      controller: Dispatcher.DispatchController,
      statusCode: number,
      headers: Record<string, string | string[] | undefined>,
    ): void {
      if (statusCode === 401 && this.token) invalidate(this.route as ProxyRoute, this.token);
      // 1xx answers (other than the 101 of an upgrade, never asked for) are not relayed.
      if (statusCode < 200 || this.route === undefined) return;
      unfinishedBody(this.req, this.res);
      this.res.writeHead(
        statusCode,
        clientHeaders(headers, this.route, proxyBase(this.req)) as OutgoingHttpHeaders,
      );
      if (this.res.destroyed) controller.abort(new Error("client went away"));
    }

    onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
      this.entry.bytesOut += chunk.length;
      // SECURITY (items 10, 11): streamed with backpressure, chunk by chunk, never buffered.
      if (!this.res.write(chunk)) {
        controller.pause();
        this.res.once("drain", this.resume);
      }
    }

    onResponseEnd(): void {
      this.res.end();
    }

    onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
      if (this.gone) return;
      const { req, res, entry } = this;
      if (!res.headersSent) {
        unfinishedBody(req, res);
        failed(res, entry, error);
        return;
      }
      const code = (error as { code?: unknown }).code;
      entry.code = code === "UND_ERR_BODY_TIMEOUT" ? "BTL_PROXY_TIMEOUT" : "BTL_PROXY_UPSTREAM";
      entry.upstreamError = errorName(error);
      res.destroy();
    }
  }

  function handle(exchange: Exchange, expectContinue: boolean) {
    const { req, res, entry } = exchange;
    if (REFUSED_METHODS.has(req.method ?? "")) return refuse(res, entry, "BTL_PROXY_METHOD");
    if (req.headers.upgrade !== undefined) return refuse(res, entry, "BTL_PROXY_METHOD");
    const target = checkTarget(req.url ?? "");
    if (!target.ok) {
      entry.reason = target.problem;
      return refuse(res, entry, "BTL_PROXY_BAD_PATH");
    }
    const route = matchRoute(routes, target.path);
    if (route === undefined) return refuse(res, entry, "BTL_PROXY_NO_ROUTE");
    entry.route = route.path;
    const path = upstreamPath(route, target.path, target.query);
    if (!staysOnOrigin(route, path)) {
      entry.reason = "origin";
      return refuse(res, entry, "BTL_PROXY_BAD_PATH");
    }
    // The path under the route, as the upstream's API sees it: `/repos/acme/api/pulls`.
    const rest = target.path.slice(route.path.length - 1);
    // SECURITY: pushes go through the git gate, where they are scanned; a route lets them
    // through only when it opts in (and the manifest refuses that for a gated upstream).
    if (!route.gitPush && isGitPush(rest, target.query)) {
      unfinishedBody(req, res);
      return refuse(res, entry, "BTL_PROXY_PUSH_REFUSED");
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
        entry.reason = problem;
        unfinishedBody(req, res);
        return refuse(res, entry, "BTL_PROXY_NOT_ALLOWED");
      }
    }
    if (closing !== undefined || active >= maxConcurrent) {
      return refuse(res, entry, "BTL_PROXY_BUSY", { "retry-after": "1" });
    }
    active++;
    exchange.counted = true;
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
        entry.upstreamError = errorName(error);
        unfinishedBody(req, res);
        refuse(res, entry, "BTL_PROXY_CREDENTIAL");
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

  /** An upstream failure before any response byte: 502, or 504 when the upstream stayed silent. */
  function failed(res: ServerResponse, entry: Entry, error: unknown): void {
    const code = (error as { code?: unknown }).code;
    if (code === "UND_ERR_INVALID_ARG" || code === "UND_ERR_NOT_SUPPORTED") {
      log.error({ reqId: entry.reqId, err: error }, "unexpected failure");
      refuse(res, entry, "BTL_INTERNAL");
      return;
    }
    entry.upstreamError = errorName(error);
    refuse(
      res,
      entry,
      code === "UND_ERR_HEADERS_TIMEOUT" || code === "UND_ERR_BODY_TIMEOUT"
        ? "BTL_PROXY_TIMEOUT"
        : "BTL_PROXY_UPSTREAM",
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
      closing ??= new Promise<void>((resolve) => {
        if (server.listening) server.close();
        server.closeIdleConnections();
        const timer = setTimeout(() => server.closeAllConnections(), graceMs);
        const finish = () => {
          clearTimeout(timer);
          connections.flush();
          sources.close();
          // Nothing is in flight: what is left are idle keep-alive connections.
          server.closeAllConnections();
          void Promise.all([...pools.values()].map((pool) => pool.destroy())).then(() => resolve());
        };
        if (inFlight === 0) finish();
        else drained = finish;
      });
      return closing;
    },
  };
}

/**
 * `http://<Host>` as the client addressed the proxy, for absolute URLs in `Link`; undefined when
 * the Host header is not a plain host[:port] (then `Link` passes untouched).
 */
function proxyBase(req: IncomingMessage): string | undefined {
  const host = req.headers.host;
  return host !== undefined &&
    /^[A-Za-z0-9.-]+(?::\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::\d{1,5})?$/.test(host)
    ? `http://${host}`
    : undefined;
}
