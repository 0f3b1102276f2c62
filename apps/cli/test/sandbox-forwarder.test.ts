// The forwarder against the real bwrap: 127.0.0.1:<port> inside, a unix socket on the host.
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { connect, createServer, type Server } from "node:net";
import { dirname, join } from "node:path";
import {
  createGitEnv,
  createWorkRepo,
  git,
  startHttpGitUpstream,
  testdir,
} from "@bottle/test-utils";
import { describe, expect, it, onTestFinished } from "vitest";
import { eventually, runInSandbox, sandboxDirs, startSandbox } from "./sandbox-helpers.ts";

async function listenOn(server: Server | HttpServer, path: string): Promise<void> {
  await new Promise<void>((resolve) => server.listen(path, resolve));
  onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
}

/** An HTTP server on a unix socket that answers with the request's method and path. */
async function httpOnSocket(path: string): Promise<{ requests: string[] }> {
  const requests: string[] = [];
  const server = createHttpServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    res.end(`answer to ${req.method} ${req.url}\n`);
  });
  await listenOn(server, path);
  return { requests };
}

describe("the sandbox's forwarder", { tags: ["slow"] }, () => {
  it("takes curl and node's fetch on 127.0.0.1:<port> to the sidecar's unix socket", async () => {
    const dirs = await sandboxDirs();
    const sidecar = await httpOnSocket(join(dirs.sockets, "proxy.sock"));
    const { code, stdout, stderr } = await runInSandbox(
      [
        "sh",
        "-c",
        'curl -sS http://127.0.0.1:9420/from-curl && node -e \'fetch("http://127.0.0.1:9420/from-node", { method: "POST" }).then((r) => r.text()).then((t) => process.stdout.write(t))\'',
      ],
      {
        dir: dirs.dir,
        workspace: dirs.workspace,
        socketsDir: dirs.sockets,
        forwards: [{ port: 9420, socket: "proxy.sock" }],
      },
    );
    expect(stderr).toBe("");
    expect(code).toBe(0);
    expect(stdout).toBe("answer to GET /from-curl\nanswer to POST /from-node\n");
    expect(sidecar.requests).toEqual(["GET /from-curl", "POST /from-node"]);
  });

  it("listens on every port before the agent starts: its first connection always succeeds", async () => {
    const dirs = await sandboxDirs();
    await httpOnSocket(join(dirs.sockets, "gate.sock"));
    await httpOnSocket(join(dirs.sockets, "proxy.sock"));
    // bash connects at once, without curl's start-up time; the second port is the last to listen.
    const firstConnection =
      "exec 3<>/dev/tcp/127.0.0.1/9421 && printf 'GET /first HTTP/1.0\\r\\n\\r\\n' >&3 && tail -n 1 <&3";
    for (let run = 0; run < 5; run += 1) {
      const { code, stdout } = await runInSandbox(["bash", "-c", firstConnection], {
        dir: dirs.dir,
        workspace: dirs.workspace,
        socketsDir: dirs.sockets,
        forwards: [
          { port: 9420, socket: "gate.sock" },
          { port: 9421, socket: "proxy.sock" },
        ],
      });
      expect({ run, code, stdout }).toEqual({ run, code: 0, stdout: "answer to GET /first\n" });
    }
  });

  it("carries git clone and push unchanged", async () => {
    const gitEnv = await createGitEnv();
    const root = await testdir();
    const bare = join(root, "acme", "api.git");
    await mkdir(dirname(bare), { recursive: true });
    await git(["init", "--quiet", "--bare", "-b", "main", bare], { cwd: root, env: gitEnv.env });
    const work = await createWorkRepo(gitEnv, { remote: bare });
    await git(["push", "--quiet", "origin", "main"], { cwd: work, env: gitEnv.env });
    const upstream = await startHttpGitUpstream({ root, username: "u", password: "p" });
    const { port } = new URL(upstream.url("acme/api.git"));
    // The sidecar's socket: a relay to the git server's loopback port.
    const dirs = await sandboxDirs();
    const relay = createServer((client) => {
      const server = connect(Number(port), "127.0.0.1");
      client.pipe(server).pipe(client);
      client.on("error", () => server.destroy());
      server.on("error", () => client.destroy());
    });
    await listenOn(relay, join(dirs.sockets, "gate.sock"));

    const script = [
      "git clone -q http://u:p@127.0.0.1:9420/acme/api.git api",
      "cd api",
      "echo change > agent.txt",
      "git add agent.txt",
      "git -c user.name=Agent -c user.email=agent@bottle.invalid commit -qm 'from the sandbox'",
      "git push -q origin main",
    ].join(" && ");
    const { code, stderr } = await runInSandbox(["sh", "-c", script], {
      dir: dirs.dir,
      workspace: dirs.workspace,
      socketsDir: dirs.sockets,
      forwards: [{ port: 9420, socket: "gate.sock" }],
    });
    expect(stderr).toBe("");
    expect(code).toBe(0);
    const log = await git(["log", "--format=%s", "main"], { cwd: bare, env: gitEnv.env });
    expect(log.stdout).toBe("from the sandbox\ninitial commit\n");
  });

  it("passes 8 MiB both ways intact, and half-closes: the sidecar answers after the end", async () => {
    const dirs = await sandboxDirs();
    // Answers only once the client has finished sending: the digest of everything it got,
    // then the bytes themselves.
    const echo = createServer({ allowHalfOpen: true }, (socket) => {
      const chunks: Buffer[] = [];
      socket.on("data", (chunk: Buffer) => chunks.push(chunk));
      socket.on("end", () => {
        const body = Buffer.concat(chunks);
        socket.write(`${createHash("sha256").update(body).digest("hex")}\n`);
        socket.end(body);
      });
    });
    await listenOn(echo, join(dirs.sockets, "echo.sock"));
    const client = `
      const { createHash, randomBytes } = require("node:crypto");
      const socket = require("node:net").connect(9420, "127.0.0.1");
      const body = randomBytes(8 * 1024 * 1024);
      const chunks = [];
      socket.on("data", (c) => chunks.push(c));
      socket.on("end", () => {
        const all = Buffer.concat(chunks);
        const line = all.indexOf(10);
        const digest = createHash("sha256").update(body).digest("hex");
        console.log(all.subarray(0, line).toString() === digest, all.subarray(line + 1).equals(body));
      });
      socket.end(body);
    `;
    const { code, stdout, stderr } = await runInSandbox(["node", "-e", client], {
      dir: dirs.dir,
      workspace: dirs.workspace,
      socketsDir: dirs.sockets,
      forwards: [{ port: 9420, socket: "echo.sock" }],
    });
    expect(stderr).toBe("");
    expect(code).toBe(0);
    expect(stdout).toBe("true true\n");
  });

  it("reaches a sidecar that (re)starts after the sandbox: the directory is bound, not the socket", async () => {
    const dirs = await sandboxDirs();
    const socket = join(dirs.sockets, "gate.sock");
    // The agent records its first, failed attempt, then retries until the sidecar answers.
    const script = [
      "curl -sS --max-time 5 http://127.0.0.1:9420/early >/dev/null 2>&1 && exit 9",
      "touch first-attempt-failed",
      "i=0; until curl -sS --max-time 5 http://127.0.0.1:9420/late; do i=$((i+1)); [ $i -lt 200 ] || exit 8; sleep 0.05; done",
    ].join("; ");
    const started = await startSandbox({
      dir: dirs.dir,
      workspace: dirs.workspace,
      workdir: "/workspace",
      socketsDir: dirs.sockets,
      forwards: [{ port: 9420, socket: "gate.sock" }],
      env: {},
      homeFiles: {},
      roBinds: [],
      command: ["sh", "-c", script],
      terminal: "none",
    });
    const marker = join(dirs.workspace, "first-attempt-failed");
    expect(await eventually(async () => existsSync(marker), 10_000)).toBe(true);
    const sidecar = await httpOnSocket(socket);
    const { code } = await started.exited;
    expect(started.stdout()).toBe("answer to GET /late\n");
    expect(code).toBe(0);
    expect(sidecar.requests).toEqual(["GET /late"]);
  });
});
