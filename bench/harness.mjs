// What every bench script shares: its command line (--runs N, --json, --help) and its ending
// (signals stop the children and remove the temp dir; results go to stdout, progress to stderr).
import { spawn } from "node:child_process";
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { connect, createServer as createNetServer } from "node:net";
import { availableParallelism, cpus, release, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";

/** Progress lines on stderr. */
export const progress = (text) => process.stderr.write(`bench: ${text}\n`);

/**
 * Parses `--runs N` (1–100), `--json` and `--help` plus `options`; prints `usage` and exits 2 on
 * a bad command line, 0 for `--help`. Returns the flags and the number of runs.
 */
export function parseBenchArgs(usage, { runs = "3", options = {} } = {}) {
  let flags;
  try {
    flags = parseArgs({
      options: {
        runs: { type: "string", default: runs },
        json: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
        ...options,
      },
    }).values;
  } catch (error) {
    process.stderr.write(`bench: ${error.message}\n${usage}`);
    process.exit(2);
  }
  if (flags.help) {
    process.stdout.write(usage);
    process.exit(0);
  }
  const count = Number(flags.runs);
  if (!Number.isInteger(count) || count < 1 || count > 100) {
    process.stderr.write(`bench: expected \`--runs\` to be an integer 1–100, got ${flags.runs}\n`);
    process.exit(2);
  }
  return { flags, runs: count };
}

/**
 * Runs `main`, prints `report(result)` (or JSON), and always ends with `cleanup()`. SIGINT,
 * SIGTERM and SIGHUP clean up and exit 130; `killAll` is the last resort on exit, so no child
 * outlives the bench.
 */
export async function runBench({ main, report, json, workspace }) {
  const { cleanup, killAll, work } = workspace;
  let interrupted = false;
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
    process.once(signal, () => {
      interrupted = true;
      progress(`${signal}: stopping children and removing ${work}`);
      cleanup().finally(() => process.exit(130));
    });
  }
  process.once("exit", killAll);
  try {
    const result = await main();
    process.stdout.write(json ? `${JSON.stringify(result, null, 2)}\n` : report(result));
  } catch (error) {
    if (!interrupted) progress(`failed: ${error instanceof Error ? error.stack : error}`);
    process.exitCode = 1;
  } finally {
    await cleanup();
  }
}

const MiB = 1024 * 1024;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Direct children of `pid`, from /proc (all threads: libuv may fork from any). */
function childPids(pid) {
  const out = [];
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const text = readFileSync(`/proc/${pid}/task/${task}/children`, "utf8").trim();
      if (text) out.push(...text.split(" ").map(Number));
    }
  } catch {
    // gone, or no CONFIG_PROC_CHILDREN
  }
  return out;
}

/** Every descendant of `pid` (children first). */
export function descendants(pid) {
  const out = [];
  const queue = childPids(pid);
  while (queue.length > 0) {
    const next = queue.shift();
    out.push(next);
    queue.push(...childPids(next));
  }
  return out;
}

/** Signals a child, its process group, and every descendant's group (CGIs have their own). */
export function signalTree(child, signal) {
  for (const pid of descendants(child.pid)) {
    try {
      process.kill(-pid, signal);
    } catch {}
    try {
      process.kill(pid, signal);
    } catch {}
  }
  try {
    process.kill(-child.pid, signal);
  } catch {}
}

/**
 * A bench's workspace: a temp dir, an isolated git environment (built from an allowlist:
 * SECURITY, the machine's /etc/gitconfig carries a credential helper), and tracked child
 * processes, each spawned detached so cleanup kills it with everything it started.
 */
export function createWorkspace(name) {
  const work = mkdtempSync(join(tmpdir(), `bottle-bench-${name}-`));
  const children = new Set();
  let cleaning;
  const HOME = join(work, "home");
  mkdirSync(HOME, { mode: 0o700 });
  const GITCONFIG = join(work, "gitconfig");
  writeFileSync(
    GITCONFIG,
    "[user]\n\tname = Bench\n\temail = bench@bottle.invalid\n[init]\n\tdefaultBranch = main\n",
  );
  const PATH = process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin";
  const GIT_ENV = Object.freeze({
    PATH,
    HOME,
    LANG: "C",
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_CONFIG_GLOBAL: GITCONFIG,
    GIT_TERMINAL_PROMPT: "0",
  });

  function track(command, argv, options) {
    if (cleaning) throw new Error("stopping: no new processes");
    const child = spawn(command, argv, { ...options, detached: true });
    children.add(child);
    child.once("exit", () => children.delete(child));
    child.once("error", () => children.delete(child));
    return child;
  }

  /** Idempotent: SIGTERM every tracked tree, SIGKILL what is left after 3 s, remove the dir. */
  function cleanup() {
    cleaning ??= (async () => {
      for (const child of children) signalTree(child, "SIGTERM");
      for (let i = 0; i < 30 && children.size > 0; i++) await sleep(100);
      for (const child of children) signalTree(child, "SIGKILL");
      for (let i = 0; i < 20 && children.size > 0; i++) await sleep(50);
      rmSync(work, { recursive: true, force: true });
    })();
    return cleaning;
  }

  /**
   * Runs a command to completion with a timeout and an output cap; resolves (never rejects)
   * with its exit code, wall time in ms (spawn to close), stdout and the tail of stderr.
   */
  function run(command, argv, { cwd = work, env = GIT_ENV, input, timeoutMs = 600_000 } = {}) {
    return new Promise((resolve) => {
      const started = performance.now();
      const child = track(command, argv, {
        cwd,
        env,
        stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      child.stdout.setEncoding("utf8").on("data", (chunk) => {
        if (stdout.length < 4 * MiB) stdout += chunk;
      });
      child.stderr.setEncoding("utf8").on("data", (chunk) => {
        stderr = (stderr + chunk).slice(-4000);
      });
      if (input !== undefined) {
        child.stdin.on("error", () => {});
        child.stdin.end(input);
      }
      const timer = setTimeout(() => {
        stderr += `\n(killed after ${timeoutMs} ms)`;
        signalTree(child, "SIGKILL");
      }, timeoutMs);
      child.once("error", (error) => {
        clearTimeout(timer);
        resolve({ code: -1, ms: performance.now() - started, stdout, stderr: String(error) });
      });
      child.once("close", (code, signal) => {
        clearTimeout(timer);
        resolve({ code: code ?? signal, ms: performance.now() - started, stdout, stderr });
      });
    });
  }

  async function must(command, argv, options) {
    const result = await run(command, argv, options);
    if (result.code !== 0) {
      throw new Error(
        `${command} ${argv.join(" ")} exited ${result.code}: ${result.stderr.trim()}`,
      );
    }
    return result;
  }

  /**
   * Starts a server child that logs to `logFile` (a file, not a pipe: nothing here has to keep
   * up with a log line per request) and resolves once its first `listening` record gives its
   * URL: `{ child, pid, url, record, logFile }`. Throws, with the log's tail, when it exits
   * first or does not listen within `timeoutMs`.
   */
  async function startListening(name, command, argv, { env, logFile, timeoutMs = 15_000 }) {
    const fd = openSync(logFile, "a", 0o600);
    const child = track(command, argv, { cwd: work, env, stdio: ["ignore", "ignore", fd] });
    closeSync(fd);
    let exited = null;
    child.once("exit", (code, signal) => {
      exited = code ?? signal;
    });
    for (let waited = 0; waited < timeoutMs; waited += 50) {
      const text = readFileSync(logFile, "utf8");
      for (const line of text.split("\n").slice(0, -1)) {
        if (!line.includes('"msg":"listening"')) continue;
        const record = JSON.parse(line);
        return { child, pid: child.pid, url: record.url, record, logFile };
      }
      if (exited !== null) throw new Error(`${name} exited (${exited}):\n${text.slice(-4000)}`);
      await sleep(50);
    }
    throw new Error(
      `${name} did not listen within ${timeoutMs / 1000} s:\n${readFileSync(logFile, "utf8")}`,
    );
  }

  const git = (argv, options) => must("git", argv, options);
  const killAll = () => {
    for (const child of children) signalTree(child, "SIGKILL");
  };
  return {
    work,
    HOME,
    PATH,
    GIT_ENV,
    track,
    run,
    must,
    git,
    startListening,
    cleanup,
    killAll,
    sleep,
  };
}

// ---------------------------------------------------------------------------------------------
// Figures and ports shared by the benchmarks.

/** The median of `xs` (the mean of the two middle values for an even count). */
export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

const round1 = (x) => Math.round(x * 10) / 10;

/** Median, min, max and every run of `xs`, to one decimal. */
export function summarize(xs) {
  return {
    median: round1(median(xs)),
    min: round1(Math.min(...xs)),
    max: round1(Math.max(...xs)),
    runs: xs.map(round1),
  };
}

/** CPU seconds busy on the whole machine so far (every state but idle and iowait), /proc/stat. */
export function machineBusySeconds(clkTck) {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n")[0];
    const ticks = line.trim().split(/\s+/).slice(1, 9).map(Number); // user … steal
    return (ticks.reduce((a, b) => a + b, 0) - ticks[3] - ticks[4]) / clkTck;
  } catch {
    return Number.NaN;
  }
}

/**
 * Calls `onLine` for each complete line of the file open at `fd`, read from its current offset
 * in 1 MiB chunks (a server's log of one JSON line per request can be hundreds of MiB).
 */
export function forEachLine(fd, onLine) {
  const buffer = Buffer.alloc(1024 * 1024);
  let pending = "";
  for (;;) {
    const n = readSync(fd, buffer, 0, buffer.length, null);
    if (n === 0) return;
    const lines = (pending + buffer.toString("utf8", 0, n)).split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) onLine(line);
  }
}

/** The machine a result was measured on: cores, CPU model, kernel and Node, and `extra`. */
export function machineInfo(extra = {}) {
  return {
    nproc: availableParallelism(),
    cpu: cpus()[0]?.model.trim() ?? "?",
    kernel: release(),
    node: process.version,
    ...extra,
  };
}

/**
 * Latencies in ms, in a typed array that grows by doubling (a load generator records hundreds
 * of thousands): `add(ms)`, `count`, and `sorted()`.
 */
export function latencyLog(initial = 64 * 1024) {
  let values = new Float64Array(initial);
  let count = 0;
  return {
    add(ms) {
      if (count === values.length) {
        const grown = new Float64Array(2 * values.length);
        grown.set(values);
        values = grown;
      }
      values[count++] = ms;
    },
    get count() {
      return count;
    },
    sorted: () => values.subarray(0, count).sort(),
  };
}

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
