// The `http-proxy` target: Node's best-known reverse proxy library, set up as a credential proxy
// would be. /api/X goes to the upstream's /X (the prefix is stripped, as bottle-cred-proxy and
// nginx do), over a keep-alive agent, with the Authorization header set in `proxyReq`. Nothing
// else: no header stripping, no path checks, no log line per request.
// Env: BENCH_UPSTREAM_URL, BENCH_UPSTREAM_TOKEN. Logs a JSON `listening` line on stderr.
import { Agent, createServer } from "node:http";
import httpProxy from "http-proxy";
import { serveBenchServer } from "../servers.mjs";

const HOST = "127.0.0.1";
const PREFIX = "/api/";
const upstream = process.env.BENCH_UPSTREAM_URL ?? "";
const authorization = `Bearer ${process.env.BENCH_UPSTREAM_TOKEN ?? ""}`;

const agent = new Agent({ keepAlive: true, maxSockets: 128, keepAliveMsecs: 1_000 });
const proxy = httpProxy.createProxyServer({ target: upstream, agent, xfwd: false });
proxy.on("proxyReq", (proxyReq) => {
  proxyReq.setHeader("authorization", authorization);
});
proxy.on("error", (_error, _req, res) => {
  // `res` is a ServerResponse for web requests (a socket only for WebSocket upgrades).
  if (typeof res.writeHead !== "function") return res.destroy();
  if (res.headersSent) return res.destroy();
  res.writeHead(502, { "content-type": "application/json" });
  res.end('{"error":"upstream unreachable"}\n');
});

const server = createServer({ keepAliveTimeout: 60_000, requestTimeout: 0 }, (req, res) => {
  if (!req.url?.startsWith(PREFIX)) {
    res.writeHead(404, { "content-type": "application/json" });
    return res.end('{"error":"no route"}\n');
  }
  req.url = req.url.slice(PREFIX.length - 1);
  proxy.web(req, res);
});
serveBenchServer(server, HOST, { onStop: () => agent.destroy() });
