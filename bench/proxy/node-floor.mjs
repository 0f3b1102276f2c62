// The `node floor` target: the least a Node.js credential proxy can do, to show how much of
// bottle-cred-proxy's cost is the runtime's (node:http on the client side, undici toward the
// upstream, the same as bottle-cred-proxy) and how much is its own checks and request log.
// /api/X goes to the upstream's /X through an undici Pool with `dispatch`, the Authorization
// header set, hop-by-hop headers dropped both ways, backpressure kept. Nothing else: no path
// checks, no credential stripping beyond Authorization, no timeouts, no log line per request.
// Env: BENCH_UPSTREAM_URL, BENCH_UPSTREAM_TOKEN. Logs a JSON `listening` line on stderr.
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { join } from "node:path";
import { serveBenchServer } from "../servers.mjs";

// undici as bottle-cred-proxy resolves it (a dependency of that package, not of the root).
const require = createRequire(join(import.meta.dirname, "../../packages/cred-proxy/package.json"));
const { Pool } = require("undici");

const HOST = "127.0.0.1";
const PREFIX = "/api/";
const HOP = new Set(["connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"]);
const pool = new Pool(process.env.BENCH_UPSTREAM_URL ?? "", { connections: 128, pipelining: 1 });
const authorization = `Bearer ${process.env.BENCH_UPSTREAM_TOKEN ?? ""}`;
const host = new URL(process.env.BENCH_UPSTREAM_URL ?? "").host;

const server = createServer({ keepAliveTimeout: 60_000, requestTimeout: 0 }, (req, res) => {
  if (!req.url?.startsWith(PREFIX)) {
    res.writeHead(404, { "content-type": "application/json" });
    return res.end('{"error":"no route"}\n');
  }
  const headers = [];
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    if (name !== "host" && name !== "authorization" && !HOP.has(name))
      headers.push(raw[i], raw[i + 1]);
  }
  headers.push("host", host, "authorization", authorization);
  const length = req.headers["content-length"];
  const body = req.headers["transfer-encoding"] || (length && length !== "0") ? req : null;
  let upstream;
  res.once("close", () => {
    if (!res.writableFinished) upstream?.abort(new Error("client went away"));
  });
  pool.dispatch(
    { method: req.method, path: req.url.slice(PREFIX.length - 1), headers, body },
    {
      onRequestStart(controller) {
        upstream = controller;
      },
      onResponseStart(_controller, status, answer) {
        for (const name of HOP) delete answer[name];
        res.writeHead(status, answer);
      },
      onResponseData(controller, chunk) {
        if (!res.write(chunk)) {
          controller.pause();
          res.once("drain", () => controller.resume());
        }
      },
      onResponseEnd() {
        res.end();
      },
      onResponseError() {
        if (res.headersSent) return res.destroy();
        res.writeHead(502, { "content-type": "application/json" });
        res.end('{"error":"upstream unreachable"}\n');
      },
    },
  );
});
serveBenchServer(server, HOST, { onStop: () => void pool.destroy() });
