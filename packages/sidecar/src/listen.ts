/**
 * Where a sidecar listens: TCP (loopback unless told otherwise), a unix socket created mode
 * 0600, or a descriptor it inherited (systemd socket activation, inetd).
 */
import { chmodSync, lstatSync, unlinkSync } from "node:fs";
import { connect, type Server } from "node:net";

/**
 * A TCP address (host 127.0.0.1 and port 0 unless given), a unix socket path, or an inherited
 * listening descriptor (`systemd` when it came from socket activation).
 */
export type ListenTarget =
  | { readonly host?: string; readonly port?: number }
  | { readonly path: string }
  | { readonly fd: number; readonly systemd?: boolean };

/** Builds the sidecar's own coded error for a listen failure (`BTL_GATE_LISTEN`, …). */
export type ListenError = (message: string, options?: { cause?: unknown }) => Error;

/** The first descriptor systemd passes (`SD_LISTEN_FDS_START`, sd_listen_fds(3)). */
const SYSTEMD_FIRST_FD = 3;

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
      server.listen({ host: target.host ?? "127.0.0.1", port: target.port ?? 0 }, done);
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
  return count >= 1 ? SYSTEMD_FIRST_FD : undefined;
}

/** The listener flags every sidecar takes (see `commonOptions`). */
export interface ListenFlags {
  readonly bind: string;
  readonly port: number;
  readonly socket?: string | undefined;
}

/**
 * Where a sidecar started with `flags` listens, first that applies: a socket passed by
 * systemd (`LISTEN_PID` = `pid`, `LISTEN_FDS` ≥ 1), `--socket`, then `--bind`/`--port`.
 */
export function listenTargetFrom(
  flags: ListenFlags,
  env: Readonly<Record<string, string | undefined>>,
  pid: number,
): ListenTarget {
  const fd = systemdListenFd(env, pid);
  if (fd !== undefined) return { fd, systemd: true };
  if (flags.socket !== undefined) return { path: flags.socket };
  return { host: flags.bind, port: flags.port };
}
