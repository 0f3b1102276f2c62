/** The requests in flight on a server, and the drain that waits for them on close. */
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";

/** What {@link trackInFlight} returns. */
export interface InFlight {
  /** Counts `req` until its response closes (finished, or the client went away). */
  track(req: IncomingMessage, res: ServerResponse): void;
  /** Requests whose response has not closed yet. */
  count(): number;
  /** True while `socket` carries a request whose response has not closed. */
  busy(socket: Duplex): boolean;
  /**
   * Stops accepting connections, closes idle keep-alive ones (now, and each one as its
   * request ends), and resolves once nothing is in flight. Idempotent.
   */
  drain(): Promise<void>;
}

/**
 * Tracks the requests the server's handlers pass to `track`, so that `close()` can wait for
 * them without cutting a long push or an event stream.
 */
export function trackInFlight(server: Server): InFlight {
  let count = 0;
  const busy = new WeakSet<object>();
  let draining: Promise<void> | undefined;
  let drained: (() => void) | undefined;
  // The answer's own `close` handlers (the request log record) run first.
  const settle = () => {
    if (count === 0 && drained !== undefined) setImmediate(drained);
  };
  return {
    track(req, res) {
      count++;
      busy.add(req.socket);
      res.once("close", () => {
        count--;
        busy.delete(req.socket);
        if (draining === undefined) return;
        server.closeIdleConnections();
        settle();
      });
    },
    count: () => count,
    busy: (socket) => busy.has(socket),
    drain() {
      draining ??= new Promise<void>((resolve) => {
        drained = resolve;
        if (server.listening) server.close();
        server.closeIdleConnections();
        settle();
      });
      return draining;
    },
  };
}
