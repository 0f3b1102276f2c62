/** Requests Node's parser refused (`clientError`): a bodiless 400, 408 or 431, and a log record. */
import type { Server } from "node:http";
import type { Duplex } from "node:stream";
import type { Logger } from "@bottle/log";
import type { InFlight } from "./in-flight.ts";
import { nodeHttp } from "./node-http.ts";

/**
 * Answers requests the parser refused as Node's own handler does (400; 431 for headers too
 * large; 408 when they came too slowly), but only on a connection with no answer under way,
 * and logs each at warn as `malformed request` with `status` and `parseError` (never the
 * bytes). A client that reset its connection is only logged at debug.
 */
export function answerMalformedRequests(server: Server, logger: Logger, inFlight: InFlight): void {
  server.on("clientError", (error: NodeJS.ErrnoException, socket: Duplex) => {
    if (error.code === "ECONNRESET") {
      logger.debug({ parseError: error.code }, "client reset the connection");
      socket.destroy();
      return;
    }
    const status =
      error.code === "HPE_HEADER_OVERFLOW"
        ? 431
        : error.code === "ERR_HTTP_REQUEST_TIMEOUT"
          ? 408
          : 400;
    logger.warn({ status, parseError: error.code ?? "unknown" }, "malformed request");
    if (!socket.writable || inFlight.busy(socket)) {
      socket.destroy();
      return;
    }
    socket.once("finish", () => socket.destroy());
    socket.end(
      `HTTP/1.1 ${status} ${nodeHttp.STATUS_CODES[status]}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`,
    );
  });
}
