import { statSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { testdir } from "@bottle/test-utils";
import { describe, expect, it, onTestFinished } from "vitest";
import { listenOn, systemdListenFd } from "../src/listen.ts";

const fail = (message: string, options?: { cause?: unknown }) =>
  Object.assign(new Error(message, options), { code: "BTL_TEST_LISTEN" });

function server(): Server {
  const created = createServer((_req, res) => res.end("ok"));
  onTestFinished(() => new Promise<void>((resolve) => created.close(() => resolve())));
  return created;
}

describe("listenOn", () => {
  it("listens on loopback TCP by default and names the URL with the bound port", async () => {
    const url = await listenOn(server(), { port: 0 }, fail);
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(await (await fetch(url)).text()).toBe("ok");
  });

  it("brackets an IPv6 address", async () => {
    const url = await listenOn(server(), { host: "::1", port: 0 }, fail).catch(() => undefined);
    // Hosts without IPv6 loopback cannot listen there; where they can, the URL is bracketed.
    if (url !== undefined) expect(url).toMatch(/^http:\/\/\[::1\]:\d+$/);
  });

  it("creates a unix socket with mode 0600 whatever the umask, and replaces a stale one", async () => {
    const path = join(await testdir(), "s.sock");
    const old = process.umask(0);
    try {
      const first = server();
      expect(await listenOn(first, { path }, fail)).toBe(`unix:${path}`);
      expect(statSync(path).mode & 0o777).toBe(0o600);
      // A live socket is refused, with the caller's own error.
      await expect(listenOn(server(), { path }, fail)).rejects.toMatchObject({
        code: "BTL_TEST_LISTEN",
        message: `another process is listening on ${path}`,
      });
      // A socket file whose server is gone is replaced.
      first.close();
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(await listenOn(server(), { path }, fail)).toBe(`unix:${path}`);
      expect(statSync(path).mode & 0o777).toBe(0o600);
    } finally {
      process.umask(old);
    }
  });

  it("refuses a path that holds another kind of file, and an address in use", async () => {
    const path = join(await testdir(), "file");
    writeFileSync(path, "not a socket");
    await expect(listenOn(server(), { path }, fail)).rejects.toMatchObject({
      code: "BTL_TEST_LISTEN",
      message: `${path} exists and is not a socket`,
    });
    const url = await listenOn(server(), { port: 0 }, fail);
    const port = Number(new URL(url).port);
    await expect(listenOn(server(), { port }, fail)).rejects.toMatchObject({
      code: "BTL_TEST_LISTEN",
      message: "cannot listen: EADDRINUSE",
    });
  });
  // An inherited descriptor (systemd, inetd) needs another process: bottle-gate's e2e tests
  // pass one through systemd-socket-activate.
});

describe("systemdListenFd", () => {
  it("is fd 3 when LISTEN_PID is this process and LISTEN_FDS is at least 1", () => {
    expect(systemdListenFd({ LISTEN_PID: "42", LISTEN_FDS: "1" }, 42)).toBe(3);
    expect(systemdListenFd({ LISTEN_PID: "42", LISTEN_FDS: "2" }, 42)).toBe(3);
    expect(systemdListenFd({ LISTEN_PID: "41", LISTEN_FDS: "1" }, 42)).toBeUndefined();
    expect(systemdListenFd({ LISTEN_PID: "42", LISTEN_FDS: "0" }, 42)).toBeUndefined();
    expect(systemdListenFd({}, 42)).toBeUndefined();
  });
});
