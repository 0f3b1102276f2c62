import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { createDeferred } from "./deferred.ts";

/** An HTTP server listening on `127.0.0.1:0`. */
export interface LoopbackServer {
  readonly server: Server;
  /** `http://127.0.0.1:PORT`, no trailing slash. */
  readonly url: string;
  readonly port: number;
  /** Cuts every connection and stops listening (the same promise on every call). */
  close(): Promise<void>;
}

/**
 * Serves `handler` on `127.0.0.1:0` with explicit timeouts, as the fakes and upstreams of the
 * tests do. `onClose` runs once it is closed (to cut pending work or remove files).
 */
export async function listenLoopback(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  options: {
    readonly onClose?: () => Promise<void> | void;
    readonly requestTimeoutMs?: number;
  } = {},
): Promise<LoopbackServer> {
  const server = createServer(
    {
      requestTimeout: options.requestTimeoutMs ?? 30_000,
      headersTimeout: 10_000,
      keepAliveTimeout: 1_000,
    },
    handler,
  );
  const { promise: listening, resolve, reject } = createDeferred<void>();
  server.once("error", reject);
  server.listen({ host: "127.0.0.1", port: 0 }, () => resolve());
  await listening;
  server.off("error", reject);
  const { port } = server.address() as AddressInfo;
  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed ??= new Promise<void>((resolveClose, rejectClose) => {
      server.closeAllConnections();
      server.close((error) => (error ? rejectClose(error) : resolveClose()));
    }).finally(options.onClose);
    return closed;
  };
  return { server, url: `http://127.0.0.1:${port}`, port, close };
}

/** The request body, whole; `tooLarge()` is thrown once it passes `maxBytes`. */
export async function readBody(
  req: IncomingMessage,
  maxBytes: number,
  tooLarge: () => Error,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of req) {
    bytes += (chunk as Buffer).length;
    if (bytes > maxBytes) throw tooLarge();
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** `text` parsed as a JSON object (`{}` when undefined); `malformed()` is thrown otherwise. */
export function jsonObject(
  text: string | undefined,
  malformed: () => Error,
): Record<string, unknown> {
  let value: unknown = {};
  if (text !== undefined) {
    try {
      value = JSON.parse(text);
    } catch {
      throw malformed();
    }
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw malformed();
  return value as Record<string, unknown>;
}
