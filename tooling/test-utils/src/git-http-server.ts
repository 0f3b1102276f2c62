/** A smart-HTTP git server that demands a Basic credential, for tests, benchmarks and the demo. */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createHash, timingSafeEqual } from "node:crypto";
import { mkdtemp, realpath, rm } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { isAbsolute, join, relative, sep } from "node:path";
import { promisify } from "node:util";
import { gitServerEnv } from "./env.ts";
import { closerOf, listenLoopback } from "./listen.ts";

/** A CGI child is killed (with its process group) after this long. */
const REQUEST_TIMEOUT_MS = 60_000;
const MAX_HEAD_BYTES = 64 * 1024;
/** Git-Protocol values are `version=2` and similar key=value lists (gitprotocol-http(5)). */
const GIT_PROTOCOL = /^[A-Za-z0-9=:._-]{1,256}$/;

/** Options of {@link startHttpGitUpstream}. */
export interface HttpGitUpstreamOptions {
  /** The directory whose repositories are served (`GIT_PROJECT_ROOT`). */
  root: string;
  username: string;
  password: string;
  /**
   * Decides instead of the fixed `username:password` (e.g. "is this installation token valid
   * for this repository right now?"); gets the Basic credential and the repository path.
   */
  authorize?: (username: string, password: string, path: string) => boolean;
}

/** A running smart-HTTP git upstream that demands a Basic credential. */
export interface HttpGitUpstream {
  /** `http://127.0.0.1:PORT/<path>` for a path relative to `root` (or absolute inside it). */
  url(path: string): string;
  /** Every request received, authorized or not. */
  readonly requests: number;
  /** How many requests were answered 401. */
  readonly unauthorized: number;
  close(): Promise<void>;
}

function digest(value: string): Buffer {
  return createHash("sha256").update(value).digest();
}

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}

/** Parses a CGI header block (RFC 3875 §6): `Status:` plus ordinary headers, a blank line. */
function parseHead(
  buffer: Buffer,
): { status: number; headers: Record<string, string>; bodyStart: number } | undefined {
  const crlf = buffer.indexOf("\r\n\r\n");
  const lf = buffer.indexOf("\n\n");
  const useLf = lf !== -1 && (crlf === -1 || lf < crlf);
  const end = useLf ? lf : crlf;
  if (end === -1) return undefined;
  const headers: Record<string, string> = {};
  let status = 200;
  for (const line of buffer.subarray(0, end).toString("latin1").split(/\r?\n/)) {
    const colon = line.indexOf(":");
    if (colon <= 0) throw new Error(`bad CGI header line ${JSON.stringify(line)}`);
    const name = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    if (name.toLowerCase() === "status") status = Number.parseInt(value, 10);
    else headers[name] = value;
  }
  return { status, headers, bodyStart: end + (useLf ? 2 : 4) };
}

/** Runs `git http-backend` for one authorized request and streams its answer both ways. */
function runBackend(
  backend: string,
  env: NodeJS.ProcessEnv,
  req: IncomingMessage,
  res: ServerResponse,
): void {
  const child = spawn(backend, [], { env, stdio: ["pipe", "pipe", "pipe"], detached: true });
  const timer = setTimeout(() => killGroup(child), REQUEST_TIMEOUT_MS);
  const fail = (status: number, text: string): void => {
    if (!res.headersSent) res.writeHead(status, { "content-type": "text/plain" });
    res.end(text);
    killGroup(child);
  };
  child.on("error", () => fail(502, "cannot run git http-backend\n"));
  child.stdin.on("error", () => {}); // EPIPE when git stops reading early; the exit tells.
  child.stderr.resume();
  req.pipe(child.stdin);
  // The client going away before the answer is complete kills the whole CGI group.
  res.on("close", () => {
    if (!res.writableFinished) killGroup(child);
  });

  let head = Buffer.alloc(0);
  const onHead = (chunk: Buffer): void => {
    head = Buffer.concat([head, chunk]);
    let parsed: ReturnType<typeof parseHead>;
    try {
      parsed = parseHead(head);
    } catch {
      fail(502, "bad CGI response\n");
      return;
    }
    if (parsed === undefined) {
      if (head.length > MAX_HEAD_BYTES) fail(502, "bad CGI response\n");
      return;
    }
    // Paused before the listener goes, so no chunk is lost; pipe() resumes with backpressure.
    child.stdout.pause();
    child.stdout.off("data", onHead);
    res.writeHead(parsed.status, parsed.headers);
    res.write(head.subarray(parsed.bodyStart));
    child.stdout.pipe(res);
  };
  child.stdout.on("data", onHead);
  child.on("close", (code) => {
    clearTimeout(timer);
    if (!res.headersSent) fail(code === 0 ? 200 : 500, code === 0 ? "" : "git failed\n");
  });
}

/**
 * Serves a smart-HTTP git upstream on `127.0.0.1:0`: the real `git http-backend` as CGI over
 * `root`, pushes enabled, every request required to carry `Authorization: Basic` with
 * `username:password` (else 401). Usable outside tests (benchmarks, the demo); the caller
 * closes it. Tests use `startHttpGitUpstream`, which closes it when the test finishes.
 */
export async function serveGitHttp(options: HttpGitUpstreamOptions): Promise<HttpGitUpstream> {
  const root = await realpath(options.root);
  const { stdout } = await promisify(execFile)("git", ["--exec-path"], { timeout: 10_000 });
  const backend = join(stdout.trim(), "git-http-backend");
  const home = await mkdtemp(join(tmpdir(), "bottle-http-home-"));
  const expected = digest(
    `Basic ${Buffer.from(`${options.username}:${options.password}`).toString("base64")}`,
  );
  let requests = 0;
  let unauthorized = 0;

  const authorized = (req: IncomingMessage): boolean => {
    const header = req.headers.authorization ?? "";
    if (options.authorize === undefined) return timingSafeEqual(digest(header), expected);
    const match = /^Basic ([A-Za-z0-9+/=]+)$/.exec(header);
    if (!match?.[1]) return false;
    const decoded = Buffer.from(match[1], "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon === -1) return false;
    const path = new URL(req.url ?? "/", "http://127.0.0.1").pathname;
    return options.authorize(decoded.slice(0, colon), decoded.slice(colon + 1), path);
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    requests += 1;
    // SECURITY: digests of equal length, compared in constant time.
    if (!authorized(req)) {
      unauthorized += 1;
      req.resume();
      res.writeHead(401, {
        "content-type": "text/plain",
        "www-authenticate": 'Basic realm="upstream"',
      });
      res.end("authentication required\n");
      return;
    }
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    let pathInfo: string;
    try {
      pathInfo = decodeURIComponent(url.pathname);
    } catch {
      pathInfo = "..";
    }
    if (pathInfo.split("/").includes("..")) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      return;
    }
    const env: NodeJS.ProcessEnv = {
      ...gitServerEnv(home),
      GIT_CONFIG_COUNT: "1",
      GIT_CONFIG_KEY_0: "http.receivepack",
      GIT_CONFIG_VALUE_0: "true",
      GATEWAY_INTERFACE: "CGI/1.1",
      SERVER_PROTOCOL: `HTTP/${req.httpVersion}`,
      GIT_PROJECT_ROOT: root,
      GIT_HTTP_EXPORT_ALL: "1",
      PATH_INFO: pathInfo,
      QUERY_STRING: url.search.slice(1),
      REQUEST_METHOD: req.method ?? "GET",
      // Without REMOTE_USER http-backend refuses pushes (403).
      REMOTE_USER: options.username,
      REMOTE_ADDR: req.socket.remoteAddress ?? "127.0.0.1",
    };
    const type = req.headers["content-type"];
    if (type !== undefined) env.CONTENT_TYPE = type;
    // Chunked bodies have no length; git reads them to EOF when CONTENT_LENGTH is unset.
    const length = req.headers["content-length"];
    if (length !== undefined && /^\d+$/.test(length)) env.CONTENT_LENGTH = length;
    // git gzips request bodies over 1 KiB; http-backend inflates them when told.
    const encoding = req.headers["content-encoding"];
    if (encoding === "gzip" || encoding === "x-gzip") env.HTTP_CONTENT_ENCODING = encoding;
    // Without GIT_PROTOCOL a v2 client silently falls back to v0.
    const protocol = req.headers["git-protocol"];
    if (typeof protocol === "string" && GIT_PROTOCOL.test(protocol)) env.GIT_PROTOCOL = protocol;
    runBackend(backend, env, req, res);
  };

  const server = createServer(
    { requestTimeout: 60_000, headersTimeout: 10_000, keepAliveTimeout: 1_000 },
    handle,
  );
  const port = await listenLoopback(server);
  const closeServer = closerOf(server);
  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed ??= closeServer().finally(() => rm(home, { recursive: true, force: true }));
    return closed;
  };
  return {
    url(path) {
      const rel = isAbsolute(path) ? relative(root, path) : path;
      if (rel === "" || rel === ".." || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
        throw new Error(`Expected a repository path inside ${root}, got ${path}`);
      }
      return `http://127.0.0.1:${port}/${rel.split(sep).map(encodeURIComponent).join("/")}`;
    },
    get requests() {
      return requests;
    },
    get unauthorized() {
      return unauthorized;
    },
    close,
  };
}
