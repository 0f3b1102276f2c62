// What every bench script shares: its command line (--runs N, --json, --help), its workspace (a
// temp dir, an isolated git environment, tracked children) and its ending (signals stop the
// children and remove the temp dir; results go to stdout, progress to stderr).
import { spawn } from "node:child_process";
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

/** Progress lines on stderr. */
export const progress = (text) => process.stderr.write(`bench: ${text}\n`);

/**
 * Parses `--runs N` (1–100), `--json` and `--help` plus `options`; `integers` gives the range of
 * each integer flag among them (`{ seconds: [1, 600] }`), and a `--profile F` among them must
 * name a file in an existing directory. Prints `usage` and exits 2 on a bad command line, 0 for
 * `--help`. Returns the flags, the number of runs, and the values of the integer flags (`runs`
 * among them).
 */
export function parseBenchArgs(usage, { runs = "3", options = {}, integers = {} } = {}) {
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
  const integer = (name, [min, max]) => {
    const value = Number(flags[name]);
    if (!Number.isInteger(value) || value < min || value > max) {
      process.stderr.write(
        `bench: expected \`--${name}\` to be an integer ${min}–${max}, got ${flags[name]}\n`,
      );
      process.exit(2);
    }
    return value;
  };
  const count = integer("runs", [1, 100]);
  const values = { runs: count };
  for (const [name, range] of Object.entries(integers)) values[name] = integer(name, range);
  if (flags.profile !== undefined && !existsSync(dirname(resolve(flags.profile)))) {
    process.stderr.write(`bench: no such directory for \`--profile\`: ${flags.profile}\n`);
    process.exit(2);
  }
  return { flags, runs: count, integers: values };
}

/**
 * Runs `main`, prints `report(result)` (or JSON), and always ends with `cleanup()`. A missing
 * file of `needs.files` (a built CLI, a system program) fails the bench before `main`, saying
 * how to get it (`needs.hint`). SIGINT, SIGTERM and SIGHUP clean up and exit 130; `killAll` is
 * the last resort on exit, so no child outlives the bench.
 */
export async function runBench({ main, report, json, workspace, needs = { files: [] } }) {
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
    for (const file of needs.files) {
      if (!existsSync(file)) throw new Error(`missing ${file}: ${needs.hint}`);
    }
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
/** Resolves after `ms`. */
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

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

/**
 * The node arguments that start a bin as its shebang does: a sidecar's bin reads
 * `#!/usr/bin/env -S node OPTIONS`, and a bench runs it on its own node (`process.execPath`)
 * with the same OPTIONS, then the file.
 */
export function binArgv(file) {
  const first = readFileSync(file, "utf8").split("\n", 1)[0];
  const options = /^#!\/usr\/bin\/env -S node(?: (.*))?$/.exec(first)?.[1];
  return [...(options ? options.split(" ") : []), file];
}

/** The built test utilities (the fakes), for benches that run one. */
export const TEST_UTILS = join(import.meta.dirname, "../tooling/test-utils/dist/index.js");

/**
 * The GitHub fake of tooling/test-utils in this process, on the real clock: one app installed
 * on acme/api, one caller `bench` (acme/*, contents write, metadata read), and tokman's
 * configuration for it in `WORK/tokman`. The caller closes it.
 */
export async function serveBenchGitHubApp(work) {
  const { serveGitHubAppFixture } = await import(pathToFileURL(TEST_UTILS).href);
  const dir = join(work, "tokman");
  mkdirSync(dir, { mode: 0o700 });
  return serveGitHubAppFixture({
    dir,
    realTime: true,
    installations: [
      {
        id: 7,
        account: { login: "acme", type: "Organization" },
        repositories: [{ id: 1, name: "api" }],
        permissions: { contents: "write", metadata: "read" },
      },
    ],
    callers: {
      bench: { repositories: ["acme/*"], permissions: { contents: "write", metadata: "read" } },
    },
  });
}
