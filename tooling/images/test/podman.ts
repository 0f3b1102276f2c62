/**
 * podman for the image smoke tests: rootful, with the containers.conf tooling/images.sh writes,
 * containers and volumes removed when the test finishes, and the check that podman is there.
 */
import { randomBytes } from "node:crypto";
import { accessSync, constants } from "node:fs";
import { createServer } from "node:net";
import { homedir } from "node:os";
import { delimiter, join } from "node:path";
import { createBaseEnv, type RunProcessResult, runProcess } from "@bottle/test-utils";
import { onTestFinished } from "vitest";

/** Where tooling/images.sh keeps its containers.conf and the canaries it planted. */
/** Podman's settings for this machine image, shared with tooling/images.sh. */
const CONTAINERS_CONF = join(import.meta.dirname, "../containers.conf");
export const IMAGES_CACHE = join(
  process.env.BOTTLE_CACHE_DIR ??
    join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "bottle"),
  "images",
);
export const GATE = "bottle-gate:dev";
export const PROXY = "bottle-cred-proxy:dev";
export const TOKMAN = "bottle-tokman:dev";
export const IMAGES = [GATE, PROXY, TOKMAN] as const;

function onPath(command: string): boolean {
  return (process.env.PATH ?? "").split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, command), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/**
 * Throws unless podman is installed: these tests run on their own (`pnpm test:images`, after
 * tooling/images.sh), and without podman they fail, saying so.
 */
export function requirePodman(): void {
  if (!onPath("podman")) {
    throw new Error("the image tests need podman and the images: see tooling/images/README.md");
  }
}

/** Runs podman with `args`; rejects on a non-zero exit unless `allowFailure`. */
export async function podman(
  args: readonly string[],
  options: { env?: Record<string, string>; allowFailure?: boolean; timeoutMs?: number } = {},
): Promise<RunProcessResult> {
  const result = await runProcess("podman", args, {
    env: createBaseEnv({ CONTAINERS_CONF, ...options.env }),
    timeoutMs: options.timeoutMs ?? 60_000,
  });
  if (result.code !== 0 && !options.allowFailure)
    throw new Error(`podman ${args.join(" ")} exited ${result.code}: ${result.stderr.trim()}`);
  return result;
}

/** A name for a container or volume of this test, unique on the machine. */
export function uniqueName(what: string): string {
  return `bottle-smoke-${what}-${randomBytes(4).toString("hex")}`;
}

/** A podman volume, removed after the test. */
export async function createVolume(): Promise<string> {
  const name = uniqueName("state");
  await podman(["volume", "create", name]);
  onTestFinished(async () => {
    await podman(["volume", "rm", "--force", name], { allowFailure: true });
  });
  return name;
}

/**
 * Starts a detached container of `image` (run options before it, the command after it),
 * removed after the test. The health check's timer is left to the tests (this machine has no
 * systemd to run it): {@link waitHealthy} runs the image's HEALTHCHECK itself.
 */
export async function startContainer(
  runArgs: readonly string[],
  image: string,
  command: readonly string[] = [],
  env: Record<string, string> = {},
): Promise<string> {
  const name = uniqueName("run");
  onTestFinished(async () => {
    await podman(["rm", "--force", "--time", "0", name], { allowFailure: true });
  });
  await podman(
    [
      "run",
      "--detach",
      "--name",
      name,
      "--health-interval",
      "disable",
      ...runArgs,
      image,
      ...command,
    ],
    { env },
  );
  return name;
}

/** Runs the image's HEALTHCHECK until it passes; rejects with the logs after `timeoutMs`. */
export async function waitHealthy(name: string, timeoutMs = 30_000): Promise<number> {
  const started = performance.now();
  while (performance.now() - started < timeoutMs) {
    const check = await podman(["healthcheck", "run", name], { allowFailure: true });
    if (check.code === 0) return performance.now() - started;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const logs = await podman(["logs", name], { allowFailure: true });
  throw new Error(`${name} is not healthy after ${timeoutMs} ms:\n${logs.stdout}${logs.stderr}`);
}

/** The container's output so far (stdout and stderr). */
export async function containerLogs(name: string): Promise<string> {
  const logs = await podman(["logs", name]);
  return `${logs.stdout}${logs.stderr}`;
}

/** Fields of `podman inspect` for a container. */
export async function inspect(name: string, format: string): Promise<string> {
  return (await podman(["inspect", "--format", format, name])).stdout.trim();
}

/**
 * A free loopback port. The containers on the host network need theirs before they start:
 * their HEALTHCHECK reads it from the environment.
 */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

/** Parses Go's time format as podman prints it: "2026-12-03 16:30:01.123456789 +0000 UTC". */
function parseGoTime(text: string): number {
  const match = /^(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)(\.\d{1,3})?\d* ([+-]\d\d)(\d\d)/.exec(text);
  if (!match) throw new Error(`not a time podman prints: ${text}`);
  const [, day, time, fraction = "", zoneHours, zoneMinutes] = match;
  return Date.parse(`${day}T${time}${fraction}${zoneHours}:${zoneMinutes}`);
}

/**
 * Sends SIGTERM (`podman kill`) and waits for the container to exit. Returns the exit code and
 * the time from podman's `kill` event (the signal sent) to the exit it recorded.
 */
export async function stopWithSigterm(name: string): Promise<{ exitCode: number; ms: number }> {
  await podman(["kill", "--signal", "TERM", name]);
  await podman(["wait", name]);
  const [exitCode = "", finishedAt = ""] = (
    await inspect(name, "{{.State.ExitCode}}|{{.State.FinishedAt}}")
  ).split("|");
  const events = await podman([
    "events",
    "--stream=false",
    "--filter",
    `container=${name}`,
    "--filter",
    "event=kill",
    "--format",
    "{{.Time}}",
  ]);
  const killed = parseGoTime(events.stdout.trim().split("\n").at(-1) ?? "");
  return { exitCode: Number(exitCode), ms: parseGoTime(finishedAt) - killed };
}
