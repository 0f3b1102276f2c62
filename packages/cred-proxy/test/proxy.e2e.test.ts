// Proxying behaviour beyond the security checklist: streaming both ways, connection reuse,
// query strings, aborts, limits, listeners and shutdown.
import { stat } from "node:fs/promises";
import { Agent, request } from "node:http";
import { join } from "node:path";
import { createDeferred, startUpstream, testdir } from "@bottle/test-utils";
import { describe, expect, it, onTestFinished } from "vitest";
import { parseRoutes } from "../src/routes.ts";
import { createCredProxy } from "../src/server.ts";
import {
  countConnections,
  createTestProxy,
  getOverSocket,
  headerNames,
  headerValues,
  holdSocket,
  pattern,
  patternHash,
  route,
  send,
  sendRaw,
  sha256,
  startProxy,
} from "./fixture.ts";

const TOKENS = { BOTTLE_PROXY_TOKEN_0: "tok-0-value" };
const MiB = 1024 * 1024;

/** Streams `n` pattern bytes as a request body (chunked unless `length` is set). */
function upload(
  url: string,
  target: string,
  n: number,
  length?: number,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${url}${target}`,
      {
        method: "PUT",
        agent: false,
        headers: length === undefined ? {} : { "content-length": String(length) },
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          body += chunk;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("error", reject);
    void (async () => {
      for (const chunk of pattern(n))
        if (!req.write(chunk)) await new Promise((r) => req.once("drain", r));
      req.end();
    })();
  });
}

describe("proxying", { tags: ["slow"] }, () => {
  it("streams an 8 MiB chunked upload and a sized one byte-identical", async () => {
    const upstream = await startUpstream((req, res) => {
      res.end(sha256(req.body));
    });
    const proxy = await startProxy({
      routes: [route("/up/", upstream.url, { scheme: "Bearer" })],
      tokens: TOKENS,
    });
    const size = 8 * MiB;
    const chunked = await upload(proxy.url, "/up/chunked", size);
    expect(chunked).toEqual({ status: 200, body: patternHash(size) });
    const sized = await upload(proxy.url, "/up/sized", size, size);
    expect(sized).toEqual({ status: 200, body: patternHash(size) });

    const [first, second] = upstream.requests;
    if (first === undefined || second === undefined) throw new Error("missing requests");
    expect(headerValues(first, "transfer-encoding")).toEqual(["chunked"]);
    expect(headerNames(first)).not.toContain("content-length");
    expect(headerValues(second, "content-length")).toEqual([String(size)]);
    expect(headerNames(second)).not.toContain("transfer-encoding");
    await expect
      .poll(() => proxy.records().filter((r) => r.msg === "request"))
      .toMatchObject([{ bytesIn: size }, { bytesIn: size }]);
  });

  it("streams a 16 MiB download byte-identical, sized and chunked", async () => {
    const size = 16 * MiB;
    const upstream = await startUpstream(async (req, res) => {
      res.writeHead(200, req.url.endsWith("/sized") ? { "content-length": size } : {});
      for (const chunk of pattern(size))
        if (!res.write(chunk)) await new Promise((r) => res.once("drain", r));
      res.end();
    });
    const proxy = await startProxy({
      routes: [route("/dl/", upstream.url, { scheme: "Bearer" })],
      tokens: TOKENS,
    });
    for (const kind of ["sized", "chunked"]) {
      const reply = await send(proxy.url, `/dl/${kind}`);
      expect(reply.status).toBe(200);
      expect(reply.body.length).toBe(size);
      expect(sha256(reply.body)).toBe(patternHash(size));
      if (kind === "sized") expect(reply.headers["content-length"]).toBe(String(size));
      else expect(reply.headers["transfer-encoding"]).toBe("chunked");
    }
  });

  it("reuses upstream connections (keep-alive pool per origin)", async () => {
    const upstream = await startUpstream();
    // undici keeps a connection only while the server's keep-alive hint minus 1 s is positive;
    // the recording upstream's own 1 s hint would make every connection single-use.
    upstream.server.keepAliveTimeout = 10_000;
    const connections = countConnections(upstream.server);
    const proxy = await startProxy({
      routes: [
        route("/a/", `${upstream.url}/a`, { scheme: "Bearer" }),
        route("/b/", `${upstream.url}/b`, { header: "x-api-key" }),
      ],
      tokens: TOKENS,
    });
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    onTestFinished(() => agent.destroy());
    for (let i = 0; i < 10; i++) {
      const status = await new Promise<number>((resolve, reject) => {
        request(`${proxy.url}/${i % 2 ? "a" : "b"}/n${i}`, { agent }, (res) => {
          res.resume();
          res.on("end", () => resolve(res.statusCode ?? 0));
        })
          .on("error", reject)
          .end();
      });
      expect(status).toBe(200);
    }
    expect(upstream.requests).toHaveLength(10);
    expect(connections()).toBe(1);
    // Fresh client connections still share the upstream one.
    for (let i = 0; i < 5; i++) expect((await send(proxy.url, "/a/fresh")).status).toBe(200);
    expect(connections()).toBe(1);
  });

  it("forwards query strings verbatim and logs neither them nor header values", async () => {
    const upstream = await startUpstream();
    const proxy = await startProxy({
      routes: [route("/api/", `${upstream.url}/v3`, { scheme: "token" })],
      tokens: TOKENS,
    });
    const query = "access=q-secret-4242&path=%2F..%2Fx&empty=&a=1&a=2&sig=ab%3D%3D+c";
    const reply = await send(proxy.url, `/api/search/code?${query}`, {
      headers: { "X-Session-Note": "header-secret-4242" },
    });
    expect(reply.status).toBe(200);
    expect(upstream.requests[0]?.url).toBe(`/v3/search/code?${query}`);
    await expect.poll(() => proxy.records().filter((r) => r.msg === "request")).toHaveLength(1);
    const log = proxy.logText();
    expect(log).not.toContain("q-secret-4242");
    expect(log).not.toContain("header-secret-4242");
    expect(log).not.toContain("search/code");
    expect(proxy.records().find((r) => r.msg === "request")).toMatchObject({
      route: "/api/",
      method: "GET",
      status: 200,
      bytesIn: 0,
      bytesOut: 11,
    });
  });

  it("aborts the upstream request when the client goes away", async () => {
    const upstreamClosed = createDeferred<void>();
    const upstream = await startUpstream(async (_req, res) => {
      res.on("close", () => upstreamClosed.resolve());
      res.writeHead(200, { "content-type": "text/event-stream" });
      const timer = setInterval(() => res.write("data: tick\n\n"), 20);
      res.on("close", () => clearInterval(timer));
    });
    const proxy = await startProxy({
      routes: [route("/sse/", upstream.url, { scheme: "Bearer" })],
      tokens: TOKENS,
    });
    await new Promise<void>((resolve, reject) => {
      const req = request(`${proxy.url}/sse/stream`, { agent: false }, (res) => {
        res.once("data", () => {
          req.destroy();
          resolve();
        });
      });
      req.on("error", () => {});
      req.on("close", resolve);
      req.on("socket", (socket) => socket.on("error", reject));
      req.end();
    });
    await upstreamClosed.promise;
    await expect
      .poll(() => proxy.records().find((r) => r.msg === "request"))
      .toMatchObject({ route: "/sse/", status: 200, aborted: true });
  });

  it("answers 503 beyond maxConcurrent and serves again afterwards", async () => {
    const release = createDeferred<void>();
    const upstream = await startUpstream(async (req, res) => {
      if (req.url.endsWith("/wait")) await release.promise;
      res.end("done");
    });
    const proxy = await startProxy({
      routes: [route("/x/", upstream.url, { scheme: "Bearer" })],
      tokens: TOKENS,
      maxConcurrent: 1,
    });
    const waiting = send(proxy.url, "/x/wait");
    await expect.poll(() => upstream.requests.length).toBe(1);
    const busy = await send(proxy.url, "/x/other");
    expect(busy.status).toBe(503);
    expect(busy.headers["retry-after"]).toBe("1");
    expect(JSON.parse(busy.body.toString()).code).toBe("BTL_PROXY_BUSY");
    release.resolve();
    expect((await waiting).status).toBe(200);
    expect((await send(proxy.url, "/x/other")).status).toBe(200);
  });

  it("closes connections beyond maxConnections at once, still serves the open ones, and logs the drops", async () => {
    const upstream = await startUpstream();
    const proxy = await startProxy({
      routes: [route("/x/", upstream.url, { scheme: "Bearer" })],
      tokens: TOKENS,
      maxConnections: 5,
    });
    const accepted = countConnections(proxy.proxy.server);
    const open = [];
    for (let i = 0; i < 5; i++) open.push(await holdSocket(proxy.port));
    await expect.poll(accepted).toBe(5);

    // Beyond the cap: each new connection is closed by the proxy without a byte of answer.
    const extra = [];
    for (let i = 0; i < 3; i++) extra.push(await holdSocket(proxy.port));
    for (const socket of extra) {
      socket.socket.write("GET /x/extra HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n");
      await socket.closed;
      expect(socket.received().length).toBe(0);
    }
    expect(accepted()).toBe(5);

    // The connections opened first are still served.
    for (const [i, socket] of open.entries())
      socket.socket.write(`GET /x/held-${i} HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n`);
    for (const socket of open) {
      await socket.closed;
      expect(socket.received().toString("latin1")).toMatch(/^HTTP\/1\.1 200 /);
    }
    expect(upstream.requests.map((r) => r.url).sort()).toEqual(
      [0, 1, 2, 3, 4].map((i) => `/held-${i}`),
    );
    // The first drop is logged at once, the later ones (rate-limited) counted into one record
    // that closing the proxy writes, with the running total.
    const drops = () => proxy.records().filter((r) => r.code === "BTL_PROXY_TOO_MANY_CONNECTIONS");
    expect(drops()).toEqual([
      expect.objectContaining({ level: "warn", dropped: 1, droppedTotal: 1, maxConnections: 5 }),
    ]);
    await proxy.proxy.close(0);
    expect(drops()).toEqual([
      expect.objectContaining({ dropped: 1, droppedTotal: 1 }),
      expect.objectContaining({ dropped: 2, droppedTotal: 3 }),
    ]);
  });

  it("passes HEAD, 204 and 304 answers and status codes through", async () => {
    const upstream = await startUpstream((req, res) => {
      const status = Number(req.url.split("/").at(-1));
      res.writeHead(status, { "content-length": status === 200 ? "5" : "0", etag: '"v1"' });
      res.end(status === 200 && req.method !== "HEAD" ? "hello" : undefined);
    });
    const proxy = await startProxy({
      routes: [route("/s/", upstream.url, { scheme: "Bearer" })],
      tokens: TOKENS,
    });
    const head = await send(proxy.url, "/s/200", { method: "HEAD" });
    expect([head.status, head.headers["content-length"], head.body.length]).toEqual([200, "5", 0]);
    for (const status of [204, 304, 404, 429, 500]) {
      const reply = await send(proxy.url, `/s/${status}`, {
        headers: { "If-None-Match": '"v1"' },
      });
      expect(reply.status).toBe(status);
      expect(reply.headers.etag).toBe('"v1"');
    }
    for (const method of ["DELETE", "PATCH", "OPTIONS"])
      expect((await send(proxy.url, "/s/200", { method })).status).toBe(200);
    expect(upstream.requests.map((r) => r.method)).toContain("PATCH");
  });

  it("picks the longest route prefix and maps the remainder onto its base path", async () => {
    const upstream = await startUpstream();
    const proxy = await startProxy({
      routes: [
        route("/gh/", `${upstream.url}/web`, { scheme: "Bearer" }),
        route("/gh/api/", `${upstream.url}/api/v3`, { scheme: "token" }),
      ],
      tokens: TOKENS,
    });
    await send(proxy.url, "/gh/api/repos/acme/caf%C3%A9");
    await send(proxy.url, "/gh/acme/api.git/info/refs?service=git-upload-pack");
    await send(proxy.url, "/gh/api/");
    expect(upstream.requests.map((r) => [r.url, headerValues(r, "authorization")[0]])).toEqual([
      ["/api/v3/repos/acme/caf%C3%A9", "token tok-0-value"],
      ["/web/acme/api.git/info/refs?service=git-upload-pack", "Bearer tok-0-value"],
      ["/api/v3/", "token tok-0-value"],
    ]);
  });

  it("listens on a unix socket created mode 0600", async () => {
    const upstream = await startUpstream();
    const dir = await testdir();
    const socketPath = join(dir, "proxy.sock");
    const unixProxy = () =>
      createTestProxy([route("/u/", upstream.url, { scheme: "Bearer" })], { tokens: TOKENS });
    const proxy = unixProxy();
    expect(await proxy.listen({ path: socketPath })).toBe(`unix:${socketPath}`);
    expect((await stat(socketPath)).mode & 0o777).toBe(0o600);
    expect(await getOverSocket(socketPath, "/u/ping")).toBe(200);
    expect(headerValues(upstream.requests[0] as never, "host")).toEqual([
      `127.0.0.1:${upstream.port}`,
    ]);
    // A second proxy on the same live socket path is refused.
    const second = unixProxy();
    await expect(second.listen({ path: socketPath })).rejects.toMatchObject({
      code: "BTL_PROXY_LISTEN",
    });
  });

  it("finishes in-flight requests on close and refuses new connections", async () => {
    const release = createDeferred<void>();
    const upstream = await startUpstream(async (_req, res) => {
      await release.promise;
      res.end("finished");
    });
    const proxy = await startProxy({
      routes: [route("/c/", upstream.url, { scheme: "Bearer" })],
      tokens: TOKENS,
    });
    const inFlight = send(proxy.url, "/c/long");
    await expect.poll(() => upstream.requests.length).toBe(1);
    const closed = proxy.proxy.close();
    await expect(send(proxy.url, "/c/new")).rejects.toMatchObject({ code: "ECONNREFUSED" });
    release.resolve();
    const reply = await inFlight;
    expect([reply.status, reply.body.toString()]).toEqual([200, "finished"]);
    await closed;
  });

  it("answers a failure during an unfinished upload and closes that connection", async () => {
    const dead = await startUpstream();
    await dead.close();
    const proxy = await startProxy({
      routes: [route("/dead/", dead.url, { scheme: "Bearer" })],
      tokens: TOKENS,
    });
    const started = performance.now();
    const reply = await sendRaw(
      proxy.port,
      "POST /dead/x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello",
    );
    expect(reply.status).toBe(502);
    expect(reply.text.toLowerCase()).toContain("connection: close");
    expect(performance.now() - started).toBeLessThan(2_000);
  });

  it("refuses bad options at creation", () => {
    const routes = parseRoutes({
      version: 1,
      routes: [route("/o/", "https://api.example.test", { scheme: "Bearer" })],
    });
    for (const bad of [
      { idleTimeoutMs: 0 },
      { headersTimeoutMs: 1.5 },
      { maxConcurrent: -1 },
      { maxConnections: 0 },
    ])
      expect(() => createCredProxy({ routes, tokens: TOKENS, ...bad })).toThrow(
        expect.objectContaining({ code: "BTL_PROXY_CONFIG" }),
      );
    // Only routes parseRoutes made are served: a forged origin cannot slip in, nor a second
    // route on a path, nor no route at all.
    const forged = [{ ...routes[0], upstream: "http://evil.test" }] as never;
    const again = parseRoutes({
      version: 1,
      routes: [route("/o/", "https://other.example.test", { scheme: "Bearer" })],
    });
    for (const bad of [forged, [...routes, ...again], []])
      expect(() => createCredProxy({ routes: bad, tokens: TOKENS })).toThrow(
        expect.objectContaining({ code: "BTL_PROXY_CONFIG" }),
      );
  });
});
