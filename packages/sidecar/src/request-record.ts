/** The log record of one request, shared by the HTTP sidecars; each adds its own fields. */
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "@bottle/log";

/**
 * One `request` record. SECURITY: method, sizes, status, codes and durations; never a header
 * value, a query or a body.
 */
export interface RequestRecord {
  /** A short random id, on every record about this request. */
  readonly reqId: string;
  readonly method: string | undefined;
  bytesIn: number;
  bytesOut: number;
  status?: number;
  durationMs?: number;
  /** The package's error code when the request was refused or failed. */
  code?: string;
  /** Why it was refused, in the sidecar's own words (never request data). */
  reason?: string;
  /** The client went away before the answer was complete. */
  aborted?: boolean;
}

/** A record for `req`, with the package's own fields after the common ones. */
export function startRequestRecord<T extends object>(
  req: IncomingMessage,
  fields: T,
): RequestRecord & T {
  return {
    reqId: randomUUID().slice(0, 8),
    method: req.method,
    bytesIn: 0,
    bytesOut: 0,
    ...fields,
  };
}

/**
 * Completes the record once the answer closed (status, duration, whether the client left) and
 * logs it: at warn when refused (a status of 400 or more, or a code), else at info.
 */
export function logRequest(
  logger: Logger,
  record: RequestRecord,
  res: ServerResponse,
  startedAt: number,
): void {
  record.status = res.statusCode;
  record.durationMs = Math.round(performance.now() - startedAt);
  if (!res.writableFinished) record.aborted = true;
  if (res.statusCode >= 400 || record.code !== undefined) logger.warn(record, "request");
  else logger.info(record, "request");
}
