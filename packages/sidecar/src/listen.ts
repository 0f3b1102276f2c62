/**
 * Where a sidecar listens: TCP (loopback unless told otherwise), a unix socket created mode
 * 0600, or a descriptor it inherited (systemd socket activation, inetd).
 */
import { chmodSync, lstatSync, unlinkSync } from "node:fs";
import { connect, type Server } from "node:net";

/** A TCP address (host default 127.0.0.1), a unix socket path, or an inherited descriptor. */
export type ListenTarget =
  | { readonly host?: string; readonly port: number }
  | { readonly path: string }
  | { readonly fd: number };

/** Builds the sidecar's own coded error for a listen failure (`BTL_GATE_LISTEN`, …). */
export type ListenError = (message: string, options?: { cause?: unknown }) => Error;

/**
 * Listens and resolves to the URL clients use (`http://127.0.0.1:PORT`, `http://[::1]:PORT`
 * or `unix:/path`). A socket file left by a dead process is replaced; a live socket, or any
 * other file at the path, is refused. Throws what `fail` builds (address in use, path taken).
 */
export async function listenOn(
  server: Server,
  target: ListenTarget,
  fail: ListenError,
): Promise<string> {
  if ("path" in target) await removeStaleSocket(target.path, fail);
  await new Promise<void>((resolve, reject) => {
    const failed = (error: NodeJS.ErrnoException) =>
      reject(fail(`cannot listen: ${error.code ?? error.message}`, { cause: error }));
    server.once("error", failed);
    const done = () => {
      server.off("error", failed);
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
      server.listen({ host: target.host ?? "127.0.0.1", port: target.port }, done);
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

/** A socket file left by a dead process is removed; a live one, or any other file, is refused. */
async function removeStaleSocket(path: string, fail: ListenError): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return; // nothing there
  }
  if (!isSocket) throw fail(`${path} exists and is not a socket`);
  const live = await new Promise<boolean>((resolve) => {
    const probe = connect(path);
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", () => resolve(false));
  });
  if (live) throw fail(`another process is listening on ${path}`);
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
