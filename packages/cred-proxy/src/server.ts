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
import { type Dispatcher, Pool } from "undici";
import { PROXY_ERRORS, ProxyError, type ProxyErrorCode } from "./errors.ts";
import { clientHeaders, type ResponseHeaders, upstreamHeaders } from "./headers.ts";
import { type ListenTarget, listenOn } from "./listen.ts";
import { checkCa, checkInteger, checkTokens } from "./options.ts";
import { checkTarget, staysOnOrigin, upstreamPath } from "./path.ts";
import { type Entry, errorName, MESSAGES, refuse, unfinishedBody } from "./respond.ts";
import { matchRoute, type ProxyRoute, parseRoutes } from "./routes.ts";

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
  /** Where `NODE_TLS_REJECT_UNAUTHORIZED` is looked up (default `process.env`). */
  readonly env?: Readonly<Record<string, string | undefined>>;
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
 * options, unreadable CA, NODE_TLS_REJECT_UNAUTHORIZED=0) or BTL_PROXY_TOKEN (a route's slot is
 * unset, empty or malformed; the message names the slot, never the value).
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
        token_env: r.tokenEnv,
      })),
    },
    "routes",
  );
  const tokens = checkTokens(routes, options.tokens);
  /** The route's credential: its slot's value (a promise only while a renewing source fetches). */
  const credential = (route: ProxyRoute): string | Promise<string> => {
    const token = tokens.get(route.tokenEnv);
    if (token === undefined) throw new Error("route without token");
    return token;
  };
  const log = options.logger ?? silentLogger;
  const idleTimeoutMs = checkInteger("idleTimeoutMs", options.idleTimeoutMs, 300_000);
  const headersTimeoutMs = checkInteger("headersTimeoutMs", options.headersTimeoutMs, 30_000);
  const connectTimeoutMs = checkInteger("connectTimeoutMs", options.connectTimeoutMs, 10_000);
  const maxConcurrent = checkInteger("maxConcurrent", options.maxConcurrent, 128, 65_536);
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
    const status =
      error.code === "HPE_HEADER_OVERFLOW"
        ? 431
        : error.code === "ERR_HTTP_REQUEST_TIMEOUT"
          ? 408
          : 400;
    log.warn({ status, parseError: error.code ?? "unknown" }, "malformed request");
    // As Node's own handler: answer only when no response is under way on this connection.
    if (!socket.writable || error.code === "ECONNRESET" || busySockets.has(socket)) {
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
    const started = performance.now();
    const entry: Entry = {
      reqId: randomUUID().slice(0, 8),
      route: null,
      method: req.method,
      bytesIn: 0,
      bytesOut: 0,
    };
    inFlight++;
    busySockets.add(req.socket);
    res.once("close", () => {
      busySockets.delete(req.socket);
      entry.status = res.statusCode;
      entry.durationMs = Math.round(performance.now() - started);
      if (!res.writableFinished) entry.aborted = true;
      // SECURITY (item 13): route, method, status, sizes and codes; never headers, path or query.
      if (res.statusCode >= 400 || entry.code !== undefined) log.warn(entry, "request");
      else log.info(entry, "request");
      if (--inFlight === 0 && drained) drained();
    });
    try {
      handle(req, res, expectContinue, entry);
    } catch (error) {
      log.error({ reqId: entry.reqId, err: error }, "unexpected failure");
      refuse(res, entry, "BTL_INTERNAL");
    }
  }

  function handle(
    req: IncomingMessage,
    res: ServerResponse,
    expectContinue: boolean,
    entry: Entry,
  ): void {
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
    if (closing !== undefined || active >= maxConcurrent) {
      return refuse(res, entry, "BTL_PROXY_BUSY", { "retry-after": "1" });
    }
    active++;
    res.once("close", () => active--);
    const token = credential(route);
    if (typeof token === "string") {
      if (expectContinue) res.writeContinue();
      return forward(req, res, route, path, entry, token);
    }
    token.then(
      (value) => {
        if (res.destroyed) return;
        if (expectContinue) res.writeContinue();
        forward(req, res, route, path, entry, value);
      },
      (error: unknown) => {
        entry.upstreamError = errorName(error);
        unfinishedBody(req, res);
        refuse(res, entry, "BTL_PROXY_UPSTREAM");
      },
    );
  }

  /**
   * Sends the request upstream with undici's dispatcher API and writes the answer straight to
   * the client: no intermediate streams, backpressure by pausing the upstream socket while the
   * client's is full. The request ends when `res` closes.
   */
  function forward(
    req: IncomingMessage,
    res: ServerResponse,
    route: ProxyRoute,
    path: string,
    entry: Entry,
    token: string,
  ): void {
    const pool = pools.get(route.origin);
    if (pool === undefined) throw new Error("route without pool");
    const headers = upstreamHeaders(req.rawHeaders, route, token);
    // SECURITY (item 8): the body is forwarded as Node's parser framed it; undici sends it with
    // the client's validated Content-Length, or chunked when the length is not known.
    const length = req.headers["content-length"];
    const hasBody =
      req.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0");
    // A client that goes away aborts the upstream request (and frees its connection).
    let upstream: Dispatcher.DispatchController | undefined;
    let gone = false;
    res.once("close", () => {
      if (res.writableFinished) return;
      gone = true;
      upstream?.abort(new Error("client went away"));
    });
    const resume = () => upstream?.resume();

    pool.dispatch(
      { method: req.method ?? "GET", path, headers, body: hasBody ? req : null },
      {
        onRequestStart(controller) {
          upstream = controller;
          if (gone) controller.abort(new Error("client went away"));
        },
        onBodySent(chunk: Buffer) {
          entry.bytesIn += chunk.length;
        },
        onResponseStart(controller, statusCode, answerHeaders) {
          // 1xx answers (other than the 101 of an upgrade, never asked for) are not relayed.
          if (statusCode < 200) return;
          unfinishedBody(req, res);
          res.writeHead(
            statusCode,
            clientHeaders(answerHeaders as ResponseHeaders, route, proxyBase(req)) as OutgoingHttpHeaders,
          );
          if (res.destroyed) controller.abort(new Error("client went away"));
        },
        onResponseData(controller, chunk: Buffer) {
          entry.bytesOut += chunk.length;
          // SECURITY (items 10, 11): streamed with backpressure, chunk by chunk, never buffered.
          if (!res.write(chunk)) {
            controller.pause();
            res.once("drain", resume);
          }
        },
        onResponseEnd() {
          res.end();
        },
        onResponseError(_controller, error) {
          if (gone) return;
          const code = (error as { code?: unknown }).code;
          if (!res.headersSent) {
            unfinishedBody(req, res);
            return failed(res, entry, error);
          }
          entry.code = code === "UND_ERR_BODY_TIMEOUT" ? "BTL_PROXY_TIMEOUT" : "BTL_PROXY_UPSTREAM";
          entry.upstreamError = errorName(error);
          res.destroy();
        },
      },
    );
  }

  /** An upstream failure before any response byte: 502, or 504 when the upstream stayed silent. */
  function failed(res: ServerResponse, entry: Entry, error: unknown): void {
    const code = (error as { code?: unknown }).code;
    if (code === "UND_ERR_INVALID_ARG" || code === "UND_ERR_NOT_SUPPORTED") {
      log.error({ reqId: entry.reqId, err: error }, "unexpected failure");
      return refuse(res, entry, "BTL_INTERNAL");
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
    listen: (target = { port: 0 }) => listenOn(server, target),
    address: () => server.address(),
    close(graceMs = 30_000) {
      closing ??= new Promise<void>((resolve) => {
        if (server.listening) server.close();
        server.closeIdleConnections();
        const timer = setTimeout(() => server.closeAllConnections(), graceMs);
        const finish = () => {
          clearTimeout(timer);
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
