/** Loopback servers of the test fakes: listen on 127.0.0.1:0, and close once, connections and all. */
import type { Server as HttpServer } from "node:http";
import type { AddressInfo, Server } from "node:net";
import { createDeferred } from "./deferred.ts";

/** Listens on `127.0.0.1` and a free port; resolves with the port (a listen error rejects). */
export async function listenLoopback(server: Server): Promise<number> {
  const { promise: listening, resolve, reject } = createDeferred<void>();
  server.once("error", reject);
  server.listen({ host: "127.0.0.1", port: 0 }, () => resolve());
  await listening;
  server.off("error", reject);
  return (server.address() as AddressInfo).port;
}

/** A `close()` for an HTTP server that ends open connections too; calling it again is a no-op. */
export function closerOf(server: HttpServer): () => Promise<void> {
  let closed: Promise<void> | undefined;
  return () => {
    closed ??= new Promise<void>((resolve, reject) => {
      server.closeAllConnections();
      server.close((error) => (error ? reject(error) : resolve()));
    });
    return closed;
  };
}
