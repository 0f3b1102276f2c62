/**
 * The docker backend's sidecars: each one a container from its package's image, listening on
 * its unix socket in the bottle's sockets directory (bound into the container at the same
 * path), ready once that socket accepts a connection.
 */
import { EventEmitter } from "node:events";
import { connect } from "node:net";
import { join } from "node:path";
import type { Manifest } from "@bottle/manifest";
import { TOKMAN_URL_ENV } from "@bottle/tokman/client";
import type Docker from "dockerode";
import {
  type SidecarHandle,
  type SidecarLaunch,
  type StartedSidecar,
  sleep,
} from "../bottle/sidecars.ts";
import { type BottlePaths, startTimeOf } from "../bottle/state.ts";
import { CliError } from "../errors.ts";
import { containerLogs, containerName, type Engine, labelsOf } from "./engine.ts";

type Env = Readonly<Record<string, string | undefined>>;

/**
 * How the gate's hooks run `bottle-git-gate` inside the gate image: from its PATH. The host's
 * Node and the host's copy of the package are not in the container.
 */
export const CONTAINER_GIT_GATE_COMMAND: readonly string[] = ["bottle-git-gate"];

/** The images, the forwarder's included (any image with `node` on its PATH will do). */
export function imagesOf(env: Env): { gate: string; proxy: string; forwarder: string } {
  const gate = env.BOTTLE_CLI_GATE_IMAGE || "bottle-gate:dev";
  return {
    gate,
    proxy: env.BOTTLE_CLI_PROXY_IMAGE || "bottle-cred-proxy:dev",
    forwarder: env.BOTTLE_CLI_FORWARDER_IMAGE || gate,
  };
}

/** The agent's image. Throws CliError BTL_CLI_UNSUPPORTED when the manifest names none. */
export function agentImageOf(manifest: Manifest): string {
  const image = manifest.agent.image;
  if (image !== undefined) return image;
  throw new CliError(
    "BTL_CLI_UNSUPPORTED",
    "the docker backend runs the agent in the manifest's agent.image: set it (an image with /bin/sh, cp and the agent's tools)",
  );
}

/**
 * The sidecars' network: they reach the upstreams from it. `bridge` (the engine's default
 * network) unless BOTTLE_CLI_SIDECAR_NETWORK says otherwise; `host` where the upstreams are
 * on the host's loopback (the tests' fakes). The agent never joins it.
 */
export function sidecarNetwork(env: Env): string {
  return env.BOTTLE_CLI_SIDECAR_NETWORK || "bridge";
}

/** What every container of a bottle gets: no capability, no privilege gain, a read-only root. */
export const HARDENING = {
  CapDrop: ["ALL"],
  SecurityOpt: ["no-new-privileges"],
  ReadonlyRootfs: true,
  Init: true,
} as const;

const MIB = 1024 * 1024;

/** The binds of each sidecar binary: host path → same path in the container. */
function bindsOf(bin: string, paths: BottlePaths): string[] {
  switch (bin) {
    case "bottle-gate":
      // Mirrors and the gate's state (read-write); the token file's directory read-only, so a
      // token file replaced by a rename is seen.
      return [`${paths.stage}:${paths.stage}:rw`, `${paths.private}:${paths.private}:ro`];
    case "bottle-cred-proxy": {
      const routes = join(paths.private, "routes.json");
      return [`${routes}:${routes}:ro`];
    }
    default:
      throw new CliError(
        "BTL_CLI_UNSUPPORTED",
        `the docker backend has no container for the ${bin} sidecar: use --backend sandbox`,
      );
  }
}

/** A bottle on an engine: what the docker backend's steps share. */
export interface DockerBottle {
  readonly engine: Engine;
  readonly paths: BottlePaths;
  readonly name: string;
  readonly env: Env;
}

/**
 * Starts a sidecar's container and resolves once its socket accepts connections. Throws
 * CliError BTL_CLI_SIDECAR (a container that exits or stays silent, with its last log lines),
 * BTL_CLI_DOCKER_IMAGE (an image the engine does not have), BTL_CLI_NAME_TAKEN (a container of
 * that name exists) or BTL_CLI_UNSUPPORTED (no socket; a tokman out of its reach).
 */
export async function startSidecarContainer(
  bottle: DockerBottle,
  launch: SidecarLaunch,
): Promise<StartedSidecar> {
  const { engine, paths } = bottle;
  const socket = launch.socket;
  if (socket === undefined) {
    throw new CliError(
      "BTL_CLI_UNSUPPORTED",
      `the docker backend runs ${launch.name} without a socket`,
    );
  }
  const network = sidecarNetwork(bottle.env);
  const tokman = launch.env[TOKMAN_URL_ENV];
  if (tokman !== undefined && network !== "host" && isLoopback(new URL(tokman).hostname)) {
    // SECURITY: fail closed rather than start a gate or proxy whose credentials cannot come.
    throw new CliError(
      "BTL_CLI_UNSUPPORTED",
      `${launch.name}'s tokman listens on this host's loopback (${new URL(tokman).host}), out of reach of containers on network ${network}: set BOTTLE_CLI_SIDECAR_NETWORK=host, or run tokman where the sidecars reach it`,
    );
  }
  const images = imagesOf(bottle.env);
  const image = launch.bin === "bottle-cred-proxy" ? images.proxy : images.gate;
  const binds = bindsOf(launch.bin, paths);
  // SECURITY: the sidecar's secrets (the proxy's token slots) go into its container's
  // environment, never into its command line. PATH and HOME are the image's, not the host's.
  const env = Object.entries(launch.env)
    .filter(([key]) => key !== "PATH" && key !== "HOME")
    .map(([key, value]) => `${key}=${value}`);
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  const name = containerName(bottle.name, launch.name);
  const container = await createContainer(engine, {
    name,
    Image: image,
    Entrypoint: [launch.bin],
    Cmd: [...launch.args],
    Env: [...env, "HOME=/tmp"],
    WorkingDir: "/tmp",
    // The image's health check asks a TCP port; this sidecar listens on its socket only, and
    // is ready when that socket accepts.
    Healthcheck: { Test: ["NONE"] },
    // The sidecar runs as the user running bottle: it owns the stage, the sockets directory
    // and the sockets, as the sandbox backend's host processes do.
    User: `${uid}:${gid}`,
    Labels: labelsOf(paths, bottle.name, launch.name),
    HostConfig: {
      ...HARDENING,
      CapDrop: [...HARDENING.CapDrop],
      SecurityOpt: [...HARDENING.SecurityOpt],
      NetworkMode: network,
      Binds: [`${paths.sockets}:${paths.sockets}:rw`, ...binds],
      Tmpfs: { "/tmp": "rw,nosuid,nodev,size=256m" },
      Memory: 1024 * MIB,
      PidsLimit: 512,
    },
  });
  await container.start();
  const timeoutMs = launch.readyTimeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  let checked = 0;
  while (!(await accepts(socket))) {
    if (Date.now() - checked > 250) {
      checked = Date.now();
      const state = (await container.inspect()).State;
      if (!state.Running) {
        throw new CliError(
          "BTL_CLI_SIDECAR",
          `${launch.name} exited before it listened (exit code ${state.ExitCode})${await logTail(engine, container)}`,
        );
      }
    }
    if (Date.now() > deadline) {
      throw new CliError(
        "BTL_CLI_SIDECAR",
        `${launch.name} did not listen within ${timeoutMs} ms${await logTail(engine, container)}`,
      );
    }
    await sleep(25);
  }
  const pid = (await container.inspect()).State.Pid;
  return {
    child: new ContainerExit(container),
    url: `unix:${socket}`,
    record: {
      name: launch.name,
      socket,
      log: launch.log,
      container: name,
      // The container's init as this host sees it (with a remote engine, the engine's pid).
      pid,
      start: startTimeOf(pid) ?? "",
    },
  };
}

/**
 * Creates a container. Throws CliError BTL_CLI_DOCKER_IMAGE when the image is missing and
 * BTL_CLI_NAME_TAKEN when a container of that name exists (another bottle's, or a leftover).
 */
export async function createContainer(
  engine: Engine,
  options: Docker.ContainerCreateOptions,
): Promise<Docker.Container> {
  try {
    return await engine.docker.createContainer(options);
  } catch (error) {
    const status = (error as { statusCode?: number }).statusCode;
    if (status === 404) {
      throw new CliError(
        "BTL_CLI_DOCKER_IMAGE",
        `the engine has no image ${options.Image}: build the images (tooling/images.sh) or name others with BOTTLE_CLI_GATE_IMAGE, BOTTLE_CLI_PROXY_IMAGE, BOTTLE_CLI_FORWARDER_IMAGE or agent.image`,
        { cause: error },
      );
    }
    // Docker answers 409; podman 500 with "already in use".
    if (status === 409 || /already in use/.test((error as Error).message)) {
      throw new CliError(
        "BTL_CLI_NAME_TAKEN",
        `a container named ${options.name} exists: remove it (\`docker rm -f ${options.name}\`) or pick another --name`,
        { cause: error },
      );
    }
    throw error;
  }
}

async function logTail(engine: Engine, container: Docker.Container): Promise<string> {
  const text = await containerLogs(engine, container.id).catch(() => "");
  const lines = text.trimEnd().split("\n").slice(-8);
  return text.trim() === "" ? "" : `:\n${lines.map((line) => `  ${line}`).join("\n")}`;
}

function isLoopback(hostname: string): boolean {
  return hostname === "localhost" || hostname === "[::1]" || hostname.startsWith("127.");
}

/** Whether a unix socket accepts a connection. */
function accepts(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ path });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** A container's end as a child process's "exit" event, asked of the engine once watched. */
class ContainerExit extends EventEmitter implements SidecarHandle {
  readonly #container: Docker.Container;
  readonly #abort = new AbortController();
  #watching = false;

  constructor(container: Docker.Container) {
    super();
    this.#container = container;
  }

  override once(event: string | symbol, listener: (...args: never[]) => void): this {
    if (event === "exit" && !this.#watching) {
      this.#watching = true;
      this.#container
        .wait({ abortSignal: this.#abort.signal })
        .then((result: { StatusCode: number }) => this.emit("exit", result.StatusCode, null))
        .catch(() => {});
    }
    return super.once(event, listener as (...args: unknown[]) => void);
  }

  /** Stops watching (the engine keeps the container running). */
  unref(): void {
    this.#abort.abort();
  }
}
