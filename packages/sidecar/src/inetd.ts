/**
 * inetd-style activation (systemd `Accept=yes`): the sidecar is started with one connected
 * socket on fd 0, serves it, and exits once the client has gone or a stop signal drained it.
 */
import { Socket } from "node:net";
import { type StopOptions, type Stoppable, untilStopped } from "./lifecycle.ts";

/** A server that can serve one already-connected socket (the gate's `handleConnection`). */
export interface ConnectionServing extends Stoppable {
  handleConnection(socket: Socket): void;
}

/** Options of {@link serveInetd}. */
export interface InetdOptions extends StopOptions {
  /** The connection (default: a socket on fd 0). */
  readonly socket?: Socket;
}

/**
 * Serves the one connection, logs `listening` with `url: "fd:0"` and `mode: "inetd"`, and
 * resolves to the exit code once the connection closed (0) or a signal stopped the service
 * (0 when in-flight requests finished, 1 when they were cut). The service is closed either way.
 */
export async function serveInetd(
  service: ConnectionServing,
  options: InetdOptions,
): Promise<number> {
  const socket = options.socket ?? new Socket({ fd: 0, readable: true, writable: true });
  const ended = new Promise<number>((resolve) => socket.on("close", () => resolve(0)));
  const stopped = untilStopped(service, options);
  options.logger.info({ url: "fd:0", mode: "inetd" }, "listening");
  service.handleConnection(socket);
  const code = await Promise.race([ended, stopped.then(({ forced }) => (forced ? 1 : 0))]);
  await service.close();
  options.logger.info({}, "stopped");
  return code;
}
