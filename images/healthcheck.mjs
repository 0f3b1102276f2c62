// The images' HEALTHCHECK: GET /healthz on the sidecar's own listener, over TCP
// (BOTTLE_HEALTH_URL) or a unix socket (BOTTLE_HEALTH_SOCKET, when the sidecar runs with
// --socket). Healthy only on 200 within 2 s.
import { request } from "node:http";

const url = new URL(process.env.BOTTLE_HEALTH_URL ?? "http://127.0.0.1/healthz");
const socketPath = process.env.BOTTLE_HEALTH_SOCKET || undefined;
const req = request(
  { host: url.hostname, port: url.port, path: url.pathname, socketPath, timeout: 2000 },
  (res) => {
    res.resume();
    process.exitCode = res.statusCode === 200 ? 0 : 1;
  },
);
req.on("timeout", () => req.destroy(new Error("no answer within 2 s")));
req.on("error", (error) => {
  process.stderr.write(`unhealthy: ${error.message}\n`);
  process.exitCode = 1;
});
req.end();
