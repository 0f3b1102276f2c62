import {
  createServer,
  type IncomingHttpHeaders,
  type Server,
  type ServerResponse,
} from "node:http";
import { onTestFinished } from "vitest";
import { readBody } from "./http-body.ts";
import { closerOf, listenLoopback } from "./listen.ts";

/** The per-request body cap of an upstream: a test sending more has a bug. */
const MAX_BODY_BYTES = 64 * 1024 * 1024;
const bodyTooLarge = () => new Error(`request body exceeds ${MAX_BODY_BYTES} bytes`);

/** A request as the upstream received it, body fully read. */
export interface RecordedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  /** Names and values alternating, in wire order and case. */
  rawHeaders: string[];
  body: Buffer;
  httpVersion: string;
}

/** Answers a recorded request. */
export type UpstreamHandler = (req: RecordedRequest, res: ServerResponse) => void | Promise<void>;

/** A loopback HTTP server that records every request. */
export interface Upstream {
  /** `http://127.0.0.1:PORT`, no trailing slash. */
  url: string;
  port: number;
  requests: RecordedRequest[];
  server: Server;
  /** Closes all connections and the server; rejects with the first error a handler threw. */
  close(): Promise<void>;
}

function answerOk(_req: RecordedRequest, res: ServerResponse): void {
  res.writeHead(200, { "content-type": "application/json" });
  res.end('{"ok":true}');
}

/**
 * Starts a real `node:http` server on `127.0.0.1:0` that records each request (body read first)
 * into `requests`, then calls `handler` (default: 200 `{"ok":true}`). Closed after the test.
 */
export async function startUpstream(handler: UpstreamHandler = answerOk): Promise<Upstream> {
  const requests: RecordedRequest[] = [];
  const handlerErrors: unknown[] = [];
  const server = createServer(
    { requestTimeout: 30_000, headersTimeout: 10_000, keepAliveTimeout: 1_000 },
    (req, res) => {
      void (async () => {
        try {
          const recorded: RecordedRequest = {
            method: req.method ?? "",
            url: req.url ?? "",
            headers: req.headers,
            rawHeaders: req.rawHeaders,
            body: await readBody(req, MAX_BODY_BYTES, bodyTooLarge),
            httpVersion: req.httpVersion,
          };
          requests.push(recorded);
          await handler(recorded, res);
        } catch (error) {
          handlerErrors.push(error);
          if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
          if (!res.writableEnded) res.end("upstream handler failed");
        }
      })();
    },
  );
  const port = await listenLoopback(server);
  const closeServer = closerOf(server);
  const close = async (): Promise<void> => {
    await closeServer();
    // Reported once: an explicit close() that surfaced the error leaves the cleanup quiet.
    if (handlerErrors.length > 0) {
      throw new Error("an upstream handler threw", { cause: handlerErrors.splice(0)[0] });
    }
  };
  onTestFinished(() => close());
  return { url: `http://127.0.0.1:${port}`, port, requests, server, close };
}
