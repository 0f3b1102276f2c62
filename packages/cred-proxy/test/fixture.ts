import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { IncomingHttpHeaders, Server } from "node:http";
import { request } from "node:http";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { Writable } from "node:stream";
import { createLogger } from "@bottle/log";
import { createDeferred, type RecordedRequest, runProcess, testdir } from "@bottle/test-utils";
import { onTestFinished } from "vitest";
import { parseRoutes, type RouteEntry } from "../src/routes.ts";
import { type CredProxy, type CredProxyOptions, createCredProxy } from "../src/server.ts";

export const BIN = join(import.meta.dirname, "../dist/cli.js");

/** One route as routes.json spells it: its token in a slot, or from tokman. */
export type RouteSpec = RouteEntry;

/** A route whose token sits in a slot: `BOTTLE_PROXY_TOKEN_<slot>` for a number. */
export function route(
  path: string,
  upstream: string,
  auth: RouteSpec["auth"],
  slot: number | string = 0,
): Extract<RouteSpec, { token_env: string }> {
  return {
    path,
    upstream,
    auth,
    token_env: typeof slot === "number" ? `BOTTLE_PROXY_TOKEN_${slot}` : slot,
  };
}

/** What the `anthropic` (api-key) and `github` token kinds expand to, on slots 0 and 1. */
export const TOKEN_KIND_ROUTES = [
  route("/anthropic/", "https://api.anthropic.com", { header: "x-api-key" }),
  route("/gh-api/", "https://api.github.com", { scheme: "Bearer" }, 1),
  route("/gh-git/", "https://github.com", { scheme: "Basic", username: "x-access-token" }, 1),
];

/** A proxy of `routes` (not listening), closed when the test finishes. */
export function createTestProxy(
  routes: RouteSpec[],
  options: Omit<CredProxyOptions, "routes">,
): CredProxy {
  const proxy = createCredProxy({ ...options, routes: parseRoutes({ version: 1, routes }) });
  onTestFinished(() => proxy.close(0));
  return proxy;
}

/** The status of `GET path` over the unix socket at `socketPath`. */
export function getOverSocket(socketPath: string, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    request({ socketPath, path, agent: false }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    })
      .on("error", reject)
      .end();
  });
}

/** A proxy on 127.0.0.1:0 whose log lines (real pino JSON) are captured. */
export interface TestProxy {
  proxy: CredProxy;
  url: string;
  port: number;
  /** Everything logged so far, as text. */
  logText(): string;
  records(): Array<Record<string, unknown>>;
}

export async function startProxy(
  options: Omit<CredProxyOptions, "routes" | "logger"> & { routes: RouteSpec[] },
): Promise<TestProxy> {
  let text = "";
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      text += chunk.toString();
      callback();
    },
  });
  const { routes, ...rest } = options;
  const proxy = createCredProxy({
    ...rest,
    routes: parseRoutes({ version: 1, routes }),
    logger: createLogger({ name: "bottle-cred-proxy", level: "debug", destination: sink }),
  });
  onTestFinished(async () => {
    proxy.server.closeAllConnections();
    await proxy.close(0);
  });
  const url = await proxy.listen({ host: "127.0.0.1", port: 0 });
  return {
    proxy,
    url,
    port: Number(new URL(url).port),
    logText: () => text,
    records: () =>
      text
        .split("\n")
        .filter((line) => line.startsWith("{"))
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

/** A response as the client saw it. */
export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
}

export interface SendOptions {
  method?: string;
  headers?: Record<string, string | string[]>;
  body?: Buffer | string;
}

/** One request over a fresh connection (no agent), the target sent exactly as given. */
export function send(baseUrl: string, target: string, options: SendOptions = {}): Promise<Reply> {
  const { hostname, port } = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: hostname,
        port,
        method: options.method ?? "GET",
        path: target,
        headers: options.headers ?? {},
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("error", reject);
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            rawHeaders: res.rawHeaders,
            body: Buffer.concat(chunks),
          }),
        );
      },
    );
    req.on("error", reject);
    req.end(options.body);
  });
}

/** Writes raw bytes on a new connection; resolves with all bytes received until it closes. */
export function sendRaw(
  port: number,
  bytes: string | Buffer,
  timeoutMs = 3_000,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    const chunks: Buffer[] = [];
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(chunks).toString("latin1");
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), text });
    };
    const timer = setTimeout(done, timeoutMs);
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.on("end", done);
    socket.on("error", done);
    socket.write(bytes);
  });
}

/** A client connection held open by a test: what it received, and when the server closed it. */
export interface HeldSocket {
  socket: Socket;
  /** Every byte received so far. */
  received(): Buffer;
  /** Resolves once the connection is closed (by either side, or reset). */
  closed: Promise<void>;
}

/** Opens a TCP connection to `port` and resolves once it is connected; destroyed after the test. */
export function holdSocket(port: number): Promise<HeldSocket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port });
    const chunks: Buffer[] = [];
    const closed = new Promise<void>((done) => socket.once("close", () => done()));
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.on("error", () => {});
    socket.once("error", reject);
    socket.once("connect", () => {
      socket.off("error", reject);
      resolve({ socket, received: () => Buffer.concat(chunks), closed });
    });
    onTestFinished(() => {
      socket.destroy();
    });
  });
}

/** Counts the TCP connections a server accepts. */
export function countConnections(server: Server): () => number {
  let count = 0;
  server.on("connection", () => count++);
  return () => count;
}

/** Header names a recorded request carried, lowercased and sorted. */
export function headerNames(recorded: RecordedRequest): string[] {
  return recorded.rawHeaders
    .filter((_, i) => i % 2 === 0)
    .map((name) => name.toLowerCase())
    .sort();
}

/** All values of one header in a recorded request, in wire order. */
export function headerValues(recorded: RecordedRequest, name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < recorded.rawHeaders.length; i += 2)
    if (recorded.rawHeaders[i]?.toLowerCase() === name) out.push(recorded.rawHeaders[i + 1] ?? "");
  return out;
}

export function sha256(data: Buffer | string): string {
  return createHash("sha256").update(data).digest("hex");
}

/** A self-signed certificate for 127.0.0.1, made by openssl at test time. */
export async function makeCertificate(): Promise<{ key: string; cert: string; certFile: string }> {
  const dir = await testdir();
  const keyFile = join(dir, "key.pem");
  const certFile = join(dir, "cert.pem");
  const result = await runProcess("openssl", [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    keyFile,
    "-out",
    certFile,
    "-days",
    "1",
    "-subj",
    "/CN=127.0.0.1",
    "-addext",
    "subjectAltName=IP:127.0.0.1",
  ]);
  if (result.code !== 0) throw new Error(`openssl failed: ${result.stderr}`);
  return {
    key: await readFile(keyFile, "utf8"),
    cert: await readFile(certFile, "utf8"),
    certFile,
  };
}

/** `n` bytes of a repeatable pattern, produced chunk by chunk. */
export function* pattern(n: number, chunkSize = 64 * 1024): Generator<Buffer> {
  const block = Buffer.alloc(chunkSize);
  for (let i = 0; i < chunkSize; i++) block[i] = (i * 31 + 7) & 0xff;
  let sent = 0;
  let round = 0;
  while (sent < n) {
    const size = Math.min(chunkSize, n - sent);
    const chunk = Buffer.from(block.subarray(0, size));
    if (size >= 4) chunk.writeUInt32BE(round >>> 0, 0);
    round++;
    sent += size;
    yield chunk;
  }
}

export function patternHash(n: number): string {
  const hash = createHash("sha256");
  for (const chunk of pattern(n)) hash.update(chunk);
  return hash.digest("hex");
}

/**
 * `count` deferreds a streaming upstream waits on, each resolved once the client has read that
 * event. A guard resolves them all after `ms` and `stalled()` turns true, so a proxy that holds
 * events back fails the test fast, not at its timeout.
 */
export function eventGates(count: number, ms: number) {
  const gates = Array.from({ length: count }, () => createDeferred<void>());
  let stalled = false;
  const guard = setTimeout(() => {
    stalled = true;
    for (const gate of gates) gate.resolve();
  }, ms);
  onTestFinished(() => clearTimeout(guard));
  return { gates, stalled: () => stalled };
}
