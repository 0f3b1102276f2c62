import { spawn } from "node:child_process";
import { mkdir, readFile, stat } from "node:fs/promises";
import { Agent, request as httpRequest } from "node:http";
import { connect, createServer, type Socket } from "node:net";
import { join } from "node:path";
import { createGateServer } from "@bottle/gate-server";
import { createTokenStore } from "@bottle/gate-tokens";
import { createBaseEnv, git, runProcess, startProcess, testdir } from "@bottle/test-utils";
import { describe, expect, it, onTestFinished } from "vitest";
import { BIN, basic, type Gate, rawRequest, startGate } from "./fixture.ts";

const HOOK = join(import.meta.dirname, "fixtures/access-hook.mjs");
const REFS = "/alpha.git/info/refs?service=git-upload-pack";

/** Child processes of `pid` (from /proc), e.g. a gate's `git http-backend`s. */
async function childrenOf(pid: number): Promise<number[]> {
  const { readdir } = await import("node:fs/promises");
  const out: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const text = await readFile(`/proc/${entry}/stat`, "utf8").catch(() => "");
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    if (fields[1] === String(pid) && fields[0] !== "Z") out.push(Number(entry));
  }
  return out;
}

/** Whether `pid` runs (a zombie no one reaped counts as gone). */
async function alive(pid: number): Promise<boolean> {
  const text = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  return text !== "" && text.slice(text.lastIndexOf(")") + 2)[0] !== "Z";
}

/** Starts systemd-socket-activate with `args` and waits for its "Listening on" line. */
async function activate(args: string[]): Promise<void> {
  const child = spawn("systemd-socket-activate", args, {
    detached: true,
    stdio: ["ignore", "ignore", "pipe"],
    env: createBaseEnv(),
  });
  onTestFinished(() => {
    try {
      process.kill(-(child.pid ?? 0), "SIGKILL");
    } catch {}
  });
  let text = "";
  await new Promise<void>((resolve, reject) => {
    child.stderr.on("data", (chunk: Buffer) => {
      text += chunk.toString();
      if (text.includes("Listening on")) resolve();
    });
    child.once("exit", () => reject(new Error(`systemd-socket-activate exited: ${text}`)));
  });
}

/** A raw TCP connection to `url`'s host and port; everything it receives is kept in `text()`. */
async function openRaw(url: string): Promise<{
  socket: Socket;
  text(): string;
  /** Resolves once the received text satisfies `done`, or the connection closed. */
  until(done: (text: string) => boolean): Promise<string>;
}> {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  onTestFinished(() => {
    socket.destroy();
  });
  let text = "";
  let closed = false;
  const waiters = new Set<() => void>();
  const wake = () => {
    for (const waiter of waiters) waiter();
  };
  socket.on("data", (chunk: Buffer) => {
    text += chunk.toString("latin1");
    wake();
  });
  socket.on("error", () => {}); // a dropped connection may reset
  socket.on("close", () => {
    closed = true;
    wake();
  });
  await new Promise((resolve, reject) => socket.once("connect", resolve).once("error", reject));
  return {
    socket,
    text: () => text,
    until: (done) =>
      new Promise((resolve) => {
        const check = () => {
          if (closed || done(text)) {
            waiters.delete(check);
            resolve(text);
          }
        };
        waiters.add(check);
        check();
      }),
  };
}

async function freePort(): Promise<number> {
  const server = createServer().listen(0, "127.0.0.1");
  await new Promise((resolve) => server.once("listening", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe("the access hook", { tags: ["slow"] }, () => {
  it("runs before upload-pack and refuses the fetch with a reason git shows", async () => {
    const log = join(await testdir(), "hook.log");
    const gate = await startGate({
      args: ["--access-hook", `${process.execPath} ${HOOK} ${log}`],
    });
    const ok = await git(["ls-remote", gate.repoUrl(await gate.token("alpha"), "/alpha.git")], {
      cwd: gate.base,
      env: gate.gitEnv.env,
    });
    expect(ok.stdout).toMatch(/refs\/heads\/main/);
    // ls-remote asks twice (info/refs, then the ls-refs POST): the hook runs before each.
    const runs = (await readFile(log, "utf8")).trim().split("\n");
    expect(new Set(runs)).toEqual(
      new Set([`alpha ${join(gate.base, "alpha.git")} ${join(gate.base, "alpha.git")}`]),
    );
    const refused = await git(
      ["clone", gate.repoUrl(await gate.token("beta"), "/beta.git"), await testdir()],
      {
        cwd: gate.base,
        env: gate.gitEnv.env,
        allowFailure: true,
      },
    );
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain(
      "remote: upstream git.example.com unreachable: connection refused",
    );
  });

  it("takes the command as a JSON array, words with spaces and quotes as they are", async () => {
    const log = join(await testdir(), `hook "it's".log`);
    const gate = await startGate({
      args: ["--access-hook", JSON.stringify([process.execPath, HOOK, log])],
    });
    const ok = await git(["ls-remote", gate.repoUrl(await gate.token("alpha"), "/alpha.git")], {
      cwd: gate.base,
      env: gate.gitEnv.env,
    });
    expect(ok.stdout).toMatch(/refs\/heads\/main/);
    expect(await readFile(log, "utf8")).toContain(`alpha ${join(gate.base, "alpha.git")}`);
  });

  it("does not run for pushes", async () => {
    const log = join(await testdir(), "hook.log");
    const gate = await startGate({
      args: ["--access-hook", `${process.execPath} ${HOOK} ${log}`],
    });
    const res = await rawRequest(gate.url, "GET", "/alpha.git/info/refs?service=git-receive-pack", {
      authorization: basic(await gate.token("alpha")),
    });
    expect(res.status).toBe(200);
    await expect(stat(log)).rejects.toThrow();
  });

  it("makes requests that arrive during a run wait for that run", async () => {
    const log = join(await testdir(), "hook.log");
    const gate = await startGate({
      args: ["--access-hook", `${process.execPath} ${HOOK} ${log} 1500`],
    });
    const auth = { authorization: basic(await gate.token("alpha")) };
    const answers = await Promise.all(
      Array.from({ length: 6 }, () => rawRequest(gate.url, "GET", REFS, auth)),
    );
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200, 200]);
    expect((await readFile(log, "utf8")).trim().split("\n")).toHaveLength(1);
  });
});

describe("connections and limits", { tags: ["slow"] }, () => {
  it("keeps connections alive across requests, 401 challenges included", async () => {
    const gate = await startGate();
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    onTestFinished(() => agent.destroy());
    const { hostname, port } = new URL(gate.url);
    const once = (headers: Record<string, string>) =>
      new Promise<{ status: number; reused: boolean }>((resolve, reject) => {
        const req = httpRequest({ host: hostname, port, path: REFS, agent, headers }, (res) => {
          res.resume();
          res.on("end", () => resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket }));
        });
        req.on("error", reject).end();
      });
    const auth = { authorization: basic(await gate.token("alpha")) };
    const seen = [await once({}), await once(auth), await once(auth), await once({})];
    expect(seen).toEqual([
      { status: 401, reused: false },
      { status: 200, reused: true },
      { status: 200, reused: true },
      { status: 401, reused: true },
    ]);
  });

  it("answers 503 with Retry-After beyond its concurrency and queue", async () => {
    const base = await testdir();
    await mkdir(join(base, "alpha.git"));
    await runProcess("git", ["init", "--bare", "-q", join(base, "alpha.git")]);
    const tokenFile = join(await testdir(), "tokens.json");
    const { token } = await createTokenStore({ file: tokenFile }).create({
      project: "alpha",
      task: "t",
    });
    const gate = createGateServer({
      basePath: base,
      tokenFile,
      maxConcurrent: 1,
      maxQueued: 0,
      path: process.env.PATH ?? "/usr/bin:/bin",
    });
    onTestFinished(() => gate.close());
    const url = await gate.listen({ host: "127.0.0.1", port: 0 });
    // The only slot is held by an upload-pack whose request body never ends.
    const { hostname, port } = new URL(url);
    const slow = httpRequest({
      host: hostname,
      port,
      method: "POST",
      path: "/alpha.git/git-upload-pack",
      headers: {
        authorization: basic(token),
        "content-type": "application/x-git-upload-pack-request",
        "transfer-encoding": "chunked",
      },
    });
    slow.on("error", () => {});
    slow.write("0000");
    onTestFinished(() => {
      slow.destroy();
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const busy = await rawRequest(url, "GET", REFS, { authorization: basic(token) });
    expect(busy.status).toBe(503);
    expect(busy.headers["retry-after"]).toBe("1");
  });

  it("closes connections beyond --max-connections unanswered, serves the open ones, and logs the drops", async () => {
    const gate = await startGate({ args: ["--max-connections", "2"] });
    const request = (headers: string) => `GET ${REFS} HTTP/1.1\r\nHost: gate\r\n${headers}\r\n`;
    // Two connections, each answered once (so the gate holds both), then kept alive.
    const open = [await openRaw(gate.url), await openRaw(gate.url)];
    for (const conn of open) {
      conn.socket.write(request(""));
      expect(await conn.until((t) => t.endsWith("authentication required\n"))).toMatch(
        /^HTTP\/1\.1 401 /,
      );
    }
    // Beyond the cap: accepted by the kernel, then closed by the gate without a byte.
    const extra = [await openRaw(gate.url), await openRaw(gate.url)];
    for (const conn of extra) {
      conn.socket.write(request(""));
      expect(await conn.until(() => false)).toBe("");
      expect(conn.socket.destroyed || conn.socket.readableEnded).toBe(true);
    }
    // The open connections still complete a request.
    const [first] = open;
    first?.socket.write(
      request(`Authorization: ${basic(await gate.token("alpha"))}\r\nConnection: close\r\n`),
    );
    const answer = await first?.until(() => false);
    expect(answer).toMatch(/^HTTP\/1\.1 401 .*HTTP\/1\.1 200 /s);
    expect(answer).toContain("# service=git-upload-pack");
    // The first drop is logged at once; the second, within the interval, only on shutdown.
    const drops = () => gate.proc.logs().filter((r) => r.code === "BTL_GATE_TOO_MANY_CONNECTIONS");
    for (let i = 0; i < 40 && drops().length === 0; i++)
      await new Promise((resolve) => setTimeout(resolve, 50));
    expect(drops()).toEqual([
      expect.objectContaining({ level: "warn", maxConnections: 2, dropped: 1, droppedTotal: 1 }),
    ]);
    await gate.proc.kill("SIGTERM");
    expect(drops()).toEqual([
      expect.objectContaining({ dropped: 1, droppedTotal: 1 }),
      expect.objectContaining({ dropped: 1, droppedTotal: 2 }),
    ]);
  });

  it("refuses a --max-connections below 1", async () => {
    const dir = await testdir();
    const result = await runProcess(process.execPath, [
      BIN,
      "--base-path",
      dir,
      "--token-file",
      join(dir, "tokens.json"),
      "--max-connections",
      "0",
    ]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^BTL_GATE_CONFIG: option '--max-connections <n>' argument '0'/);
  });

  it("kills the CGI process group when the client goes away", async () => {
    const gate = await startGate();
    const { hostname, port } = new URL(gate.url);
    const req = httpRequest({
      host: hostname,
      port,
      method: "POST",
      path: "/alpha.git/git-receive-pack",
      headers: {
        authorization: basic(await gate.token("alpha")),
        "content-type": "application/x-git-receive-pack-request",
        "transfer-encoding": "chunked",
      },
    });
    req.on("error", () => {});
    req.write("00");
    let children: number[] = [];
    for (let i = 0; i < 50 && children.length === 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      children = await childrenOf(gate.proc.pid);
    }
    expect(children.length).toBeGreaterThan(0);
    req.destroy();
    for (let i = 0; i < 50 && children.length > 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      children = await childrenOf(gate.proc.pid);
    }
    expect(children).toEqual([]);
    expect(gate.proc.logs().find((r) => r.msg === "request")).toMatchObject({ aborted: true });
  });

  it("finishes in-flight requests on SIGTERM, refuses new ones, and exits 0", async () => {
    const gate = await startGate({
      args: ["--access-hook", `${process.execPath} ${HOOK} "" 1500`],
    });
    const auth = { authorization: basic(await gate.token("alpha")) };
    const inFlight = rawRequest(gate.url, "GET", REFS, auth);
    await new Promise((resolve) => setTimeout(resolve, 300));
    process.kill(gate.proc.pid, "SIGTERM");
    await new Promise((resolve) => setTimeout(resolve, 200));
    await expect(rawRequest(gate.url, "GET", REFS, auth)).rejects.toThrow(/ECONNREFUSED/);
    expect((await inFlight).status).toBe(200);
    expect(await gate.proc.wait()).toEqual({ code: 0, signal: null });
    expect(gate.proc.logs().map((r) => r.msg)).toEqual(
      expect.arrayContaining(["shutting down: finishing in-flight requests", "stopped"]),
    );
  });
});

describe("listeners", { tags: ["slow"] }, () => {
  async function setup() {
    const gate = await startGate();
    await gate.proc.kill();
    return gate;
  }

  /** The gate's command line over `gate`'s repositories and token file, then `more`. */
  const gateArgs = (gate: Gate, ...more: string[]) => [
    BIN,
    "--base-path",
    gate.base,
    "--token-file",
    gate.tokenFile,
    ...more,
  ];

  it("listens on a unix socket with mode 0600", async () => {
    const gate = await setup();
    const socket = join(await testdir(), "gate.sock");
    const proc = await startProcess(process.execPath, gateArgs(gate, "--socket", socket));
    expect(proc.url).toBe(`unix:${socket}`);
    expect((await stat(socket)).mode & 0o777).toBe(0o600);
    const status = await new Promise<number>((resolve, reject) => {
      httpRequest({ socketPath: socket, path: REFS }, (res) => resolve(res.statusCode ?? 0))
        .on("error", reject)
        .end();
    });
    expect(status).toBe(401);
  });

  it("serves a socket passed by systemd socket activation (LISTEN_FDS)", async () => {
    const gate = await setup();
    const port = await freePort();
    await activate(["-l", `127.0.0.1:${port}`, process.execPath, ...gateArgs(gate)]);
    const token = await gate.token("alpha");
    const ls = await git(["ls-remote", `http://${token}:x@127.0.0.1:${port}/alpha.git`], {
      cwd: gate.base,
      env: gate.gitEnv.env,
    });
    expect(ls.stdout).toMatch(/refs\/heads\/main/);
  });

  it("serves one connection on fd 0 in inetd mode (Accept=yes)", async () => {
    const gate = await setup();
    const port = await freePort();
    await activate([
      "--inetd",
      "-a",
      "-l",
      `127.0.0.1:${port}`,
      process.execPath,
      ...gateArgs(gate, "--inetd"),
    ]);
    const token = await gate.token("alpha");
    const dir = await testdir();
    await git(["clone", "-q", `http://${token}:x@127.0.0.1:${port}/alpha.git`, dir], {
      cwd: dir,
      env: gate.gitEnv.env,
    });
    expect((await git(["log", "--format=%s"], { cwd: dir, env: gate.gitEnv.env })).stdout).toBe(
      "second\ninitial commit\n",
    );
  });

  it("detaches with a pid file and stops on SIGTERM", async () => {
    const gate = await setup();
    const dir = await testdir();
    const pidFile = join(dir, "gate.pid");
    const result = await runProcess(
      process.execPath,
      gateArgs(gate, "--port", "0", "--detach", "--pid-file", pidFile),
      { env: createBaseEnv() },
    );
    expect(result.code).toBe(0);
    const record = JSON.parse(result.stderr.trim().split("\n").at(-1) ?? "{}");
    expect(record).toMatchObject({ msg: "listening", pidFile });
    const pid = Number((await readFile(pidFile, "utf8")).trim());
    onTestFinished(() => {
      try {
        process.kill(pid, "SIGKILL");
      } catch {}
    });
    expect(pid).toBe(record.pid);
    expect((await rawRequest(record.url, "GET", REFS)).status).toBe(401);
    process.kill(pid, "SIGTERM");
    for (let i = 0; i < 40 && (await alive(pid)); i++)
      await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await alive(pid)).toBe(false);
    expect(await readFile(join(dir, "gate.log"), "utf8")).toMatch(/"msg":"stopped"/);
  });
});
