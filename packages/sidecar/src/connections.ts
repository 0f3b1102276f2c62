/** The cap on open connections: net.Server's `maxConnections`, with rate-limited drop records. */
import type { Server } from "node:net";
import type { Logger } from "@bottle/log";

/** Options of {@link capConnections}. */
export interface ConnectionCapOptions {
  /** Open connections at once, idle keep-alive ones included. */
  readonly maxConnections: number;
  readonly logger: Logger;
  /** The package's code for a dropped connection (`BTL_GATE_TOO_MANY_CONNECTIONS`, …). */
  readonly code: string;
  /** At most one record per this interval, however many connections are dropped (default 10 s). */
  readonly intervalMs?: number;
  /**
   * What a record's `dropped` counts: the drops since the previous record (default), or all
   * drops so far (`total`). `droppedTotal` is always the running count.
   */
  readonly dropped?: "since-last" | "total";
}

/** A connection cap in place. */
export interface ConnectionCap {
  /** Logs the drops not yet logged now (on close), and stops the pending record's timer. */
  flush(): void;
}

/**
 * Caps `server` at `maxConnections` open connections. Beyond it, net.Server closes each new
 * connection at once, before reading a byte, and emits `'drop'` (Node ≥ 18.6). Drops log at
 * warn with the package's code: the first at once, later ones counted into at most one record
 * per interval, so a flood of connections does not flood the log.
 */
export function capConnections(server: Server, options: ConnectionCapOptions): ConnectionCap {
  const { maxConnections, logger, code } = options;
  const intervalMs = options.intervalMs ?? 10_000;
  server.maxConnections = maxConnections;
  let droppedTotal = 0;
  let unlogged = 0;
  let lastLog = Number.NEGATIVE_INFINITY;
  let timer: NodeJS.Timeout | undefined;
  const report = () => {
    timer = undefined;
    lastLog = performance.now();
    const dropped = options.dropped === "total" ? droppedTotal : unlogged;
    logger.warn(
      { code, maxConnections, dropped, droppedTotal },
      "connection dropped: too many open connections",
    );
    unlogged = 0;
  };
  server.on("drop", () => {
    droppedTotal++;
    unlogged++;
    if (timer !== undefined) return;
    const wait = lastLog + intervalMs - performance.now();
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
