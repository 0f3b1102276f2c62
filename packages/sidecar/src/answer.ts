/**
 * The one error answer of every sidecar: the status from the package's error table, the code
 * in `x-bottle-code`, and a short generic body, `{ error, code }` JSON for API clients or the
 * message as a line of text for git clients (git prints a text/plain body as `remote:` lines,
 * remote-curl.c show_http_message). Never a secret, a path or anything the request carried.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { ErrorTable } from "@bottle/errors";
import { nodeHttp } from "./node-http.ts";

/** `json` (`{ error, code }`, the default) or `text` (the message and a newline). */
export type AnswerFormat = "json" | "text";

/** Options of {@link errorAnswer} and {@link writeErrorAnswer}. */
export interface ErrorAnswerOptions {
  readonly format?: AnswerFormat;
  /** More headers (`retry-after`, `www-authenticate`). */
  readonly headers?: Readonly<Record<string, string>>;
  /** More JSON fields after `error` and `code` (tokman's `reset_at`). */
  readonly fields?: Readonly<Record<string, unknown>>;
}

/** An error answer, ready to write. */
export interface ErrorAnswer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

/** Builds the answer for `code` of `table` with a generic `message`. */
export function errorAnswer<T extends ErrorTable>(
  table: T,
  code: keyof T & string,
  message: string,
  options: ErrorAnswerOptions = {},
): ErrorAnswer {
  const text = options.format === "text";
  const body = text ? `${message}\n` : JSON.stringify({ error: message, code, ...options.fields });
  return {
    status: table[code]?.status ?? 500,
    headers: {
      "content-type": text ? "text/plain; charset=utf-8" : "application/json",
      "content-length": String(Buffer.byteLength(body)),
      "cache-control": "no-store",
      "x-bottle-code": code,
      ...options.headers,
    },
    body,
  };
}

/**
 * Writes the answer for `code`. Once an answer is under way the status cannot change: the
 * connection is destroyed instead, which the client sees as a broken answer.
 */
export function writeErrorAnswer<T extends ErrorTable>(
  res: ServerResponse,
  table: T,
  code: keyof T & string,
  message: string,
  options: ErrorAnswerOptions = {},
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const answer = errorAnswer(table, code, message, options);
  res.writeHead(answer.status, answer.headers);
  res.end(answer.body);
}

/**
 * The same answer as raw HTTP/1.1 with `Connection: close`, for a socket that has no response
 * object (a refused CONNECT or upgrade).
 */
export function rawErrorAnswer<T extends ErrorTable>(
  table: T,
  code: keyof T & string,
  message: string,
  options: ErrorAnswerOptions = {},
): string {
  const { status, headers, body } = errorAnswer(table, code, message, options);
  const lines = Object.entries({ ...headers, connection: "close" }).map(
    ([name, value]) => `${name}: ${value}\r\n`,
  );
  return `HTTP/1.1 ${status} ${nodeHttp.STATUS_CODES[status] ?? ""}\r\n${lines.join("")}\r\n${body}`;
}

const HEALTH_BODY = '{"status":"ok"}';

/**
 * Answers a liveness probe and returns true: `GET` or `HEAD /healthz` gets 200
 * `{"status":"ok"}` without authentication, an upstream or any state read (container
 * HEALTHCHECKs poll it). Returns false, writing nothing, for every other request.
 */
export function answerHealth(req: IncomingMessage, res: ServerResponse): boolean {
  if (req.url !== "/healthz" || (req.method !== "GET" && req.method !== "HEAD")) return false;
  res.writeHead(200, {
    "content-type": "application/json",
    "content-length": String(HEALTH_BODY.length),
    "cache-control": "no-store",
  });
  res.end(req.method === "HEAD" ? undefined : HEALTH_BODY);
  return true;
}
