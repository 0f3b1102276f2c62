/** Where a sidecar listens: TCP, a unix socket (mode 0600), or a descriptor it inherited. */
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

/** Builds the package's own listen error (`BTL_GATE_LISTEN`, `BTL_PROXY_LISTEN`, …). */
export type ListenErrorFactory = (message: string, options: { cause?: unknown }) => Error;

/** The first descriptor systemd passes (`SD_LISTEN_FDS_START`, sd_listen_fds(3)). */
const SYSTEMD_FIRST_FD = 3;

/**
 * Listens and resolves to the URL clients use (`http://127.0.0.1:PORT` or `unix:/path`).
 * A stale socket file is replaced; a live one, or another file, is refused. Every failure is
 * thrown as `listenError(message)`.
 */
export async function listenOn(
  server: Server,
  target: ListenTarget,
  listenError: ListenErrorFactory,
): Promise<string> {
  if ("path" in target) await removeStaleSocket(target.path, listenError);
  await new Promise<void>((resolve, reject) => {
    const fail = (error: NodeJS.ErrnoException) =>
      reject(listenError(`cannot listen: ${error.code ?? error.message}`, { cause: error }));
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
async function removeStaleSocket(path: string, listenError: ListenErrorFactory): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return; // nothing there
  }
  if (!isSocket) throw listenError(`${path} exists and is not a socket`, {});
  const live = await new Promise<boolean>((resolve) => {
    const probe = connect(path);
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", () => resolve(false));
  });
  if (live) throw listenError(`another process is listening on ${path}`, {});
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
