/**
 * The docker backend's agent: a forwarder container with no network (`NetworkMode: none`) that
 * listens on its loopback's 127.0.0.1:<port> and pipes to the sidecars' sockets, and the agent
 * container in the forwarder's network namespace, so the agent's only interface is that
 * loopback and the only things on it are the sidecars. The agent runs as the workspace's
 * owner (never root), with no capability, no privilege gain, a read-only root, tmpfs /tmp and
 * $HOME, memory and process limits and an init.
 */
import { chownSync, mkdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type Docker from "dockerode";
import { sleep } from "../bottle/sidecars.ts";
import { processRef, writeRecord } from "../bottle/state.ts";
import { AGENT_URLS, agentSideOf, type Bottle, SOCKETS } from "../bottle/up.ts";
import { CliError } from "../errors.ts";
import { inStep, type Progress } from "../progress.ts";
import { READY_LINE, renderForwarder } from "../sandbox/forwarder.ts";
import type { Ended, UserTerminal } from "../terminal.ts";
import {
  attachContainer,
  containerLogs,
  containerName,
  type Engine,
  engineOf,
  LogDemuxer,
  labelsOf,
} from "./engine.ts";
import { agentImageOf, createContainer, HARDENING, imagesOf } from "./sidecars.ts";

type Env = Readonly<Record<string, string | undefined>>;

/** Inside the agent's container. */
const INSIDE = {
  home: "/home/agent",
  /** The rendered home files, read-only; copied into the tmpfs $HOME before the agent starts. */
  homeFiles: "/opt/bottle/home",
  sockets: "/run/bottle",
  forwarder: "/opt/bottle/forwarder.mjs",
} as const;

/** The agent container's limits. */
const AGENT_LIMITS = { memory: 4096 * 1024 * 1024, pids: 1024 } as const;

/** Copies the home files into $HOME, then runs the agent's command (no secret in argv). */
const START = `cp -R ${INSIDE.homeFiles}/. "$HOME"/ && exec "$@"`;

/**
 * On a terminal, the start script sets the window's size first: the engine's resize comes
 * only after the start, too late for an agent that asks at once.
 */
function sized(user: UserTerminal): string {
  const rows = Math.trunc(user.stdout.rows || 24);
  const cols = Math.trunc(user.stdout.columns || 80);
  return `stty rows ${rows} cols ${cols} 2>/dev/null; ${START}`;
}

/** How long the forwarder container may take to listen. */
const FORWARDER_TIMEOUT_MS = 30_000;

/** What {@link runDockerAgent} needs of the `bottle run` command. */
export interface DockerAgentRun {
  readonly bottle: Bottle;
  readonly command: readonly string[];
  readonly env: Env;
  /** The user's terminal, when the agent gets one; null for plain pipes. */
  readonly terminal: UserTerminal | null;
  /** Without a terminal: what the agent reads (bottle's own stdin), to its end. */
  readonly stdin: NodeJS.ReadableStream;
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  readonly progress: Progress;
  /** How long the agent has after SIGTERM. */
  readonly graceMs: number;
  /** Receives the function that stops the agent (a signal, a sidecar that stopped). */
  readonly onStop: (stop: (reason: string) => void) => void;
}

/**
 * Runs the agent in its container until it exits, a sidecar's container stops (the agent is
 * stopped and the reason thrown as CliError BTL_CLI_SIDECAR) or the stop function is called.
 * Throws CliError BTL_CLI_UNSUPPORTED (no agent.image), BTL_CLI_DOCKER_AGENT (a root-owned
 * workspace, a forwarder that does not listen) and BTL_CLI_DOCKER_IMAGE.
 */
export async function runDockerAgent(run: DockerAgentRun): Promise<Ended> {
  const { bottle, progress } = run;
  const { manifest, paths } = bottle;
  const image = agentImageOf(manifest);
  const engine = engineOf(run.env);
  const owner = statSync(bottle.workspace);
  if (owner.uid === 0) {
    throw new CliError(
      "BTL_CLI_DOCKER_AGENT",
      `the workspace ${bottle.workspace} belongs to root, and the agent's container runs as the workspace's owner, never as root: give it to the agent's user (\`chown -R 1000:1000 ${bottle.workspace}\`)`,
    );
  }
  const user = { uid: owner.uid, gid: owner.gid };
  const side = agentSideOf(bottle);
  const home = join(paths.sandbox, "home");
  writeHomeFiles(home, side.homeFiles, user);

  const forwarder = await inStep(progress, "forwarder container", () =>
    startForwarder(engine, bottle, imagesOf(run.env).forwarder),
  );
  const pty = run.terminal !== null;
  const env = {
    ...side.env,
    HOME: INSIDE.home,
    USER: "agent",
    LOGNAME: "agent",
    ...(pty && run.env.TERM ? { TERM: run.env.TERM } : {}),
  };
  const binds = [
    `${bottle.workspace}:${manifest.agent.workdir}:rw`,
    `${home}:${INSIDE.homeFiles}:ro`,
    ...(manifest.agent.binds ?? []).map((path) => `${path}:${path}:ro`),
  ];
  const container = await createContainer(engine, {
    name: containerName(bottle.record.name, "agent"),
    Image: image,
    User: `${user.uid}:${user.gid}`,
    Entrypoint: [
      "/bin/sh",
      "-c",
      pty ? sized(run.terminal as UserTerminal) : START,
      "bottle-agent",
    ],
    Cmd: [...(run.command.length > 0 ? run.command : manifest.agent.command)],
    // SECURITY: no secret here: the gate token is in the gitconfig among the home files.
    Env: Object.entries(env).map(([key, value]) => `${key}=${value}`),
    WorkingDir: manifest.agent.workdir,
    Healthcheck: { Test: ["NONE"] },
    Tty: pty,
    // The agent reads bottle's stdin (keys on a terminal, a pipe's bytes to their end otherwise).
    OpenStdin: true,
    StdinOnce: true,
    AttachStdin: true,
    AttachStdout: true,
    AttachStderr: true,
    Labels: labelsOf(paths, bottle.record.name, "agent"),
    HostConfig: {
      ...HARDENING,
      CapDrop: [...HARDENING.CapDrop],
      SecurityOpt: [...HARDENING.SecurityOpt],
      // The forwarder's network namespace: its loopback, and nothing else.
      NetworkMode: `container:${forwarder.id}`,
      Binds: binds,
      Tmpfs: {
        "/tmp": "rw,nosuid,nodev,size=1g,mode=1777",
        // Docker's tmpfs takes no uid= option: a sticky, world-writable $HOME in a container
        // with one user.
        [INSIDE.home]: "rw,nosuid,nodev,size=512m,mode=1777",
      },
      Memory: AGENT_LIMITS.memory,
      PidsLimit: AGENT_LIMITS.pids,
    },
  });
  const stream = await attachContainer(engine, container.id, true);
  const output = new Promise<void>((resolve) => {
    stream.once("end", resolve);
    stream.once("close", resolve);
    stream.once("error", () => resolve());
  });
  const detach = pty
    ? wireTerminal(stream, container, run.terminal as UserTerminal)
    : wirePipes(stream, run.stdin, run.stdout, run.stderr);
  await inStep(progress, `agent container (${image})`, () => container.start());
  const pid = (await container.inspect()).State.Pid;
  bottle.record = { ...bottle.record, agent: processRef(pid) };
  writeRecord(paths, bottle.record);
  if (pty) await resize(container, run.terminal as UserTerminal);

  let stopping: Promise<unknown> | null = null;
  const stop = (reason: string) => {
    if (stopping) return;
    progress.note(`stopping the agent: ${reason}`);
    bottle.record = { ...bottle.record, ended: { reason } };
    stopping = container.stop({ t: Math.ceil(run.graceMs / 1000) }).catch(() => {});
  };
  run.onStop(stop);
  let sidecarFailure: string | null = null;
  const watchers = bottle.sidecars.map((sidecar) => {
    const onExit = (code: number | null) => {
      sidecarFailure = `the ${sidecar.record.name} sidecar stopped (exit code ${code}); see \`bottle logs ${bottle.record.name}\``;
      stop(sidecarFailure);
    };
    sidecar.child.once("exit", onExit);
    return () => {
      sidecar.child.off("exit", onExit);
      sidecar.child.unref();
    };
  });
  const status = (await container.wait()) as { StatusCode: number };
  await Promise.race([output, sleep(2_000)]);
  detach();
  for (const unwatch of watchers) unwatch();
  if (stopping) await stopping;
  bottle.record = {
    ...bottle.record,
    ended: {
      reason: bottle.record.ended?.reason ?? "the agent exited",
      exitCode: status.StatusCode,
    },
  };
  writeRecord(paths, bottle.record);
  if (sidecarFailure !== null) throw new CliError("BTL_CLI_SIDECAR", sidecarFailure);
  return { exitCode: status.StatusCode, signal: null };
}

/** Writes the home files, owned by the agent's user, into a fresh directory. */
function writeHomeFiles(
  dir: string,
  files: Readonly<Record<string, string>>,
  user: { uid: number; gid: number },
): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { mode: 0o700 });
  chownSync(dir, user.uid, user.gid);
  for (const [path, content] of Object.entries(files)) {
    const file = join(dir, path);
    for (let parent = dirname(file); parent !== dir; parent = dirname(parent)) {
      mkdirSync(parent, { recursive: true, mode: 0o700 });
      chownSync(parent, user.uid, user.gid);
    }
    writeFileSync(file, content, { mode: 0o600 });
    chownSync(file, user.uid, user.gid);
  }
}

/**
 * Starts the forwarder container (no network; the sockets directory read-only) and resolves
 * once it listens on every port.
 */
async function startForwarder(
  engine: Engine,
  bottle: Bottle,
  image: string,
): Promise<Docker.Container> {
  const { paths } = bottle;
  const forwards: Array<readonly [number, string]> = [];
  if (bottle.gate) forwards.push([Number(new URL(AGENT_URLS.gate).port), SOCKETS.gate]);
  if (bottle.proxy) forwards.push([Number(new URL(AGENT_URLS.proxy).port), SOCKETS.proxy]);
  const script = join(paths.sandbox, "forwarder.mjs");
  writeFileSync(
    script,
    renderForwarder({
      files: [],
      forwards: forwards.map(([port, socket]) => [port, `${INSIDE.sockets}/${socket}`] as const),
      readyFd: 1,
    }),
    { mode: 0o600 },
  );
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  const container = await createContainer(engine, {
    name: containerName(bottle.record.name, "forwarder"),
    Image: image,
    Entrypoint: ["node", INSIDE.forwarder],
    Cmd: [],
    WorkingDir: "/",
    Healthcheck: { Test: ["NONE"] },
    // As the sockets' owner, to connect to them.
    User: `${uid}:${gid}`,
    Labels: labelsOf(paths, bottle.record.name, "forwarder"),
    HostConfig: {
      ...HARDENING,
      CapDrop: [...HARDENING.CapDrop],
      SecurityOpt: [...HARDENING.SecurityOpt],
      NetworkMode: "none",
      Binds: [`${paths.sockets}:${INSIDE.sockets}:ro`, `${script}:${INSIDE.forwarder}:ro`],
      Memory: 256 * 1024 * 1024,
      PidsLimit: 64,
    },
  });
  await container.start();
  const deadline = Date.now() + FORWARDER_TIMEOUT_MS;
  for (;;) {
    const logs = await containerLogs(engine, container.id);
    if (logs.split("\n").includes(READY_LINE)) return container;
    const state = (await container.inspect()).State;
    if (!state.Running || Date.now() > deadline) {
      throw new CliError(
        "BTL_CLI_DOCKER_AGENT",
        `the forwarder container did not listen${state.Running ? ` within ${FORWARDER_TIMEOUT_MS} ms` : ` (exit code ${state.ExitCode})`}: ${logs.trim() || "no output"}`,
      );
    }
    await sleep(50);
  }
}

/** Without a terminal: the container's stdout and stderr, demultiplexed, to bottle's. */
function wirePipes(
  stream: NodeJS.ReadWriteStream,
  stdin: NodeJS.ReadableStream,
  stdout: NodeJS.WritableStream,
  stderr: NodeJS.WritableStream,
): () => void {
  const out = new LogDemuxer(1);
  const err = new LogDemuxer(2);
  stream.pipe(out).pipe(stdout, { end: false });
  stream.pipe(err).pipe(stderr, { end: false });
  // At the end of bottle's stdin the agent's is closed (a half-close of the attachment).
  stdin.pipe(stream);
  return () => {
    out.unpipe();
    err.unpipe();
    stdin.unpipe(stream);
    stdin.pause();
  };
}

/** On a terminal: raw mode, keys to the agent, its output to the terminal, the size followed. */
function wireTerminal(
  stream: NodeJS.ReadWriteStream,
  container: Docker.Container,
  user: UserTerminal,
): () => void {
  const wasRaw = user.stdin.isRaw;
  user.stdin.setRawMode(true);
  user.stdin.resume();
  const onInput = (data: Buffer) => stream.write(data);
  const onResize = () => void resize(container, user);
  user.stdin.on("data", onInput);
  user.stdout.on("resize", onResize);
  stream.pipe(user.stdout, { end: false });
  return () => {
    user.stdin.off("data", onInput);
    user.stdout.off("resize", onResize);
    stream.unpipe(user.stdout);
    user.stdin.setRawMode(wasRaw);
    user.stdin.pause();
  };
}

async function resize(container: Docker.Container, user: UserTerminal): Promise<void> {
  await container
    .resize({ h: user.stdout.rows || 24, w: user.stdout.columns || 80 })
    .catch(() => {});
}
