/**
 * `git http-backend` as a CGI child: an explicit environment (never a copy of ours), the
 * request body streamed in (chunked or not, gzip untouched), the response streamed out with
 * backpressure, and the whole process group killed when the client goes away.
 */
import { type ChildProcess, spawn } from "node:child_process";
import type { IncomingMessage, ServerResponse } from "node:http";

/** What the CGI child needs to know about one request. */
export interface CgiRequest {
  readonly projectRoot: string;
  /** `/<repoPath>/<endpoint>` relative to the project root. */
  readonly pathInfo: string;
  readonly query: string;
  readonly remoteUser: string;
  /** Extra variables (hooks path, gate identity), already validated. */
  readonly env: Readonly<Record<string, string>>;
}

const MAX_HEADER_BYTES = 64 * 1024;
/** Git-Protocol values are `version=2` and similar key=value lists (gitprotocol-http(5)). */
const GIT_PROTOCOL = /^[A-Za-z0-9=:._-]{1,256}$/;

/** Builds the CGI environment (SECURITY: an allowlist; nothing else from the process). */
export function cgiEnvironment(req: IncomingMessage, cgi: CgiRequest): Record<string, string> {
  const env: Record<string, string> = {
    ...cgi.env,
    GATEWAY_INTERFACE: "CGI/1.1",
    SERVER_PROTOCOL: `HTTP/${req.httpVersion}`,
    GIT_PROJECT_ROOT: cgi.projectRoot,
    GIT_HTTP_EXPORT_ALL: "1",
    PATH_INFO: cgi.pathInfo,
    QUERY_STRING: cgi.query,
    REQUEST_METHOD: req.method ?? "GET",
    REMOTE_USER: cgi.remoteUser,
    REMOTE_ADDR: req.socket.remoteAddress ?? "unix",
  };
  const type = req.headers["content-type"];
  if (type !== undefined) env.CONTENT_TYPE = type;
  // Chunked bodies have no length; git reads them to EOF when CONTENT_LENGTH is unset.
  const length = req.headers["content-length"];
  if (length !== undefined && /^\d+$/.test(length)) env.CONTENT_LENGTH = length;
  const encoding = req.headers["content-encoding"];
  if (encoding === "gzip" || encoding === "x-gzip") env.HTTP_CONTENT_ENCODING = encoding;
  const protocol = req.headers["git-protocol"];
  if (typeof protocol === "string" && GIT_PROTOCOL.test(protocol)) env.GIT_PROTOCOL = protocol;
  return env;
}

/** Outcome of a CGI run, for the request log. */
export interface CgiResult {
  readonly status: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly aborted: boolean;
  /** The first 8 KiB of git's stderr, for the log (never sent to the client). */
  readonly stderr: string;
}

/**
 * Runs `git http-backend` for one request and streams its answer. Resolves when the response
 * is finished or the client is gone (the child's process group is then killed).
 */
export function runHttpBackend(
  req: IncomingMessage,
  res: ServerResponse,
  cgi: CgiRequest,
  command: readonly [string, ...string[]] = ["git", "http-backend"],
): Promise<CgiResult> {
  return new Promise((resolve) => {
    const [program, ...args] = command;
    const child = spawn(program, args, {
      env: cgiEnvironment(req, cgi),
      stdio: ["pipe", "pipe", "pipe"],
      detached: true, // its own process group, so hooks and pack-objects die with it
    });
    let status = 502;
    let bytesOut = 0;
    let bytesIn = 0;
    let done = false;
    let stderr = "";
    const finish = (aborted: boolean) => {
      if (done) return;
      done = true;
      if (aborted) killGroup(child);
      resolve({ status, bytesIn, bytesOut, aborted, stderr });
    };

    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (text: string) => {
      if (stderr.length < 8192) stderr += text;
    });
    child.on("error", () => {
      if (!res.headersSent)
        res.writeHead(502, { "content-type": "text/plain" }).end("git http-backend failed\n");
      finish(false);
    });
    // The client going away before the answer is complete kills the whole CGI group.
    res.on("close", () => finish(!res.writableFinished));
    req.on("error", () => finish(true));
    child.stdin.on("error", () => {}); // EPIPE when git stops reading early; the exit tells.
    // Counted in the same tick as the pipe starts, so no chunk can flow past the child.
    req.on("data", (chunk: Buffer) => {
      bytesIn += chunk.length;
    });
    req.pipe(child.stdin);

    let head = Buffer.alloc(0);
    child.stdout.on("data", (chunk: Buffer) => {
      if (res.headersSent) return;
      head = Buffer.concat([head, chunk]);
      const parsed = parseCgiHead(head);
      if (parsed === "incomplete") {
        if (head.length > MAX_HEADER_BYTES) {
          res.writeHead(502, { "content-type": "text/plain" }).end("bad CGI response\n");
          finish(true);
        }
        return;
      }
      if (parsed === "invalid") {
        res.writeHead(502, { "content-type": "text/plain" }).end("bad CGI response\n");
        finish(true);
        return;
      }
      status = parsed.status;
      res.writeHead(parsed.status, parsed.headers);
      const rest = head.subarray(parsed.bodyStart);
      if (rest.length > 0) {
        bytesOut += rest.length;
        if (!res.write(rest)) child.stdout.pause();
      }
      // From here on the body streams with backpressure.
      child.stdout.removeAllListeners("data");
      child.stdout.on("data", (data: Buffer) => {
        bytesOut += data.length;
        if (!res.write(data)) child.stdout.pause();
      });
      res.on("drain", () => child.stdout.resume());
    });
    child.on("close", (code) => {
      if (!res.headersSent) {
        res
          .writeHead(code === 0 ? 200 : 500, { "content-type": "text/plain" })
          .end(code === 0 ? "" : "git failed\n");
        status = code === 0 ? 200 : 500;
      } else {
        res.end();
      }
    });
  });
}

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null) return;
  try {
    process.kill(-child.pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}

type CgiHead = { status: number; headers: Record<string, string>; bodyStart: number };

/** Parses the CGI header block (RFC 3875 §6): `Status:` plus ordinary headers, then a blank line. */
export function parseCgiHead(buffer: Buffer): CgiHead | "incomplete" | "invalid" {
  let end = buffer.indexOf("\r\n\r\n");
  let sep = 4;
  const lf = buffer.indexOf("\n\n");
  if (lf !== -1 && (end === -1 || lf < end)) [end, sep] = [lf, 2];
  if (end === -1) return "incomplete";
  const headers: Record<string, string> = {};
  let status = 200;
  for (const line of buffer.subarray(0, end).toString("latin1").split(/\r?\n/)) {
    const colon = line.indexOf(":");
    if (colon <= 0) return "invalid";
    const name = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    if (!/^[A-Za-z0-9-]+$/.test(name) || /[\r\n]/.test(value)) return "invalid";
    if (name.toLowerCase() === "status") {
      const code = Number.parseInt(value, 10);
      if (!(code >= 100 && code <= 599)) return "invalid";
      status = code;
    } else {
      headers[name] = value;
    }
  }
  return { status, headers, bodyStart: end + sep };
}
