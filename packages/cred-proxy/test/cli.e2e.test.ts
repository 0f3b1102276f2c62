// The real `bottle-cred-proxy` executable (dist/cli.js) as a child process.
import { stat } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import {
  createBaseEnv,
  expectNoCanary,
  makeCanary,
  runProcess,
  startProcess,
  startUpstream,
  testdir,
} from "@bottle/test-utils";
import { describe, expect, it, onTestFinished } from "vitest";
import { BIN, getOverSocket, headerValues, holdSocket, route, send } from "./fixture.ts";

async function routesFile(routes: unknown[]): Promise<string> {
  const dir = await testdir({ "routes.json": JSON.stringify({ version: 1, routes }) });
  return join(dir, "routes.json");
}

function run(args: string[], env: Record<string, string> = {}) {
  return runProcess(process.execPath, [BIN, ...args], { env: createBaseEnv(env) });
}

describe("bottle-cred-proxy", { tags: ["slow"] }, () => {
  it("proxies with tokens from its environment, logs `listening`, and stops on SIGTERM", async () => {
    const canary = makeCanary();
    let release = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    const upstream = await startUpstream(async (req, res) => {
      if (req.url.endsWith("/slow")) await released;
      res.writeHead(200, { "content-type": "application/json" });
      res.end('{"ok":true}');
    });
    const file = await routesFile([
      route("/anthropic/", upstream.url, { header: "x-api-key" }),
      route(
        "/gh-git/",
        upstream.url,
        { scheme: "Basic", username: "x-access-token" },
        "BOTTLE_PROXY_TOKEN_1",
      ),
    ]);
    const proc = await startProcess(process.execPath, [BIN, "--routes", file, "--port", "0"], {
      env: createBaseEnv({ BOTTLE_PROXY_TOKEN_0: canary, BOTTLE_PROXY_TOKEN_1: canary }),
    });
    const url = proc.url ?? "";
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const loaded = proc.logs().find((r) => r.msg === "routes loaded");
    expect(loaded?.routes).toEqual([
      expect.objectContaining({ path: "/anthropic/", slot: "BOTTLE_PROXY_TOKEN_0" }),
      expect.objectContaining({ path: "/gh-git/", auth: "Basic", slot: "BOTTLE_PROXY_TOKEN_1" }),
    ]);

    const reply = await send(url, "/anthropic/v1/messages?beta=1", {
      method: "POST",
      headers: { "x-api-key": "placeholder", "content-type": "application/json" },
      body: "{}",
    });
    expect(reply.status).toBe(200);
    const git = await send(url, "/gh-git/acme/api.git/info/refs?service=git-upload-pack");
    expect(git.status).toBe(200);
    expect(headerValues(upstream.requests[0] as never, "x-api-key")).toEqual([canary]);
    expect(headerValues(upstream.requests[1] as never, "authorization")).toEqual([
      `Basic ${Buffer.from(`x-access-token:${canary}`).toString("base64")}`,
    ]);

    // SIGTERM lets an in-flight request finish, then exits 0.
    const inFlight = send(url, "/anthropic/slow");
    await expect.poll(() => upstream.requests.length).toBe(3);
    process.kill(proc.pid, "SIGTERM");
    await expect
      .poll(() => proc.logs().some((r) => r.msg?.toString().startsWith("shutting down")))
      .toBe(true);
    release();
    expect((await inFlight).status).toBe(200);
    expect(await proc.wait()).toEqual({ code: 0, signal: null });
    const requests = proc.logs().filter((r) => r.msg === "request");
    expect(requests.map((r) => [r.route, r.method, r.status])).toEqual([
      ["/anthropic/", "POST", 200],
      ["/gh-git/", "GET", 200],
      ["/anthropic/", "GET", 200],
    ]);
    expect(proc.logs().at(-1)?.msg).toBe("stopped");
    expectNoCanary(canary, proc.stdout(), proc.stderr(), reply.body, JSON.stringify(reply.headers));
    expect(proc.stderr()).not.toContain("beta=1");
  });

  it("exits 2 naming the slot when a route's token is missing or malformed", async () => {
    const file = await routesFile([
      route("/anthropic/", "https://api.anthropic.com", { header: "x-api-key" }),
    ]);
    const missing = await run(["--routes", file, "--port", "0"]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^BTL_PROXY_TOKEN: .*BOTTLE_PROXY_TOKEN_0/m);
    const spaced = await run(["--routes", file, "--port", "0"], {
      BOTTLE_PROXY_TOKEN_0: "has a space-secret-value",
    });
    expect(spaced.code).toBe(2);
    expect(spaced.stderr).toMatch(/^BTL_PROXY_TOKEN: .*BOTTLE_PROXY_TOKEN_0/m);
    expect(spaced.stderr).not.toContain("secret-value");
  });

  it("exits 2 on invalid routes.json, options or TLS settings", async () => {
    const bad = await routesFile([route("/a/", "http://api.example.test", { scheme: "Bearer" })]);
    const good = await routesFile([route("/a/", "https://api.example.test", { scheme: "Bearer" })]);
    const env = { BOTTLE_PROXY_TOKEN_0: "t0k" };
    const cases: Array<[string[], Record<string, string>, RegExp]> = [
      [["--routes", bad], env, /^BTL_PROXY_CONFIG: .*routes\[0\]\.upstream/m],
      [["--routes", join(bad, "..", "missing.json")], env, /^BTL_PROXY_CONFIG: .*ENOENT/m],
      [[], env, /^BTL_PROXY_CONFIG: .*--routes/m],
      [["--routes", good, "--port", "70000"], env, /^BTL_PROXY_CONFIG: /m],
      [["--routes", good, "--socket", "/tmp/x.sock", "--port", "1"], env, /^BTL_PROXY_CONFIG: /m],
      [["--routes", good, "--bogus"], env, /^BTL_PROXY_CONFIG: /m],
      [
        ["--routes", good, "--max-connections", "0"],
        env,
        /^BTL_PROXY_CONFIG: .*--max-connections/m,
      ],
      [
        ["--routes", good, "--ca-file", join(good, "..", "none.pem")],
        env,
        /^BTL_PROXY_CONFIG: .*--ca-file/m,
      ],
      [
        ["--routes", good],
        { ...env, NODE_TLS_REJECT_UNAUTHORIZED: "0" },
        /^BTL_PROXY_CONFIG: NODE_TLS_REJECT_UNAUTHORIZED/m,
      ],
    ];
    for (const [args, extra, pattern] of cases) {
      const result = await run(args, extra);
      expect(result.code, args.join(" ")).toBe(2);
      expect(result.stderr, args.join(" ")).toMatch(pattern);
    }
  });

  it("exits 3 when it cannot listen", async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    onTestFinished(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
    const port = (blocker.address() as { port: number }).port;
    const file = await routesFile([route("/a/", "https://api.example.test", { scheme: "Bearer" })]);
    const result = await run(["--routes", file, "--port", String(port)], {
      BOTTLE_PROXY_TOKEN_0: "t0k",
    });
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(/^BTL_PROXY_LISTEN: .*EADDRINUSE/m);
  });

  it("listens on a unix socket with --socket", async () => {
    const upstream = await startUpstream();
    const file = await routesFile([route("/a/", upstream.url, { scheme: "token" })]);
    const socketPath = join(await testdir(), "proxy.sock");
    const proc = await startProcess(
      process.execPath,
      [BIN, "--routes", file, "--socket", socketPath],
      {
        env: createBaseEnv({ BOTTLE_PROXY_TOKEN_0: "t0k" }),
      },
    );
    expect(proc.url).toBe(`unix:${socketPath}`);
    expect((await stat(socketPath)).mode & 0o777).toBe(0o600);
    expect(await getOverSocket(socketPath, "/a/x")).toBe(200);
    expect(headerValues(upstream.requests[0] as never, "authorization")).toEqual(["token t0k"]);
  });

  it("closes connections beyond --max-connections and counts them in the log", async () => {
    const upstream = await startUpstream();
    const file = await routesFile([route("/a/", upstream.url, { scheme: "token" })]);
    const proc = await startProcess(
      process.execPath,
      [BIN, "--routes", file, "--port", "0", "--max-connections", "1"],
      { env: createBaseEnv({ BOTTLE_PROXY_TOKEN_0: "t0k" }) },
    );
    const port = Number(new URL(proc.url ?? "").port);
    // One connection, kept alive after its answer: it holds the only place.
    const held = await holdSocket(port);
    held.socket.write("GET /a/x HTTP/1.1\r\nHost: proxy\r\n\r\n");
    await expect.poll(() => held.received().toString("latin1")).toMatch(/^HTTP\/1\.1 200 /);
    const extra = await holdSocket(port);
    extra.socket.write("GET /a/y HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n");
    await extra.closed;
    expect(extra.received().length).toBe(0);
    expect(upstream.requests.map((r) => r.url)).toEqual(["/x"]);
    await expect
      .poll(() => proc.logs().find((r) => r.code === "BTL_PROXY_TOO_MANY_CONNECTIONS"))
      .toMatchObject({ level: "warn", dropped: 1, maxConnections: 1 });
  });

  it("documents its exit codes in --help", async () => {
    const help = await run(["--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("--routes <file>");
    expect(help.stdout).toMatch(/2\s+invalid options, routes.json or token slots/);
    expect(help.stdout).toMatch(/3\s+cannot listen/);
  });
});
