/**
 * A real container engine for the docker backend's tests: `podman system service` on a unix
 * socket in a temporary directory (rootful, with the settings that work on this machine
 * image), started once per test file and stopped after it. Images come from the engine's
 * ordinary storage, where tooling/images.sh puts them.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Podman's settings for this machine image, shared with tooling/images.sh. */
const CONTAINERS_CONF = join(import.meta.dirname, "../../../tooling/images/containers.conf");

/** A running engine. */
export interface Podman {
  /** `unix://<socket>`, for DOCKER_HOST. */
  readonly dockerHost: string;
  /** Runs the podman command against the same storage and settings; returns its stdout. */
  podman(args: readonly string[]): string;
  stop(): Promise<void>;
}

/** The podman binary on PATH, or null. */
export function findPodman(): string | null {
  for (const dir of (process.env.PATH ?? "").split(":")) {
    try {
      execFileSync(join(dir, "podman"), ["--version"], { stdio: "ignore" });
      return join(dir, "podman");
    } catch {
      // not here
    }
  }
  return null;
}

/** Why the docker backend's tests cannot run here, or null when they can. */
export function podmanMissing(): string | null {
  return findPodman() === null ? "podman is not installed (apt-get install podman runc …)" : null;
}

/** Starts `podman system service --time=0` on a socket of its own and waits until it answers. */
export async function startPodman(): Promise<Podman> {
  const binary = findPodman();
  if (binary === null) throw new Error(podmanMissing() ?? "podman is missing");
  const dir = mkdtempSync(join(tmpdir(), "bottle-podman-"));
  const socket = join(dir, "podman.sock");
  const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", CONTAINERS_CONF, HOME: dir };
  const service: ChildProcess = spawn(
    binary,
    ["system", "service", "--time=0", `unix://${socket}`],
    { env, stdio: ["ignore", "ignore", "pipe"] },
  );
  let errors = "";
  service.stderr?.on("data", (chunk) => {
    errors = (errors + chunk).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => service.once("exit", () => resolve()));
  const deadline = Date.now() + 20_000;
  while (!(await answers(socket))) {
    if (service.exitCode !== null || Date.now() > deadline) {
      service.kill("SIGKILL");
      throw new Error(`podman system service did not answer on ${socket}:\n${errors}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    dockerHost: `unix://${socket}`,
    podman: (args) => execFileSync(binary, [...args], { env, encoding: "utf8" }),
    async stop() {
      service.kill("SIGTERM");
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5_000))]);
      if (service.exitCode === null && service.signalCode === null) service.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Whether the engine answers `GET /_ping` on `socket`. */
function answers(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath: socket, path: "/_ping", timeout: 1_000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.once("error", () => resolve(false));
    req.once("timeout", () => req.destroy());
    req.end();
  });
}
