/** Answers of the proxy: generic error bodies, and error names safe to log. */
import type { IncomingMessage, ServerResponse } from "node:http";
import { PROXY_ERRORS, type ProxyErrorCode } from "./errors.ts";

/** Generic answers: an error body never echoes anything the request carried. */
export const MESSAGES: Record<ProxyErrorCode, string> = {
  BTL_PROXY_CONFIG: "proxy misconfigured",
  BTL_PROXY_TOKEN: "proxy misconfigured",
  BTL_PROXY_LISTEN: "proxy misconfigured",
  BTL_PROXY_BAD_PATH: "refused request target",
  BTL_PROXY_NO_ROUTE: "no route for this path",
  BTL_PROXY_METHOD: "method or upgrade not allowed",
  BTL_PROXY_UPSTREAM: "upstream unreachable",
  BTL_PROXY_TIMEOUT: "upstream timed out",
  BTL_PROXY_BUSY: "too many requests",
  BTL_PROXY_CREDENTIAL: "credential unavailable",
  BTL_PROXY_PUSH_REFUSED: "git push not allowed on this route",
  BTL_PROXY_NOT_ALLOWED: "method or path not allowed on this route",
  BTL_PROXY_TOO_MANY_CONNECTIONS: "too many connections",
  BTL_INTERNAL: "internal error",
};

/** The log record of one request; the fields are filled in as the request goes. */
export type Entry = Record<string, unknown> & { bytesIn: number; bytesOut: number };

/**
 * An answer that starts before the client finished sending its body (an early upstream answer
 * or a failure) closes the connection when it ends: whatever of the body is left unread, the
 * connection cannot carry another request.
 */
export function unfinishedBody(req: IncomingMessage, res: ServerResponse): void {
  if (!req.complete) res.shouldKeepAlive = false;
}

/** A short, generic JSON answer: `{ error, code }`, with the code in a header too. */
export function refuse(
  res: ServerResponse,
  entry: Entry,
  code: ProxyErrorCode,
  headers: Record<string, string> = {},
): void {
  entry.code = code;
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ error: MESSAGES[code], code });
  res.writeHead(PROXY_ERRORS[code].status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
    "x-bottle-code": code,
    ...headers,
  });
  res.end(body);
}

/** The error's code or class name: safe to log (never a message, which could quote data). */
export function errorName(error: unknown): string {
  const { code, name } = error as { code?: unknown; name?: unknown };
  return typeof code === "string" ? code : typeof name === "string" ? name : "unknown";
}
