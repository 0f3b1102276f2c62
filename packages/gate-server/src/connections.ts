/** The cap on open connections: net.Server's `maxConnections`, with rate-limited drop warnings. */
import type { Server } from "node:net";
import type { Logger } from "@bottle/log";

/** A flood of dropped connections logs one warning per this interval, with the counts. */
const DROP_LOG_INTERVAL_MS = 10_000;

/**
 * Caps `server` at `maxConnections` open connections. Beyond it, net.Server closes each new
 * connection at once, without an answer, and emits `'drop'` (Node ≥ 18.6). Drops are logged
 * at warn with BTL_GATE_TOO_MANY_CONNECTIONS: the first at once, later ones counted into at
 * most one record per interval, so a flood does not flood the log. `flush()` logs the rest.
 */
export function capConnections(
  server: Server,
  maxConnections: number,
  log: Logger,
): { flush(): void } {
  server.maxConnections = maxConnections;
  let droppedTotal = 0;
  let unlogged = 0;
  let lastLog = Number.NEGATIVE_INFINITY;
  let timer: NodeJS.Timeout | undefined;
  const report = () => {
    timer = undefined;
    lastLog = performance.now();
    log.warn(
      { code: "BTL_GATE_TOO_MANY_CONNECTIONS", maxConnections, dropped: unlogged, droppedTotal },
      "connections dropped: too many open connections",
    );
    unlogged = 0;
  };
  server.on("drop", () => {
    droppedTotal++;
    unlogged++;
    if (timer !== undefined) return;
    const wait = lastLog + DROP_LOG_INTERVAL_MS - performance.now();
    if (wait <= 0) report();
    else timer = setTimeout(report, wait).unref();
  });
  return {
    flush() {
      if (timer === undefined) return;
      clearTimeout(timer);
      report();
    },
  };
}
