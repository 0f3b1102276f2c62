// One test (or table) per item of SECURITY.md's cred-proxy section, against real servers on
// loopback: a recording upstream, the proxy, and clients that control the bytes they send.
import { createHash } from "node:crypto";
import { request } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { gzipSync } from "node:zlib";
import { isBottleError } from "@bottle/errors";
import {
  createBaseEnv,
  expectNoCanary,
  makeCanary,
  runProcess,
  startUpstream,
  testdir,
} from "@bottle/test-utils";
import { describe, expect, it, onTestFinished } from "vitest";
import { parseRoutes } from "../src/routes.ts";
import { createCredProxy } from "../src/server.ts";
import {
  BIN,
  countConnections,
  createTestProxy,
  eventGates,
  headerNames,
  headerValues,
  makeCertificate,
  pattern,
  patternHash,
  type RouteSpec,
  route,
  send,
  sendRaw,
  sha256,
  startProxy,
} from "./fixture.ts";

const T0 = "sk-ant-route0-token";
const T1 = "ghs_route1token";
const T2 = "gitea_route2_token";
const TOKENS = {
  BOTTLE_PROXY_TOKEN_0: T0,
  BOTTLE_PROXY_TOKEN_1: T1,
  BOTTLE_PROXY_TOKEN_2: T2,
};

/** The four routes of the routes.json example, all pointing at one local upstream. */
function exampleRoutes(upstream: string): RouteSpec[] {
  return [
    route("/anthropic/", `${upstream}/anthropic-base`, { header: "x-api-key" }),
    route("/gh-api/", `${upstream}/gh-api-base`, { scheme: "Bearer" }, "BOTTLE_PROXY_TOKEN_1"),
    route(
      "/gh-git/",
      `${upstream}/gh-git-base`,
      { scheme: "Basic", username: "x-access-token" },
      "BOTTLE_PROXY_TOKEN_1",
    ),
    route(
      "/gitea/gitea.acme.example/",
      `${upstream}/gitea-base`,
      { scheme: "token" },
      "BOTTLE_PROXY_TOKEN_2",
    ),
  ];
}

/** The proxy with the example routes in front of `upstream`, and their tokens. */
function startExampleProxy(upstream: { url: string }) {
  return startProxy({ routes: exampleRoutes(upstream.url), tokens: TOKENS });
}

/** A recording upstream, the count of connections made to it, and the example proxy before it. */
async function startExample() {
  const upstream = await startUpstream();
  const connections = countConnections(upstream.server);
  const proxy = await startExampleProxy(upstream);
  return { upstream, connections, proxy };
}

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
}

/** Asserts that creating the proxy throws a ProxyError with `code`; returns the error. */
function creationError(code: string, create: () => unknown): Error {
  try {
    create();
  } catch (error) {
    expect(isBottleError(error, code), String(error)).toBe(true);
    return error as Error;
  }
  throw new Error(`expected ${code}`);
}

describe("cred-proxy security checklist", { tags: ["slow"] }, () => {
  it.each([
    ["/anthropic/", "x-api-key", T0],
    ["/gh-api/", "authorization", `Bearer ${T1}`],
    ["/gh-git/", "authorization", basic("x-access-token", T1)],
    ["/gitea/gitea.acme.example/", "authorization", `token ${T2}`],
  ])(
    "(1) on %s the upstream sees the route's credential and no client credential",
    async (prefix, name, value) => {
      const upstream = await startUpstream();
      const proxy = await startExampleProxy(upstream);
      const reply = await send(proxy.url, `${prefix}v1/thing`, {
        headers: {
          Authorization: "Bearer evil",
          "x-api-key": "evil",
          X_Api_Key: "evil",
          "x.api.key": "evil",
          Cookie: "session=evil",
          "Proxy-Authorization": "Basic ZXZpbA==",
          "Private-Token": "evil",
          Accept: "application/json",
        },
      });
      expect(reply.status).toBe(200);
      expect(upstream.requests).toHaveLength(1);
      const [seen] = upstream.requests;
      if (seen === undefined) throw new Error("no request");
      // The exact set: any leftover client credential would make this fail.
      expect(headerNames(seen)).toEqual(["accept", "connection", "host", name].sort());
      expect(headerValues(seen, name)).toEqual([value]);
      expect(headerValues(seen, "connection")).toEqual(["keep-alive"]);
      expect(seen.url).toMatch(/-base\/v1\/thing$/);
      expect(JSON.stringify(seen.rawHeaders)).not.toContain("evil");
    },
  );

  it("(2) strips hop-by-hop and Connection-listed headers both ways, keeps the injected one, survives Trailer", async () => {
    const upstream = await startUpstream((req, res) => {
      if (req.url.endsWith("/trailers")) {
        res.writeHead(200, { "content-type": "text/plain", trailer: "x-up-checksum" });
        res.write("with ");
        res.addTrailers({ "x-up-checksum": "abc" });
        res.end("trailers");
        return;
      }
      res.writeHead(200, {
        connection: "x-upstream-hop",
        "x-upstream-hop": "1",
        "proxy-authenticate": "Basic",
        "content-type": "text/plain",
      });
      res.end("ok");
    });
    const proxy = await startExampleProxy(upstream);

    const tricked = await send(proxy.url, "/anthropic/v1/messages", {
      headers: {
        Connection: "x-api-key, x-drop-me, authorization",
        "x-api-key": "evil",
        "X-Drop-Me": "1",
        "X-Keep-Me": "1",
      },
    });
    expect(tricked.status).toBe(200);
    expect(tricked.headers["x-upstream-hop"]).toBeUndefined();
    expect(tricked.headers["proxy-authenticate"]).toBeUndefined();
    expect(tricked.body.toString()).toBe("ok");
    const [seen] = upstream.requests;
    if (seen === undefined) throw new Error("no request");
    expect(headerValues(seen, "x-api-key")).toEqual([T0]);
    expect(headerNames(seen)).toEqual(["connection", "host", "x-api-key", "x-keep-me"]);

    // A client body with a Trailer header and trailers.
    const withTrailer = await new Promise<number>((resolve, reject) => {
      const req = request(
        {
          host: "127.0.0.1",
          port: proxy.port,
          method: "POST",
          path: "/gh-api/upload",
          agent: false,
          headers: { Trailer: "x-checksum", "Transfer-Encoding": "chunked", TE: "trailers" },
        },
        (res) => {
          res.resume();
          res.on("end", () => resolve(res.statusCode ?? 0));
        },
      );
      req.on("error", reject);
      req.write("body ");
      req.addTrailers({ "x-checksum": "123" });
      req.end("bytes");
    });
    expect(withTrailer).toBe(200);
    const upload = upstream.requests[1];
    if (upload === undefined) throw new Error("no upload");
    expect(upload.body.toString()).toBe("body bytes");
    expect(headerNames(upload)).not.toContain("trailer");
    expect(headerNames(upload)).not.toContain("te");

    // An upstream answer with a Trailer header and trailers.
    const trailers = await send(proxy.url, "/gh-api/trailers");
    expect(trailers.status).toBe(200);
    expect(trailers.body.toString()).toBe("with trailers");
    expect(trailers.headers.trailer).toBeUndefined();
    expect((await send(proxy.url, "/gh-api/still-alive")).status).toBe(200);
  });

  it("(3) refuses absolute-form targets and CONNECT before contacting any upstream", async () => {
    const { upstream, connections, proxy } = await startExample();
    for (const target of [
      "http://evil.test/anthropic/v1",
      `http://127.0.0.1:${upstream.port}/anthropic/v1`,
      "https://api.anthropic.com/anthropic/v1",
    ]) {
      const reply = await sendRaw(
        proxy.port,
        `GET ${target} HTTP/1.1\r\nHost: evil.test\r\nConnection: close\r\n\r\n`,
      );
      expect(reply.status, target).toBe(400);
      expect(reply.text).toContain("BTL_PROXY_BAD_PATH");
    }
    const star = await sendRaw(
      proxy.port,
      "OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    expect(star.status).toBe(400);
    for (const authority of ["evil.test:443", `127.0.0.1:${upstream.port}`]) {
      const reply = await sendRaw(
        proxy.port,
        `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`,
      );
      expect(reply.status, authority).toBe(405);
      expect(reply.text).toContain("BTL_PROXY_METHOD");
    }
    expect(upstream.requests).toHaveLength(0);
    expect(connections()).toBe(0);
  });

  it("(4) refuses every odd path spelling with 400 and zero upstream hits", async () => {
    const { upstream, connections, proxy } = await startExample();
    const targets: Array<string | Buffer> = [
      "//evil.test/x",
      "/anthropic//evil.test/x",
      "/anthropic/%2e%2e/gh-api/user",
      "/anthropic/%2E%2E/gh-api/user",
      "/anthropic/.%2e/gh-api/user",
      "/anthropic/%2E./gh-api/user",
      "/anthropic/../gh-api/user",
      "/anthropic/./v1",
      "/anthropic/v1%2fmessages",
      "/anthropic/%2F%2Fevil.test/x",
      "/anthropic/v1%5cmessages",
      "/anthropic\\..\\gh-api/user",
      "/anthropic/v1\\messages",
      "/anthropic/v1%00",
      "/anthropic/v1%0d%0aX-Injected:%20yes",
      Buffer.concat([Buffer.from("/anthropic/v1"), Buffer.from([0xff])]),
      Buffer.from("/anthropic/caf\u00e9", "utf8"),
      "/anthropic/%zz",
      "/anthropic/v1%",
      "/gitea/gitea.acme.example/..%2f..%2fgh-api",
    ];
    for (const target of targets) {
      const line = Buffer.concat([
        Buffer.from("GET "),
        Buffer.from(target),
        Buffer.from(" HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n"),
      ]);
      const reply = await sendRaw(proxy.port, line);
      expect(reply.status, JSON.stringify(target.toString("latin1"))).toBe(400);
    }
    expect(upstream.requests).toHaveLength(0);
    expect(connections()).toBe(0);
    // The refusals our own check made are logged with a reason, never the target.
    const refused = proxy.records().filter((r) => r.code === "BTL_PROXY_BAD_PATH");
    expect(refused.length).toBeGreaterThanOrEqual(targets.length - 3);
    expect(proxy.logText()).not.toContain("evil.test");
  });

  it("answers GET /healthz itself, without contacting any upstream", async () => {
    const { upstream, connections, proxy } = await startExample();
    const health = await send(proxy.url, "/healthz");
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body.toString())).toEqual({ status: "ok" });
    for (const target of ["/healthz/", "/healthz/x"]) {
      expect((await send(proxy.url, target)).status, target).toBe(404);
    }
    expect(upstream.requests).toHaveLength(0);
    expect(connections()).toBe(0);
  });

  it("(5) a gitea host key that is not configured is a 404 and no connection anywhere", async () => {
    const { upstream, connections, proxy } = await startExample();
    const unrouted = [
      "/gitea/evil.test/api/v1/user",
      `/gitea/127.0.0.1:${upstream.port}/api/v1/user`,
      "/gitea/",
      "/anthropic",
      "/unknown/x",
    ];
    for (const target of unrouted) {
      const reply = await send(proxy.url, target, { headers: { Authorization: "token evil" } });
      expect(reply.status, target).toBe(404);
      expect(JSON.parse(reply.body.toString())).toEqual({
        error: "no route for this path",
        code: "BTL_PROXY_NO_ROUTE",
      });
    }
    expect(connections()).toBe(0);
    const ok = await send(proxy.url, "/gitea/gitea.acme.example/api/v1/user");
    expect(ok.status).toBe(200);
    expect(upstream.requests.map((r) => r.url)).toEqual(["/gitea-base/api/v1/user"]);
    expect(headerValues(upstream.requests[0] as never, "authorization")).toEqual([`token ${T2}`]);
  });

  it("(6) never follows redirects; rewrites Location only back onto the same route", async () => {
    const other = await startUpstream();
    const otherConnections = countConnections(other.server);
    let upstreamUrl = "";
    const upstream = await startUpstream((req, res) => {
      const to: Record<string, string> = {
        "/base/cross": `${other.url}/steal`,
        "/base/cross-base": `${other.url}/base/steal`,
        "/base/same": `${upstreamUrl}/base/next?page=2`,
        "/base/outside": `${upstreamUrl}/elsewhere`,
        "/base/absolute-path": "/base/rel",
      };
      res.writeHead(302, { location: to[req.url] ?? "/" });
      res.end();
    });
    upstreamUrl = upstream.url;
    const proxy = await startProxy({
      routes: [route("/gh-api/", `${upstream.url}/base`, { scheme: "Bearer" })],
      tokens: TOKENS,
    });
    const cases: Array<[string, string]> = [
      ["/gh-api/cross", `${other.url}/steal`],
      ["/gh-api/cross-base", `${other.url}/base/steal`],
      ["/gh-api/same", "/gh-api/next?page=2"],
      ["/gh-api/outside", `${upstream.url}/elsewhere`],
      ["/gh-api/absolute-path", "/gh-api/rel"],
    ];
    for (const [target, location] of cases) {
      const reply = await send(proxy.url, target);
      expect(reply.status, target).toBe(302);
      expect(reply.headers.location, target).toBe(location);
    }
    expect(other.requests).toHaveLength(0);
    expect(otherConnections()).toBe(0);
    expect(upstream.requests.map((r) => r.url)).toEqual([
      "/base/cross",
      "/base/cross-base",
      "/base/same",
      "/base/outside",
      "/base/absolute-path",
    ]);
  });

  it.each([
    ["CR/LF", "abc\r\nX-Injected: yes"],
    ["LF", "abc\ndef"],
    ["a space", "abc def"],
    ["a tab", "abc\tdef"],
    ["NUL", "abc\u0000def"],
    ["DEL", "abc\u007fdef"],
    ["non-ASCII", "abc\u00e9def"],
    ["more than 8 KiB", "x".repeat(8 * 1024 + 1)],
  ])("(7) a token with %s is refused at creation, naming the slot only", (_, value) => {
    const routes = parseRoutes({
      version: 1,
      routes: [
        route("/r/", "https://api.example.test", { scheme: "Bearer" }, "BOTTLE_PROXY_TOKEN_3"),
      ],
    });
    const error = creationError("BTL_PROXY_TOKEN", () =>
      createCredProxy({ routes, tokens: { BOTTLE_PROXY_TOKEN_3: value } }),
    );
    expect(error.message).toContain("BOTTLE_PROXY_TOKEN_3");
    expect(error.message).not.toContain("abc");
    expect(error.message.length).toBeLessThan(200);
    // 8 KiB of printable ASCII is fine (the one limit of @bottle/manifest/policy).
    expect(() =>
      createCredProxy({ routes, tokens: { BOTTLE_PROXY_TOKEN_3: "x".repeat(8 * 1024) } }).close(),
    ).not.toThrow();
  });

  it("(8) refuses TRACE, TRACK, upgrades and smuggling attempts before the upstream", async () => {
    const { upstream, connections, proxy } = await startExample();
    const trace = await send(proxy.url, "/anthropic/v1", { method: "TRACE" });
    expect(trace.status).toBe(405);
    expect(JSON.parse(trace.body.toString()).code).toBe("BTL_PROXY_METHOD");
    // Node's parser knows no TRACK method: refused before the handler (ours refuses it too).
    expect((await send(proxy.url, "/anthropic/v1", { method: "TRACK" })).status).toBe(400);
    const websocket = await sendRaw(
      proxy.port,
      "GET /anthropic/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    expect(websocket.status).toBe(405);
    const h2c = await sendRaw(
      proxy.port,
      "GET /anthropic/v1 HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: close\r\n\r\n",
    );
    expect(h2c.status).toBe(405);
    const smuggling = [
      "POST /anthropic/v1 HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n" +
        "0\r\n\r\nGET /anthropic/smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
      "POST /anthropic/v1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\nabc",
      "POST /anthropic/v1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
      "GET /anthropic/v1 HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n",
      "GET /anthropic/v1 HTTP/1.1\r\nHost : x\r\n\r\n",
      "GET /anthropic/v1 HTTP/1.1\r\nConnection: close\r\n\r\n",
    ];
    for (const raw of smuggling) {
      const reply = await sendRaw(proxy.port, raw);
      expect(reply.status, JSON.stringify(raw)).toBe(400);
    }
    expect(upstream.requests).toHaveLength(0);
    expect(connections()).toBe(0);
  });

  it("(9) a silent upstream gets 504 within the idle timeout; a dead one 502", async () => {
    const upstream = await startUpstream(async (req, res) => {
      if (req.url.endsWith("/stall-body")) {
        res.writeHead(200, { "content-length": "100" });
        res.write("first ten!");
      }
      await new Promise(() => {}); // never answers (closed with the test)
    });
    const dead = await startUpstream();
    await dead.close();
    const proxy = await startProxy({
      routes: [
        route("/slow/", upstream.url, { scheme: "Bearer" }),
        route("/dead/", dead.url, { scheme: "Bearer" }),
      ],
      tokens: TOKENS,
      idleTimeoutMs: 300,
    });
    const started = performance.now();
    const reply = await send(proxy.url, "/slow/v1/messages");
    const elapsed = performance.now() - started;
    expect(reply.status).toBe(504);
    expect(JSON.parse(reply.body.toString())).toEqual({
      error: "upstream timed out",
      code: "BTL_PROXY_TIMEOUT",
    });
    expect(elapsed).toBeGreaterThanOrEqual(250);
    expect(elapsed).toBeLessThan(3_000);

    await expect(send(proxy.url, "/slow/stall-body")).rejects.toThrow();

    const unreachable = await send(proxy.url, "/dead/x");
    expect(unreachable.status).toBe(502);
    expect(JSON.parse(unreachable.body.toString()).code).toBe("BTL_PROXY_UPSTREAM");

    await expect.poll(() => proxy.records().filter((r) => r.msg === "request").length).toBe(3);
    const codes = proxy
      .records()
      .filter((r) => r.msg === "request")
      .map((r) => [r.route, r.code, r.upstreamError]);
    expect(codes).toEqual([
      ["/slow/", "BTL_PROXY_TIMEOUT", "UND_ERR_HEADERS_TIMEOUT"],
      ["/slow/", "BTL_PROXY_TIMEOUT", "UND_ERR_BODY_TIMEOUT"],
      ["/dead/", "BTL_PROXY_UPSTREAM", "ECONNREFUSED"],
    ]);
  });

  it("(10) a slow reader does not make the proxy hold the response in memory", async () => {
    // RSS is no measure here: Node returns freed buffers to the allocator, not to the system,
    // and collects them only under pressure (a streaming proxy "grows" 40 MiB of garbage for a
    // 32 MiB transfer). So: live buffer memory after a forced collection, at the moment the
    // client has read nothing yet, plus how far the upstream got (backpressure reaches it).
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const liveBuffers = () => {
      gc();
      gc();
      return process.memoryUsage().arrayBuffers;
    };
    const size = 32 * 1024 * 1024;
    let written = 0;
    const upstream = await startUpstream(async (req, res) => {
      const n = req.url.endsWith("/big") ? size : 1024;
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": n });
      for (const chunk of pattern(n)) {
        written += chunk.length;
        if (!res.write(chunk)) await new Promise((resolve) => res.once("drain", resolve));
      }
      res.end();
    });
    const proxy = await startProxy({
      routes: [route("/dl/", upstream.url, { scheme: "Bearer" })],
      tokens: TOKENS,
    });
    // Warm up: pool, parser and buffers exist before the baseline is taken.
    for (let i = 0; i < 3; i++) expect((await send(proxy.url, "/dl/small")).status).toBe(200);
    const baseline = liveBuffers();
    written = 0;

    let received = 0;
    let paused: { live: number; written: number } | undefined;
    const hash = createHash("sha256");
    await new Promise<void>((resolve, reject) => {
      const req = request(`${proxy.url}/dl/big`, { agent: false }, (res) => {
        res.pause();
        // Reads nothing for a while (the upstream could send it all in that time), then slowly.
        setTimeout(() => {
          paused = { live: liveBuffers() - baseline, written };
          const slow = new Writable({
            highWaterMark: 64 * 1024,
            write(chunk: Buffer, _encoding, callback) {
              const before = received;
              received += chunk.length;
              hash.update(chunk);
              if (Math.floor(received / (4 << 20)) > Math.floor(before / (4 << 20)))
                setTimeout(callback, 20);
              else callback();
            },
          });
          pipeline(res, slow).then(resolve, reject);
        }, 500);
      });
      req.on("error", reject);
      req.end();
    });
    expect(received).toBe(size);
    expect(hash.digest("hex")).toBe(patternHash(size));
    expect(paused?.live).toBeLessThan(4 * 1024 * 1024);
    // What flowed sits in the kernel's socket buffers of the two hops, not in the proxy.
    expect(paused?.written).toBeLessThan(size / 2);
    await expect
      .poll(() => proxy.records().at(-1))
      .toMatchObject({ route: "/dl/", status: 200, bytesOut: size });
  });

  it("(11) SSE passes event by event: the upstream sends n+1 only after the client got n", async () => {
    // A proxy that holds events back never lets the upstream finish: fail fast, not at the
    // test timeout.
    const { gates: seen, stalled } = eventGates(5, 5_000);
    const upstream = await startUpstream(async (_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
      for (const [n, event] of seen.entries()) {
        res.write(`id: ${n}\ndata: event ${n}\n\n`);
        await event.promise;
      }
      res.end();
    });
    const proxy = await startProxy({
      routes: [route("/anthropic/", upstream.url, { header: "x-api-key" })],
      tokens: TOKENS,
    });
    const events: string[] = [];
    const headers = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const req = request(
        `${proxy.url}/anthropic/v1/messages`,
        { method: "POST", agent: false, headers: { accept: "text/event-stream" } },
        (res) => {
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (chunk: string) => {
            text += chunk;
            let end = text.indexOf("\n\n");
            while (end !== -1) {
              events.push(text.slice(0, end));
              text = text.slice(end + 2);
              seen[events.length - 1]?.resolve();
              end = text.indexOf("\n\n");
            }
          });
          res.on("end", () => resolve(res.headers));
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      req.end("{}");
    });
    expect(stalled()).toBe(false);
    expect(events).toEqual([0, 1, 2, 3, 4].map((n) => `id: ${n}\ndata: event ${n}`));
    expect(headers["content-type"]).toBe("text/event-stream");
    expect(headers["content-encoding"]).toBeUndefined();
  });

  it("(12) verifies upstream TLS: 502 and no request without the CA, 200 with it", async () => {
    const { key, cert } = await makeCertificate();
    let requests = 0;
    const tlsUpstream = createHttpsServer({ key, cert }, (req, res) => {
      requests++;
      res.end(JSON.stringify({ authorization: req.headers.authorization === `Bearer ${T0}` }));
    });
    await new Promise<void>((resolve) => tlsUpstream.listen(0, "127.0.0.1", resolve));
    onTestFinished(
      () =>
        new Promise<void>((resolve) => {
          tlsUpstream.closeAllConnections();
          tlsUpstream.close(() => resolve());
        }),
    );
    const { port } = tlsUpstream.address() as AddressInfo;
    const routes = [route("/tls/", `https://127.0.0.1:${port}`, { scheme: "Bearer" })];

    const untrusting = await startProxy({ routes, tokens: TOKENS });
    const refused = await send(untrusting.url, "/tls/v1");
    expect(refused.status).toBe(502);
    expect(JSON.parse(refused.body.toString()).code).toBe("BTL_PROXY_UPSTREAM");
    expect(requests).toBe(0);

    const trusting = await startProxy({ routes, tokens: TOKENS, ca: cert });
    const ok = await send(trusting.url, "/tls/v1");
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body.toString())).toEqual({ authorization: true });
    expect(requests).toBe(1);

    const parsed = parseRoutes({ version: 1, routes });
    creationError("BTL_PROXY_CONFIG", () =>
      createCredProxy({
        routes: parsed,
        tokens: TOKENS,
        env: { NODE_TLS_REJECT_UNAUTHORIZED: "0" },
      }),
    );
    creationError("BTL_PROXY_CONFIG", () =>
      createCredProxy({ routes: parsed, tokens: TOKENS, ca: "not a certificate" }),
    );
  });

  it("(13) a canary token appears in no log line, error, response body or header", async () => {
    const canary = makeCanary();
    const tokens = {
      BOTTLE_PROXY_TOKEN_0: canary,
      BOTTLE_PROXY_TOKEN_1: canary,
      BOTTLE_PROXY_TOKEN_2: canary,
    };
    const upstream = await startUpstream(async (req, res) => {
      if (req.url.endsWith("/redirect")) {
        res.writeHead(302, { location: "https://elsewhere.test/x" });
        res.end();
      } else if (req.url.endsWith("/fail")) {
        res.writeHead(500, { "content-type": "text/plain" });
        res.end("upstream failed");
      } else if (req.url.endsWith("/hang")) {
        await new Promise(() => {});
      } else {
        res.writeHead(200, { "content-type": "application/json", "set-cookie": "s=1" });
        res.end('{"ok":true}');
      }
    });
    const dead = await startUpstream();
    await dead.close();
    const routes = [
      ...exampleRoutes(upstream.url),
      route("/dead/", dead.url, { scheme: "Bearer" }),
    ];
    const proxy = await startProxy({ routes, tokens, idleTimeoutMs: 300 });
    const seen: Array<string | Buffer> = [];
    const keep = (reply: { status: number; headers: unknown; body: Buffer }) => {
      seen.push(JSON.stringify(reply.headers), reply.body);
      return reply.status;
    };
    const statuses: number[] = [];
    for (const prefix of ["/anthropic/", "/gh-api/", "/gh-git/", "/gitea/gitea.acme.example/"])
      for (const rest of ["v1?key=value", "redirect", "fail"])
        statuses.push(
          keep(await send(proxy.url, `${prefix}${rest}`, { method: "POST", body: "{}" })),
        );
    statuses.push(keep(await send(proxy.url, "/gh-git/hang", { method: "POST", body: "{}" })));
    statuses.push(keep(await send(proxy.url, "/dead/x")));
    statuses.push(keep(await send(proxy.url, "/anthropic/%2e%2e/x")));
    statuses.push(keep(await send(proxy.url, "/nowhere/")));
    statuses.push(keep(await send(proxy.url, "/anthropic/x", { method: "TRACE" })));
    for (const raw of [
      "GET http://evil.test/anthropic/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
      "GET /anthropic/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
      "POST /anthropic/x HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ]) {
      const reply = await sendRaw(proxy.port, raw);
      statuses.push(reply.status);
      seen.push(reply.text);
    }
    expect(statuses).toEqual([
      ...[0, 1, 2, 3].flatMap(() => [200, 302, 500]),
      504,
      502,
      400,
      404,
      405,
      400,
      405,
      400,
    ]);
    const created = creationError("BTL_PROXY_TOKEN", () =>
      createCredProxy({
        routes: parseRoutes({ version: 1, routes }),
        tokens: { ...tokens, BOTTLE_PROXY_TOKEN_1: `${canary} ` },
      }),
    );
    seen.push(created.message, JSON.stringify(created), String(created.stack));
    await expect.poll(() => proxy.records().filter((r) => r.msg === "request").length).toBe(19);
    // The canary really travelled: the upstream got it in every credential form.
    expect(JSON.stringify(upstream.requests.map((r) => r.rawHeaders))).toContain(canary);
    expectNoCanary(canary, proxy.logText(), ...seen);
    expect(proxy.logText()).not.toContain("key=value");
  });

  it("(14) a route whose slot is missing or empty is refused at creation and by the CLI", async () => {
    const routes = parseRoutes({
      version: 1,
      routes: [
        route("/a/", "https://a.example.test", { scheme: "Bearer" }),
        route("/b/", "https://b.example.test", { header: "x-api-key" }, "BOTTLE_PROXY_TOKEN_7"),
      ],
    });
    const missing = creationError("BTL_PROXY_TOKEN", () =>
      createCredProxy({ routes, tokens: { BOTTLE_PROXY_TOKEN_0: T0 } }),
    );
    expect(missing.message).toContain("BOTTLE_PROXY_TOKEN_7");
    expect(missing.message).not.toContain("BOTTLE_PROXY_TOKEN_0");
    const empty = creationError("BTL_PROXY_TOKEN", () =>
      createCredProxy({ routes, tokens: { BOTTLE_PROXY_TOKEN_0: "", BOTTLE_PROXY_TOKEN_7: T0 } }),
    );
    expect(empty.message).toContain("BOTTLE_PROXY_TOKEN_0");

    const dir = await testdir({
      "routes.json": JSON.stringify({
        version: 1,
        routes: [
          route("/a/", "https://a.example.test", { scheme: "Bearer" }, "BOTTLE_PROXY_TOKEN_7"),
        ],
      }),
    });
    const run = await runProcess(
      process.execPath,
      [BIN, "--routes", join(dir, "routes.json"), "--port", "0"],
      { env: createBaseEnv({ BOTTLE_PROXY_TOKEN_7: "" }) },
    );
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/^BTL_PROXY_TOKEN: .*BOTTLE_PROXY_TOKEN_7/m);
  });

  it("(15) sets Host from the route, adds no X-Forwarded-For, drops Set-Cookie, binds 127.0.0.1", async () => {
    const upstream = await startUpstream((_req, res) => {
      res.writeHead(200, { "set-cookie": ["a=1", "b=2"], "content-type": "text/plain" });
      res.end("ok");
    });
    const proxy = createTestProxy([route("/api/", upstream.url, { scheme: "Bearer" })], {
      tokens: TOKENS,
    });
    const url = await proxy.listen();
    expect(proxy.address()).toMatchObject({ address: "127.0.0.1" });
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

    const plain = await send(url, "/api/x", { headers: { Host: "evil.test" } });
    expect(plain.headers["set-cookie"]).toBeUndefined();
    const forwarded = await send(url, "/api/y", {
      headers: {
        "X-Forwarded-For": "10.0.0.1",
        "X-Forwarded-Host": "evil.test",
        "X-Forwarded-Proto": "http",
        Forwarded: "for=10.0.0.1;host=evil.test",
        "X-Real-IP": "10.0.0.1",
      },
    });
    expect(forwarded.status).toBe(200);
    for (const seen of upstream.requests) {
      expect(headerValues(seen, "host")).toEqual([`127.0.0.1:${upstream.port}`]);
      expect(headerNames(seen)).toEqual(["authorization", "connection", "host"]);
    }
  });

  it("(16) forwards gzip bodies untouched, Git-Protocol, Accept-Encoding, and handles Expect: 100-continue", async () => {
    const compressed = gzipSync(Buffer.from("0032want 0123456789abcdef\n".repeat(500)));
    const answer = gzipSync(Buffer.from("packfile bytes ".repeat(1000)));
    const upstream = await startUpstream((_req, res) => {
      res.writeHead(200, {
        "content-type": "application/x-git-upload-pack-result",
        "content-encoding": "gzip",
      });
      res.end(answer);
    });
    const proxy = await startExampleProxy(upstream);
    const reply = await send(proxy.url, "/gh-git/acme/api.git/git-upload-pack", {
      method: "POST",
      headers: {
        "Content-Type": "application/x-git-upload-pack-request",
        "Content-Encoding": "gzip",
        "Git-Protocol": "version=2",
        "Accept-Encoding": "gzip, deflate",
        "User-Agent": "git/2.45.0",
      },
      body: compressed,
    });
    expect(reply.status).toBe(200);
    expect(reply.headers["content-encoding"]).toBe("gzip");
    expect(sha256(reply.body)).toBe(sha256(answer));
    const [seen] = upstream.requests;
    if (seen === undefined) throw new Error("no request");
    expect(sha256(seen.body)).toBe(sha256(compressed));
    expect(headerValues(seen, "content-encoding")).toEqual(["gzip"]);
    expect(headerValues(seen, "git-protocol")).toEqual(["version=2"]);
    expect(headerValues(seen, "accept-encoding")).toEqual(["gzip, deflate"]);
    expect(headerValues(seen, "user-agent")).toEqual(["git/2.45.0"]);
    expect(headerValues(seen, "authorization")).toEqual([basic("x-access-token", T1)]);

    const expectContinue = (target: string) =>
      new Promise<{ status: number; continued: boolean }>((resolve, reject) => {
        let continued = false;
        const req = request(
          {
            host: "127.0.0.1",
            port: proxy.port,
            method: "POST",
            path: target,
            agent: false,
            headers: { Expect: "100-continue", "Content-Length": "5" },
          },
          (res) => {
            res.resume();
            res.on("end", () => resolve({ status: res.statusCode ?? 0, continued }));
          },
        );
        req.on("continue", () => {
          continued = true;
          req.end("hello");
        });
        req.on("error", reject);
      });
    expect(await expectContinue("/gh-api/upload")).toEqual({ status: 200, continued: true });
    const uploaded = upstream.requests[1];
    if (uploaded === undefined) throw new Error("no upload");
    expect(uploaded.body.toString()).toBe("hello");
    expect(headerNames(uploaded)).not.toContain("expect");
    expect(await expectContinue("/gh-api/%2e%2e/x")).toEqual({ status: 400, continued: false });
    expect(upstream.requests).toHaveLength(2);
  });
});
