/**
 * Where tokman listens: TCP, or a unix socket created mode 0600. The approach of
 * @bottle/gate-server's listener, kept local: tokman does not depend on the gate server, and
 * the gate does not export it.
 */
import { chmodSync, lstatSync, unlinkSync } from "node:fs";
import type { Server } from "node:http";
import { connect } from "node:net";
import { TokmanError } from "./errors.ts";

/** A TCP address (default 127.0.0.1:9420) or a unix socket path. */
export type ListenTarget = { host?: string; port?: number } | { path: string };

/**
 * Listens and resolves to the URL clients use (`http://127.0.0.1:PORT` or `unix:/path`).
 * Throws BTL_TOKMAN_LISTEN (address in use, socket path taken by a live server or a file).
 */
export async function listenOn(server: Server, target: ListenTarget): Promise<string> {
  if ("path" in target) await removeStaleSocket(target.path);
  await new Promise<void>((resolve, reject) => {
    const fail = (error: NodeJS.ErrnoException) =>
      reject(
        new TokmanError("BTL_TOKMAN_LISTEN", `cannot listen: ${error.code ?? error.message}`, {
          cause: error,
        }),
      );
    server.once("error", fail);
    const done = () => {
      server.off("error", fail);
      resolve();
    };
    if ("path" in target) {
      // SECURITY: the socket is created owner-only; the umask closes the window before chmod.
      const old = process.umask(0o177);
      try {
        server.listen({ path: target.path }, done);
      } finally {
        process.umask(old);
      }
    } else {
      server.listen({ host: target.host ?? "127.0.0.1", port: target.port ?? 9420 }, done);
    }
  });
  if ("path" in target) {
    chmodSync(target.path, 0o600);
    return `unix:${target.path}`;
  }
  const address = server.address();
  if (address === null || typeof address === "string") return `unix:${address ?? ""}`;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  return `http://${host}:${address.port}`;
}

/** A socket file left by a dead process is removed; a live one, or any other file, is an error. */
async function removeStaleSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return; // nothing there
  }
  if (!isSocket) throw new TokmanError("BTL_TOKMAN_LISTEN", `${path} exists and is not a socket`);
  const live = await new Promise<boolean>((resolve) => {
    const probe = connect(path);
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", () => resolve(false));
  });
  if (live) throw new TokmanError("BTL_TOKMAN_LISTEN", `another process is listening on ${path}`);
  unlinkSync(path);
}
