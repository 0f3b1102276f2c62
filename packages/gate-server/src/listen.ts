/** Where the gate listens: TCP, a unix socket (mode 0600), or a descriptor it inherited. */
import { chmodSync, lstatSync, unlinkSync } from "node:fs";
import type { Server } from "node:http";
import { connect } from "node:net";
import { GateError } from "./errors.ts";

/** A TCP address, a unix socket path, or an inherited listening descriptor (systemd: 3). */
export type ListenTarget =
  | { readonly host: string; readonly port: number }
  | { readonly path: string }
  | { readonly fd: number };

/** Listens and resolves to the URL clients use (`http://127.0.0.1:PORT` or `unix:/path`). */
export async function listenOn(server: Server, target: ListenTarget): Promise<string> {
  if ("path" in target) await removeStaleSocket(target.path);
  await new Promise<void>((resolve, reject) => {
    const fail = (error: NodeJS.ErrnoException) =>
      reject(
        new GateError("BTL_GATE_LISTEN", `cannot listen: ${error.code ?? error.message}`, {
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
    } else if ("fd" in target) {
      server.listen({ fd: target.fd }, done);
    } else {
      server.listen({ host: target.host, port: target.port }, done);
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

/** A socket file left by a dead gate is removed; a live one, or any other file, is an error. */
async function removeStaleSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return; // nothing there
  }
  if (!isSocket) throw new GateError("BTL_GATE_LISTEN", `${path} exists and is not a socket`);
  const live = await new Promise<boolean>((resolve) => {
    const probe = connect(path);
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", () => resolve(false));
  });
  if (live) throw new GateError("BTL_GATE_LISTEN", `another process is listening on ${path}`);
  unlinkSync(path);
}

/**
 * The listening socket systemd passed (socket activation, sd_listen_fds(3)): fd 3 when
 * LISTEN_PID is this process and LISTEN_FDS is 1 or more; otherwise undefined.
 */
export function systemdListenFd(
  env: Readonly<Record<string, string | undefined>>,
  pid: number,
): number | undefined {
  if (env.LISTEN_PID !== String(pid)) return undefined;
  const count = Number.parseInt(env.LISTEN_FDS ?? "", 10);
  return count >= 1 ? 3 : undefined;
}
