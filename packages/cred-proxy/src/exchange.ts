/**
 * One proxied request from arrival to the close of its response, and undici's handler of its
 * upstream exchange: the answer is written straight to the client, with no intermediate
 * streams, and backpressure by pausing the upstream socket while the client's is full.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import type { Logger } from "@bottle/log";
import { errorName, logRequest, startRequestRecord } from "@bottle/sidecar";
import type { Dispatcher } from "undici";
import { clientHeaders } from "./headers.ts";
import { type ProxyRecord, refuse, unfinishedBody } from "./respond.ts";
import type { ProxyRoute } from "./routes.ts";

/** What an exchange needs of its proxy. */
export interface ExchangeDeps {
  readonly logger: Logger;
  /** The upstream refused `token` (401): a GitHub App route's next request gets a new one. */
  invalidate(route: ProxyRoute, token: string): void;
}

/** One request through the proxy; see the module comment. */
export class Exchange implements Dispatcher.DispatchHandler {
  readonly started = performance.now();
  readonly record: ProxyRecord;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /** The matched route, once the request is forwarded. */
  route: ProxyRoute | undefined;
  upstream: Dispatcher.DispatchController | undefined;
  /** The client went away before the answer was complete. */
  gone = false;
  /** The token a GitHub App route's request went with (a 401 for it renews the token). */
  token: string | undefined;
  readonly #deps: ExchangeDeps;
  /** Frees the `maxConcurrent` place this exchange holds, if any. */
  #release: (() => void) | undefined;

  constructor(req: IncomingMessage, res: ServerResponse, deps: ExchangeDeps) {
    this.req = req;
    this.res = res;
    this.#deps = deps;
    this.record = startRequestRecord(req, { route: null });
    res.once("close", this.closed);
  }

  /** Holds one of the proxy's `maxConcurrent` places until the response closes. */
  hold(release: () => void): void {
    this.#release = release;
  }

  readonly closed = (): void => {
    this.#release?.();
    if (!this.res.writableFinished) {
      // A client that goes away aborts the upstream request (and frees its connection).
      this.gone = true;
      this.upstream?.abort(new Error("client went away"));
    }
    // SECURITY (item 13): route, method, status, sizes and codes; never headers, path or query.
    logRequest(this.#deps.logger, this.record, this.res, this.started);
  };

  readonly resume = (): void => this.upstream?.resume();

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.upstream = controller;
    if (this.gone) controller.abort(new Error("client went away"));
  }

  onBodySent(chunk: Buffer): void {
    this.record.bytesIn += chunk.length;
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    if (statusCode === 401 && this.token && this.route)
      this.#deps.invalidate(this.route, this.token);
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
    this.record.bytesOut += chunk.length;
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
    const { req, res, record } = this;
    if (!res.headersSent) {
      unfinishedBody(req, res);
      this.failed(error);
      return;
    }
    const code = (error as { code?: unknown }).code;
    record.code = code === "UND_ERR_BODY_TIMEOUT" ? "BTL_PROXY_TIMEOUT" : "BTL_PROXY_UPSTREAM";
    record.upstreamError = errorName(error);
    res.destroy();
  }

  /** An upstream failure before any response byte: 502, or 504 when the upstream stayed silent. */
  failed(error: unknown): void {
    const { res, record } = this;
    const code = (error as { code?: unknown }).code;
    if (code === "UND_ERR_INVALID_ARG" || code === "UND_ERR_NOT_SUPPORTED") {
      this.#deps.logger.error({ reqId: record.reqId, err: error }, "unexpected failure");
      refuse(res, record, "BTL_INTERNAL");
      return;
    }
    record.upstreamError = errorName(error);
    refuse(
      res,
      record,
      code === "UND_ERR_HEADERS_TIMEOUT" || code === "UND_ERR_BODY_TIMEOUT"
        ? "BTL_PROXY_TIMEOUT"
        : "BTL_PROXY_UPSTREAM",
    );
  }
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
