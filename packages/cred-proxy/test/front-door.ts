// A listening port opened before the proxy exists: the registry must know the proxy's URL when
// it starts, and the proxy can only be made once the registry has issued its token.
import { createServer, type Server as NetServer, type Socket } from "node:net";
import { onTestFinished } from "vitest";

/** A port that is listening before the server that will answer on it exists. */
export interface FrontDoor {
  /** `http://127.0.0.1:PORT`. */
  url: string;
  /** From now on every connection is handed to `server` (its `connection` event). */
  open(server: { emit(event: "connection", socket: Socket): boolean }): void;
}

/**
 * Listens on 127.0.0.1 (a port the system picks); connections are refused until `open` names
 * the HTTP server that serves them. Closed when the test finishes.
 */
export async function frontDoor(): Promise<FrontDoor> {
  let target: { emit(event: "connection", socket: Socket): boolean } | undefined;
  const sockets = new Set<Socket>();
  const server: NetServer = createServer((socket) => {
    if (target === undefined) {
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    target.emit("connection", socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: "127.0.0.1", port: 0 }, () => resolve());
  });
  onTestFinished(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no TCP address");
  return {
    url: `http://127.0.0.1:${address.port}`,
    open(server) {
      target = server;
    },
  };
}
