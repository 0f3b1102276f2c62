/** The cap on open connections: net.Server's `maxConnections`, with rate-limited drop warnings. */
import type { Server } from "node:net";
import type { Logger } from "@bottle/log";

/** A flood of dropped connections logs one warning per this interval, with the counts. */
export const DROP_LOG_INTERVAL_MS = 10_000;

/** Options of {@link capConnections}. */
export interface ConnectionCap {
  /** Open connections at once (idle keep-alive ones included). */
  readonly max: number;
  readonly log: Logger;
  /** The sidecar's code for a drop (`BTL_GATE_TOO_MANY_CONNECTIONS`, …). */
  readonly code: string;
}

/**
 * Caps `server` at `max` open connections. Beyond it, net.Server closes each new connection at
 * once, before any byte is read, and emits `'drop'` (Node ≥ 18.6). Drops are logged at warn
 * with `code`, `maxConnections`, `dropped` (since the last record) and `droppedTotal`: the
 * first at once, later ones counted into at most one record per {@link DROP_LOG_INTERVAL_MS},
 * so a flood does not flood the log. `flush()` (on close) logs what is left.
 */
export function capConnections(server: Server, cap: ConnectionCap): { flush(): void } {
  const { max: maxConnections, log, code } = cap;
  server.maxConnections = maxConnections;
  let droppedTotal = 0;
  let unlogged = 0;
  let lastLog = Number.NEGATIVE_INFINITY;
  let timer: NodeJS.Timeout | undefined;
  const report = () => {
    timer = undefined;
    lastLog = performance.now();
    log.warn(
      { code, maxConnections, dropped: unlogged, droppedTotal },
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
