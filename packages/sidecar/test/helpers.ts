import { createServer, type RequestListener, type Server } from "node:http";
import { connect, type Socket } from "node:net";
import type { Logger } from "@bottle/log";
import { onTestFinished } from "vitest";

/** One call to a {@link recordingLogger}: its level, message and fields. */
export type Recorded = { level: string; msg: string | undefined } & Record<string, unknown>;

/** A Logger that keeps every record in `records`. */
export function recordingLogger(): { logger: Logger; records: Recorded[] } {
  const records: Recorded[] = [];
  const at = (level: string) => (fields: object, msg?: string) => {
    records.push({ ...(fields as Record<string, unknown>), level, msg });
  };
  const logger: Logger = {
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    child: () => logger,
  };
  return { logger, records };
}

/** An HTTP server, closed (with its connections) when the test finishes. */
export function httpServer(handler?: RequestListener): Server {
  const server = createServer(handler);
  onTestFinished(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
        if (!server.listening) resolve();
      }),
  );
  return server;
}

/** A raw TCP connection; `text()` is what it received, `closed` settles when it closes. */
export async function openSocket(port: number): Promise<{
  socket: Socket;
  text(): string;
  closed: Promise<void>;
}> {
  const socket = connect(port, "127.0.0.1");
  onTestFinished(() => {
    socket.destroy();
  });
  let text = "";
  socket.on("data", (chunk: Buffer) => {
    text += chunk.toString("latin1");
  });
  socket.on("error", () => {}); // a dropped connection may reset
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  await new Promise((resolve, reject) => socket.once("connect", resolve).once("error", reject));
  return { socket, text: () => text, closed };
}

/** The port of a server listening on TCP. */
export function portOf(server: Server): number {
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("not on TCP");
  return address.port;
}
