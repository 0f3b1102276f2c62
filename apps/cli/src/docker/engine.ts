/**
 * The docker backend's link to a container engine: a Docker Engine API client (Docker, or
 * podman's Docker-compatible service) from DOCKER_HOST or the default socket; the names and
 * labels that let `bottle ps`, `logs` and `down` find a bottle's containers; their logs
 * demultiplexed; and their removal.
 */
import { appendFileSync } from "node:fs";
import { createRequire } from "node:module";
import type { Socket } from "node:net";
import { join } from "node:path";
import { Transform, type TransformCallback } from "node:stream";
import { nodeHttp } from "@bottle/sidecar";
import type Docker from "dockerode";
import type { BottlePaths } from "../bottle/state.ts";
import { CliError } from "../errors.ts";

// dockerode (with its SSH and gRPC transports) and node:http's ESM namespace (which loads
// Node's bundled undici) weigh more than the rest of a sandbox bottle's start: loaded only for
// the docker backend, on first use.
const require = createRequire(import.meta.url);

type Env = Readonly<Record<string, string | undefined>>;

/** Where an engine listens when DOCKER_HOST is unset. */
export const DEFAULT_DOCKER_SOCKET = "/var/run/docker.sock";

/** Labels on every container of a bottle. */
export const LABELS = {
  /** The bottle's name. */
  name: "dev.bottle.name",
  /** gate, proxy, forwarder or agent. */
  role: "dev.bottle.role",
  /** The bottle's state directory: two state roots may hold bottles of the same name. */
  root: "dev.bottle.root",
} as const;

/** A container engine and where it was found. */
export interface Engine {
  readonly docker: Docker;
  readonly socket: string;
}

/**
 * The engine of DOCKER_HOST (`unix:///path`), or of the default socket. Throws CliError
 * BTL_CLI_DOCKER_UNREACHABLE for a DOCKER_HOST that is not a unix socket.
 */
export function engineOf(env: Env): Engine {
  const host = env.DOCKER_HOST;
  let socket = DEFAULT_DOCKER_SOCKET;
  if (host !== undefined && host !== "") {
    if (!host.startsWith("unix://") || host.length <= "unix://".length) {
      throw new CliError(
        "BTL_CLI_DOCKER_UNREACHABLE",
        `DOCKER_HOST=${host}: only unix:///path/to/socket engines are supported (a TCP engine would carry the sidecars' secrets unencrypted)`,
      );
    }
    socket = host.slice("unix://".length);
  }
  const DockerClient = require("dockerode") as typeof Docker;
  return { docker: new DockerClient({ socketPath: socket }), socket };
}

/**
 * Pings the engine. Throws CliError BTL_CLI_DOCKER_UNREACHABLE when nothing answers on its
 * socket.
 */
export async function pingEngine(engine: Engine): Promise<void> {
  try {
    await engine.docker.ping();
  } catch (error) {
    throw new CliError(
      "BTL_CLI_DOCKER_UNREACHABLE",
      `no container engine answers on ${engine.socket} (${(error as Error).message}): start Docker, or podman's service (\`podman system service --time=0 unix://$PWD/podman.sock\`) and set DOCKER_HOST=unix://<that socket>`,
      { cause: error },
    );
  }
}

/** A bottle's container of `role`: `bottle-<name>-<role>`. */
export function containerName(bottle: string, role: string): string {
  return `bottle-${bottle}-${role}`;
}

/** The labels of bottle `paths`' container of `role`. */
export function labelsOf(paths: BottlePaths, bottle: string, role: string): Record<string, string> {
  return { [LABELS.name]: bottle, [LABELS.role]: role, [LABELS.root]: paths.root };
}

/** Every container of the bottle, running or not. */
export async function bottleContainers(
  engine: Engine,
  paths: BottlePaths,
  bottle: string,
): Promise<Docker.ContainerInfo[]> {
  const found = await engine.docker.listContainers({
    all: true,
    filters: { label: [`${LABELS.name}=${bottle}`, `${LABELS.root}=${paths.root}`] },
  });
  // SECURITY: filters are the engine's; the labels are checked again here before anything goes.
  return found.filter(
    (c) => c.Labels[LABELS.name] === bottle && c.Labels[LABELS.root] === paths.root,
  );
}

/**
 * Stops the bottle's containers (SIGTERM, SIGKILL after `graceSeconds`), keeps each one's logs
 * in `logs/<role>.log`, and removes them with their anonymous volumes. The agent goes first.
 * Throws CliError BTL_CLI_DOCKER_UNREACHABLE when the engine does not answer.
 */
export async function removeBottleContainers(
  engine: Engine,
  paths: BottlePaths,
  bottle: string,
  graceSeconds: number,
): Promise<void> {
  // Unreachable: the record stays as it is, so that `bottle down` can try again.
  await pingEngine(engine);
  const containers = await bottleContainers(engine, paths, bottle);
  const order = (c: Docker.ContainerInfo) => (c.Labels[LABELS.role] === "agent" ? 0 : 1);
  containers.sort((a, b) => order(a) - order(b));
  for (const info of containers) {
    const container = engine.docker.getContainer(info.Id);
    if (info.State === "running") {
      await container.stop({ t: graceSeconds }).catch(ignoreGone);
    }
  }
  for (const info of containers) {
    const role = info.Labels[LABELS.role] ?? "container";
    // The agent's output went to its terminal; the forwarder's is one line.
    if (role !== "agent" && role !== "forwarder") {
      const text = await containerLogs(engine, info.Id).catch(() => "");
      if (text !== "") appendFileSync(join(paths.logs, `${role}.log`), text, { mode: 0o600 });
    }
    await engine.docker.getContainer(info.Id).remove({ force: true, v: true }).catch(ignoreGone);
  }
}

function ignoreGone(error: unknown): void {
  const status = (error as { statusCode?: number }).statusCode;
  // 304: already stopped; 404: already gone.
  if (status !== 304 && status !== 404) throw error;
}

/**
 * Attaches to a container's output (and its input with `stdin`) by the engine's upgrade to a
 * raw stream, as `docker attach` does: a request with no body (docker-modem sends its options
 * as a JSON body too, which an engine hands to the container as the first bytes of its stdin).
 * Without a terminal, the output is multiplexed ({@link LogDemuxer}).
 */
export function attachContainer(engine: Engine, id: string, stdin: boolean): Promise<Socket> {
  const query = `stream=1&stdout=1&stderr=1&stdin=${stdin ? 1 : 0}`;
  return new Promise((resolve, reject) => {
    const req = nodeHttp.request({
      socketPath: engine.socket,
      method: "POST",
      path: `/containers/${encodeURIComponent(id)}/attach?${query}`,
      headers: { Connection: "Upgrade", Upgrade: "tcp", "Content-Length": "0" },
    });
    req.once("upgrade", (_res, socket, head) => {
      if (head.length > 0) socket.unshift(head);
      resolve(socket);
    });
    req.once("response", (res) => {
      res.resume();
      reject(new Error(`attach: the engine answered ${res.statusCode} instead of upgrading`));
    });
    req.once("error", reject);
    req.end();
  });
}

/** A container's whole log (stdout and stderr interleaved), demultiplexed. */
export async function containerLogs(engine: Engine, id: string): Promise<string> {
  const raw = (await engine.docker
    .getContainer(id)
    .logs({ stdout: true, stderr: true, follow: false })) as unknown as Buffer;
  const demux = new LogDemuxer();
  const chunks: Buffer[] = [];
  demux.on("data", (chunk: Buffer) => chunks.push(chunk));
  demux.end(raw);
  await new Promise((resolve) => demux.once("end", resolve));
  return Buffer.concat(chunks).toString("utf8");
}

/**
 * Docker's multiplexed log stream (containers without a terminal) to plain bytes: each frame
 * is an 8-byte header (stream 1 stdout or 2 stderr, three zero bytes, a big-endian 32-bit
 * length) and its payload. https://docs.docker.com/reference/api/engine/version/v1.41/#tag/Container/operation/ContainerAttach
 * `stream` picks one of them (1 or 2), or both when unset.
 */
export class LogDemuxer extends Transform {
  #pending: Buffer = Buffer.alloc(0);
  readonly #only: 1 | 2 | undefined;

  constructor(only?: 1 | 2) {
    super();
    this.#only = only;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.#pending = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    while (this.#pending.length >= 8) {
      const stream = this.#pending[0];
      const size = this.#pending.readUInt32BE(4);
      if (stream === undefined || stream > 2 || this.#pending.readUIntBE(1, 3) !== 0) {
        done(new Error("not a multiplexed log stream"));
        return;
      }
      if (this.#pending.length < 8 + size) break;
      const payload = this.#pending.subarray(8, 8 + size);
      this.#pending = this.#pending.subarray(8 + size);
      if (this.#only === undefined || this.#only === stream) this.push(payload);
    }
    done();
  }

  override _flush(done: TransformCallback): void {
    done(this.#pending.length === 0 ? null : new Error("a log frame was cut short"));
  }
}

/** Each sidecar container's state by role (`running` or `exited`): what `bottle ps` shows. */
export async function containerStates(
  engine: Engine,
  paths: BottlePaths,
  bottle: string,
): Promise<Map<string, "running" | "exited">> {
  const states = new Map<string, "running" | "exited">();
  for (const info of await bottleContainers(engine, paths, bottle)) {
    const role = info.Labels[LABELS.role];
    if (role !== undefined) states.set(role, info.State === "running" ? "running" : "exited");
  }
  return states;
}

/**
 * Writes the logs of the bottle's sidecar containers (`only` one of them if set), each line
 * prefixed by its role when there are several; with `follow`, until they stop or `signal`.
 * Throws CliError BTL_CLI_USAGE for a sidecar the bottle does not have.
 */
export async function writeContainerLogs(
  engine: Engine,
  paths: BottlePaths,
  bottle: string,
  options: { only?: string; follow: boolean; write: (text: string) => void; signal: AbortSignal },
): Promise<void> {
  const sidecars = (await bottleContainers(engine, paths, bottle)).filter((c) => {
    const role = c.Labels[LABELS.role];
    return role !== "agent" && role !== "forwarder";
  });
  const roles = sidecars.map((c) => c.Labels[LABELS.role] ?? "").sort();
  if (options.only !== undefined && !roles.includes(options.only)) {
    throw new CliError(
      "BTL_CLI_USAGE",
      `bottle ${bottle} has no ${options.only} container (it has: ${roles.join(", ") || "none"})`,
    );
  }
  const chosen = sidecars.filter(
    (c) => options.only === undefined || c.Labels[LABELS.role] === options.only,
  );
  const prefix = chosen.length > 1;
  await Promise.all(
    chosen.map(async (info) => {
      const role = info.Labels[LABELS.role] ?? "";
      const container = engine.docker.getContainer(info.Id);
      const lines = (text: string) => {
        for (const line of text.split("\n").slice(0, -1)) {
          options.write(prefix ? `${role.padEnd(6)}| ${line}\n` : `${line}\n`);
        }
      };
      if (!options.follow) {
        lines(await containerLogs(engine, info.Id));
        return;
      }
      const raw = (await container.logs({
        stdout: true,
        stderr: true,
        follow: true,
        abortSignal: options.signal,
      })) as NodeJS.ReadableStream;
      const demux = new LogDemuxer();
      let pending = "";
      demux.on("data", (chunk: Buffer) => {
        pending += chunk.toString("utf8");
        const end = pending.lastIndexOf("\n") + 1;
        lines(pending.slice(0, end));
        pending = pending.slice(end);
      });
      raw.pipe(demux);
      await new Promise<void>((resolve) => {
        demux.once("end", resolve);
        demux.once("error", () => resolve());
        raw.once("error", () => resolve());
        raw.once("close", () => resolve());
      });
    }),
  );
}
