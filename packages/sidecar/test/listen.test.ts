import { stat, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { join } from "node:path";
import { listenOn, listenTargetFrom, systemdListenFd } from "@bottle/sidecar";
import { startProcess, testdir } from "@bottle/test-utils";
import { describe, expect, it } from "vitest";
import { httpServer } from "./helpers.ts";

/** The package's own listen error, as gate-server, cred-proxy and tokman build theirs. */
const listenError = (message: string, options?: { cause?: unknown }) =>
  Object.assign(new Error(message, options), { code: "BTL_TEST_LISTEN" });

function statusOver(socketPath: string): Promise<number> {
  return new Promise((resolve, reject) => {
    request({ socketPath, path: "/", agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    })
      .on("error", reject)
      .end();
  });
}

describe("listenOn", () => {
  it("listens on 127.0.0.1 and a free port unless told otherwise", async () => {
    const server = httpServer();
    const url = await listenOn(server, {}, listenError);
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(Number(new URL(url).port)).toBeGreaterThan(0);
  });

  it("brackets an IPv6 address in the URL", async () => {
    const server = httpServer();
    expect(await listenOn(server, { host: "::1", port: 0 }, listenError)).toMatch(
      /^http:\/\/\[::1\]:\d+$/,
    );
  });

  it("throws the package's error when the address is in use", async () => {
    const first = httpServer();
    const url = await listenOn(first, { host: "127.0.0.1", port: 0 }, listenError);
    const port = Number(new URL(url).port);
    await expect(listenOn(httpServer(), { port }, listenError)).rejects.toMatchObject({
      code: "BTL_TEST_LISTEN",
      message: "cannot listen: EADDRINUSE",
    });
  });

  it("creates a unix socket with mode 0600 even under umask 000", async () => {
    const path = join(await testdir(), "s.sock");
    const old = process.umask(0);
    let url: string;
    try {
      url = await listenOn(
        httpServer((_req, res) => res.end()),
        { path },
        listenError,
      );
    } finally {
      process.umask(old);
    }
    expect(url).toBe(`unix:${path}`);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(process.umask()).toBe(old);
    expect(await statusOver(path)).toBe(200);
  });

  it("replaces a stale socket, refuses a live one and any other file", async () => {
    const dir = await testdir();
    const stale = join(dir, "stale.sock");
    // A sidecar killed while listening leaves its socket file behind.
    const fixture = join(import.meta.dirname, "fixtures/sidecar.mjs");
    const killed = await startProcess(process.execPath, [fixture, "--socket", stale]);
    await killed.kill("SIGKILL");
    expect((await stat(stale)).isSocket()).toBe(true);
    expect(await listenOn(httpServer(), { path: stale }, listenError)).toBe(`unix:${stale}`);

    await expect(listenOn(httpServer(), { path: stale }, listenError)).rejects.toMatchObject({
      code: "BTL_TEST_LISTEN",
      message: `another process is listening on ${stale}`,
    });
    const file = join(dir, "file");
    await writeFile(file, "keep me");
    await expect(listenOn(httpServer(), { path: file }, listenError)).rejects.toMatchObject({
      code: "BTL_TEST_LISTEN",
      message: `${file} exists and is not a socket`,
    });
  });

  it("throws the package's error for a descriptor that is not a listening socket", async () => {
    await expect(listenOn(httpServer(), { fd: 987 }, listenError)).rejects.toMatchObject({
      code: "BTL_TEST_LISTEN",
    });
  });
});

describe("listenTargetFrom", () => {
  const flags = { bind: "127.0.0.1", port: 9419 };

  it("takes a socket systemd passed first, then --socket, then --bind/--port", () => {
    const systemd = { LISTEN_PID: "42", LISTEN_FDS: "1" };
    expect(listenTargetFrom({ ...flags, socket: "/run/s.sock" }, systemd, 42)).toEqual({
      fd: 3,
      systemd: true,
    });
    expect(listenTargetFrom({ ...flags, socket: "/run/s.sock" }, {}, 42)).toEqual({
      path: "/run/s.sock",
    });
    expect(listenTargetFrom(flags, systemd, 43)).toEqual({ host: "127.0.0.1", port: 9419 });
  });

  it("takes fd 3 from systemd only when LISTEN_PID names this process", () => {
    expect(systemdListenFd({ LISTEN_PID: "42", LISTEN_FDS: "1" }, 42)).toBe(3);
    expect(systemdListenFd({ LISTEN_PID: "42", LISTEN_FDS: "2" }, 42)).toBe(3);
    expect(systemdListenFd({ LISTEN_PID: "43", LISTEN_FDS: "1" }, 42)).toBeUndefined();
    expect(systemdListenFd({ LISTEN_PID: "42", LISTEN_FDS: "0" }, 42)).toBeUndefined();
    expect(systemdListenFd({ LISTEN_FDS: "1" }, 42)).toBeUndefined();
    expect(systemdListenFd({}, 42)).toBeUndefined();
  });
});
