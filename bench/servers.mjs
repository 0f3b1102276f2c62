// Servers shared by the benchmarks: a bench's own server child, which reports the port it
// bound, and servers that cannot (nginx, lighttpd), started on a free port.
import { existsSync, readFileSync } from "node:fs";
import { connect, createServer as createNetServer } from "node:net";
import { progress, signalTree, sleep } from "./harness.mjs";

/**
 * For a bench's own server child: listens on `host` port 0, logs the `listening` record (with
 * `url`, and `fields`) on stderr as the sidecars do, and on SIGTERM closes, cuts its
 * connections and runs `onStop`.
 */
export function serveBenchServer(server, host, { fields = {}, onStop = () => {} } = {}) {
  server.listen(0, host, () => {
    const { port } = server.address();
    const record = { msg: "listening", url: `http://${host}:${port}`, ...fields };
    process.stderr.write(`${JSON.stringify(record)}\n`);
  });
  process.once("SIGTERM", () => {
    server.close();
    server.closeAllConnections();
    onStop();
  });
}

/** A TCP port free on `host` right now (for programs that cannot report the one they bound). */
export function freePort(host) {
  return new Promise((resolve, reject) => {
    const server = createNetServer();
    server.once("error", reject);
    server.listen(0, host, () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Whether something accepts connections on `host:port`. */
export function canConnect(port, host) {
  return new Promise((resolve) => {
    const socket = connect(port, host);
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/**
 * Starts a server that cannot report the port it bound (nginx, lighttpd) on a free port of
 * `host`: `launch(port)` spawns it (a tracked child with piped stderr); it must accept
 * connections within 5 s, else it is killed and started again on another port (another process
 * may have taken the first), three times at most. The error quotes its stderr and the tail of
 * `logFile`. Resolves to `{ child, port }`.
 */
export async function startOnFreePort(name, host, logFile, launch) {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort(host);
    const child = await launch(port);
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (chunk) => {
      stderr = (stderr + chunk).slice(-4000);
    });
    let exited = false;
    child.once("exit", () => {
      exited = true;
    });
    for (let i = 0; i < 100 && !exited && !(await canConnect(port, host)); i++) await sleep(50);
    if (!exited && (await canConnect(port, host))) return { child, port };
    signalTree(child, "SIGKILL");
    const log = existsSync(logFile) ? readFileSync(logFile, "utf8") : "";
    if (attempt === 3) throw new Error(`${name} did not start:\n${stderr}${log.slice(-2000)}`);
    progress(`${name} did not start on port ${port}, retrying`);
  }
}
