/**
 * A sidecar's life from `listen` to exit: the `listening` record, the ready descriptor, and the
 * stop on SIGTERM or SIGINT (drain with a grace period; a second signal cuts). Signals come in
 * through `onSignal`, so that only a `cli.ts` touches the process.
 */
import { closeSync, writeFileSync } from "node:fs";
import type { Server } from "node:http";
import type { Logger } from "@bottle/log";
import type { ListenTarget } from "./listen.ts";

/** The signals that stop a sidecar. */
export type StopSignal = "SIGTERM" | "SIGINT";

/** Installs a signal handler: `cli.ts` passes `(signal, handler) => process.on(signal, handler)`. */
export type OnSignal = (signal: StopSignal, handler: () => void) => void;

/** How long in-flight requests may run after the first signal before they are cut. */
export const DEFAULT_GRACE_MS = 30_000;

/**
 * The environment variable naming a descriptor the sidecar writes its URL to (one line) once
 * it listens, then closes: how a parent (`--detach`, a supervisor) learns that it is ready.
 */
export const READY_FD_ENV = "BOTTLE_READY_FD";

/** A server that can be stopped: `close()` stops accepting and resolves once it drained. */
export interface Stoppable {
  close(): Promise<void>;
  readonly server: Server;
}

/** Options of {@link untilStopped}. */
export interface StopOptions {
  readonly onSignal: OnSignal;
  readonly logger: Logger;
  /** In-flight requests are cut after this long (default {@link DEFAULT_GRACE_MS}). */
  readonly graceMs?: number;
}

/** How a sidecar stopped: `forced` when requests were cut (a second signal, or the grace ran out). */
export interface Stopped {
  readonly signal: StopSignal;
  readonly forced: boolean;
}

/**
 * Resolves once a signal stopped `service`: the first SIGTERM or SIGINT closes it (new
 * connections refused, in-flight requests finish); a second signal, or the end of the grace
 * period, cuts every open connection. Never exits the process.
 */
export function untilStopped(service: Stoppable, options: StopOptions): Promise<Stopped> {
  const { logger } = options;
  const graceMs = options.graceMs ?? DEFAULT_GRACE_MS;
  return new Promise((resolve) => {
    let first: StopSignal | undefined;
    let forced = false;
    const cut = (fields: Record<string, unknown>, why: string) => {
      forced = true;
      logger.warn(fields, why);
      service.server.closeAllConnections();
    };
    const stop = (signal: StopSignal) => {
      if (first !== undefined) {
        if (!forced) cut({ signal }, "second signal: cutting open connections");
        return;
      }
      first = signal;
      logger.info({ signal }, "shutting down: finishing in-flight requests");
      const timer = setTimeout(
        () => cut({ graceMs }, "grace period over: cutting open connections"),
        graceMs,
      ).unref();
      const closed = service.close().catch((error: unknown) => {
        logger.error({ err: error }, "unexpected failure while closing");
      });
      void closed.then(() => {
        clearTimeout(timer);
        // Nothing is in flight: what is left are idle keep-alive connections.
        service.server.closeAllConnections();
        resolve({ signal, forced });
      });
    };
    options.onSignal("SIGTERM", () => stop("SIGTERM"));
    options.onSignal("SIGINT", () => stop("SIGINT"));
  });
}

/** A server that listens and stops (what `createGateServer` and its siblings return). */
export interface Serving extends Stoppable {
  listen(target: ListenTarget): Promise<string>;
}

/** Options of {@link serveUntilStopped}. */
export interface ServeOptions extends StopOptions {
  readonly target: ListenTarget;
  /** The process environment, for {@link READY_FD_ENV}. */
  readonly env: Readonly<Record<string, string | undefined>>;
}

/**
 * Listens on `target`, logs `listening` with `url` (and `mode: "systemd"` for a socket
 * systemd passed), tells a waiting parent through the ready descriptor, and serves until
 * stopped. Resolves to the exit code: 0 when in-flight requests finished, 1 when they were
 * cut. A listen failure closes the service and is rethrown (the package's listen code).
 */
export async function serveUntilStopped(service: Serving, options: ServeOptions): Promise<number> {
  const { logger, target } = options;
  let url: string;
  try {
    url = await service.listen(target);
  } catch (error) {
    await service.close();
    throw error;
  }
  if ("host" in target && !isLoopback(service.server))
    logger.warn({ bind: target.host }, "listening beyond loopback, as --bind asked");
  logger.info(
    { url, ...("fd" in target && target.systemd ? { mode: "systemd" } : {}) },
    "listening",
  );
  // An inherited listening descriptor may be the one the variable names: never write to it.
  if (!("fd" in target)) announceReady(options.env, url);
  const { forced } = await untilStopped(service, options);
  logger.info({}, "stopped");
  return forced ? 1 : 0;
}

/** In a child started with {@link READY_FD_ENV}: writes the URL to that descriptor, closes it. */
export function announceReady(
  env: Readonly<Record<string, string | undefined>>,
  url: string,
): void {
  const fd = Number(env[READY_FD_ENV]);
  if (!Number.isInteger(fd) || fd < 3) return;
  try {
    writeFileSync(fd, `${url}\n`);
    closeSync(fd);
  } catch {}
}

/** True when the server's TCP address is a loopback one (127/8, ::1, IPv4-mapped 127/8). */
function isLoopback(server: Server): boolean {
  const address = server.address();
  if (address === null || typeof address === "string") return true;
  const ip = address.address.replace(/^::ffff:/i, "");
  return ip === "::1" || ip.startsWith("127.");
}
