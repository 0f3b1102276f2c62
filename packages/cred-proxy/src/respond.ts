/** Answers of the proxy: generic error bodies, and its request log record. */
import type { IncomingMessage, ServerResponse } from "node:http";
import { type RequestRecord, writeErrorAnswer } from "@bottle/sidecar";
import { PROXY_ERRORS, type ProxyErrorCode } from "./errors.ts";

export { errorName } from "@bottle/sidecar";

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

/**
 * The proxy's `request` log record: the route's prefix (null before one matched) and, when the
 * upstream failed, the error's code or class name.
 */
export interface ProxyRecord extends RequestRecord {
  route: string | null;
  upstreamError?: string;
}

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
  record: ProxyRecord,
  code: ProxyErrorCode,
  headers: Record<string, string> = {},
): void {
  record.code = code;
  writeErrorAnswer(res, PROXY_ERRORS, code, MESSAGES[code], { headers });
}
