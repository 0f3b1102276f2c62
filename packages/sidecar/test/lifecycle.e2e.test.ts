// The lifecycle on a real process: the fixture is a minimal sidecar on the built runtime.
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { get } from "node:http";
import { createServer } from "node:net";
import { join } from "node:path";
import { READY_FD_ENV } from "@bottle/sidecar";
import {
  createBaseEnv,
  runProcess,
  type StartedProcess,
  startProcess,
  testdir,
} from "@bottle/test-utils";
import { describe, expect, it, onTestFinished } from "vitest";

const FIXTURE = join(import.meta.dirname, "fixtures/sidecar.mjs");

function start(env: Record<string, string> = {}): Promise<StartedProcess> {
  return startProcess(process.execPath, [FIXTURE], { env: createBaseEnv(env) });
}

/** A GET that resolves to the status and body, or to the error's code when cut. */
function fetchText(url: string): Promise<{ status: number; body: string } | { error: string }> {
  return new Promise((resolve) => {
    get(url, { agent: false }, (res) => {
      let body = "";
      res.on("data", (chunk: Buffer) => {
        body += chunk.toString();
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", (error: NodeJS.ErrnoException) => resolve({ error: error.code ?? "" }));
    }).on("error", (error: NodeJS.ErrnoException) => resolve({ error: error.code ?? "" }));
  });
}

const messages = (proc: StartedProcess) => proc.logs().map((r) => r.msg);

/** Sends `path` to the sidecar, then, once it is in flight, SIGTERM; resolves to the answer. */
async function stopDuring(proc: StartedProcess, path: string) {
  const answer = fetchText(`${proc.url}${path}`);
  await new Promise((resolve) => setTimeout(resolve, 200));
  process.kill(proc.pid, "SIGTERM");
  await expect.poll(() => messages(proc)).toContain("shutting down: finishing in-flight requests");
  return answer;
}

describe("the lifecycle", { tags: ["slow"] }, () => {
  it("logs `listening` with its url, drains in-flight requests on SIGTERM and exits 0", async () => {
    const proc = await start({ SLOW_MS: "800" });
    expect(proc.record).toMatchObject({ msg: "listening", level: "info" });
    expect(proc.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const slow = stopDuring(proc, "/slow");
    await expect
      .poll(() => messages(proc))
      .toContain("shutting down: finishing in-flight requests");
    // New connections are refused at once; the request in flight still gets its answer.
    expect(await fetchText(`${proc.url}/ok`)).toEqual({ error: "ECONNREFUSED" });
    expect(await slow).toEqual({ status: 200, body: "/slow" });
    expect(await proc.wait()).toEqual({ code: 0, signal: null });
    expect(messages(proc).at(-1)).toBe("stopped");
  });

  it("cuts open connections on a second signal and exits 1, without being killed", async () => {
    const proc = await start();
    const held = stopDuring(proc, "/hold");
    await expect
      .poll(() => messages(proc))
      .toContain("shutting down: finishing in-flight requests");
    process.kill(proc.pid, "SIGINT");
    expect(await held).toEqual({ error: "ECONNRESET" });
    expect(await proc.wait()).toEqual({ code: 1, signal: null });
    expect(proc.logs()).toContainEqual(
      expect.objectContaining({
        level: "warn",
        signal: "SIGINT",
        msg: "second signal: cutting open connections",
      }),
    );
    expect(messages(proc).at(-1)).toBe("stopped");
  });

  it("cuts requests that outlive the grace period and exits 1", async () => {
    const proc = await start({ GRACE_MS: "300" });
    const held = stopDuring(proc, "/hold");
    expect(await held).toEqual({ error: "ECONNRESET" });
    expect(await proc.wait()).toEqual({ code: 1, signal: null });
    expect(proc.logs()).toContainEqual(
      expect.objectContaining({ graceMs: 300, msg: "grace period over: cutting open connections" }),
    );
  });

  it("closes idle keep-alive connections on SIGTERM instead of waiting for them", async () => {
    const proc = await start();
    const { hostname, port } = new URL(proc.url ?? "");
    const socket = (await import("node:net")).connect(Number(port), hostname);
    onTestFinished(() => {
      socket.destroy();
    });
    let text = "";
    socket.on("data", (chunk: Buffer) => {
      text += chunk.toString();
    });
    socket.write("GET /ok HTTP/1.1\r\nHost: x\r\n\r\n");
    await expect.poll(() => text).toMatch(/\/ok$/);
    const started = performance.now();
    process.kill(proc.pid, "SIGTERM");
    expect(await proc.wait()).toEqual({ code: 0, signal: null });
    expect(performance.now() - started).toBeLessThan(2_000);
  });

  it("writes its URL to the ready descriptor", async () => {
    const child = spawn(process.execPath, [FIXTURE], {
      env: createBaseEnv({ [READY_FD_ENV]: "3" }),
      stdio: ["ignore", "ignore", "ignore", "pipe"],
    });
    onTestFinished(() => {
      child.kill("SIGKILL");
    });
    let text = "";
    for await (const chunk of child.stdio[3] as NodeJS.ReadableStream) text += chunk.toString();
    expect(text).toMatch(/^http:\/\/127\.0\.0\.1:\d+\n$/);
    expect(await fetchText(`${text.trim()}/ok`)).toEqual({ status: 200, body: "/ok" });
  });

  it("serves an inherited listening descriptor", async () => {
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, "127.0.0.1", resolve));
    const port = (holder.address() as { port: number }).port;
    const fd = (holder as unknown as { _handle: { fd: number } })._handle.fd;
    const child = spawn(process.execPath, [FIXTURE], {
      env: createBaseEnv({ INHERITED: "1" }),
      stdio: ["ignore", "ignore", "pipe", fd],
    });
    onTestFinished(() => {
      child.kill("SIGKILL");
    });
    holder.close(); // the child holds its own copy
    let text = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      text += chunk.toString();
    });
    await expect.poll(() => text).toContain('"msg":"listening"');
    expect(text).toContain(`"url":"http://127.0.0.1:${port}","mode":"systemd"`);
    expect(await fetchText(`http://127.0.0.1:${port}/ok`)).toEqual({ status: 200, body: "/ok" });
  });
});

describe("the command line", { tags: ["slow"] }, () => {
  it("exits 2 on a usage error, printed with the usage code, and 0 after --help", async () => {
    const run = (args: string[]) =>
      runProcess(process.execPath, [FIXTURE, ...args], { env: createBaseEnv() });
    const bad = await run(["--socket", "/tmp/x.sock", "--port", "1"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^BTL_FIXTURE_CONFIG: option '--socket <path>' cannot be used/);
    const help = await run(["--help"]);
    expect(help.code).toBe(0);
    for (const flag of ["--bind", "--port", "--socket", "--idle-timeout", "--max-concurrent"])
      expect(help.stdout).toContain(flag);
  });

  it("exits with the package's listen code when it cannot listen", async () => {
    const taken = await start();
    const port = new URL(taken.url ?? "").port;
    const result = await runProcess(process.execPath, [FIXTURE, "--port", port], {
      env: createBaseEnv(),
    });
    expect(result.code).toBe(1); // the fixture's error is no bottle error: exit 1, logged
    expect(result.stderr).toContain("BTL_FIXTURE_LISTEN");
  });
});

describe("systemd socket activation", { tags: ["slow"] }, () => {
  it("serves the socket passed with LISTEN_FDS and says so in `listening`", async () => {
    const probe = createServer().listen(0, "127.0.0.1");
    await new Promise((resolve) => probe.once("listening", resolve));
    const port = (probe.address() as { port: number }).port;
    await new Promise((resolve) => probe.close(resolve));
    const log = join(await testdir(), "fixture.log");
    const { openSync } = await import("node:fs");
    const out = openSync(log, "a");
    const activator = spawn(
      "systemd-socket-activate",
      ["-l", `127.0.0.1:${port}`, process.execPath, FIXTURE],
      { detached: true, stdio: ["ignore", "ignore", out], env: createBaseEnv() },
    );
    onTestFinished(() => {
      try {
        process.kill(-(activator.pid ?? 0), "SIGKILL");
      } catch {}
    });
    await expect.poll(() => readFile(log, "utf8")).toContain("Listening on");
    // The fixture starts on the first connection; the kernel holds it meanwhile.
    expect(await fetchText(`http://127.0.0.1:${port}/ok`)).toEqual({ status: 200, body: "/ok" });
    const listening = (await readFile(log, "utf8"))
      .split("\n")
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .find((record) => record.msg === "listening");
    expect(listening).toMatchObject({ mode: "systemd", url: `http://127.0.0.1:${port}` });
  });
});
