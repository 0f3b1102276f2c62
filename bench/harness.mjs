// What every bench script shares: its command line (--runs N, --json, --help) and its ending
// (signals stop the children and remove the temp dir; results go to stdout, progress to stderr).
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer as createNetServer } from "node:net";
import { tmpdir } from "node:os";
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

  const git = (argv, options) => must("git", argv, options);
  const killAll = () => {
    for (const child of children) signalTree(child, "SIGKILL");
  };
  return { work, HOME, PATH, GIT_ENV, track, run, must, git, cleanup, killAll, sleep };
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
