// What the parts of bench/bottle share: paths, bottle's environment, a runner that keeps whole
// outputs with wall-clock times, figures (median, quantiles) and /proc readings.
import { randomBytes } from "node:crypto";
import { accessSync, constants, readFileSync } from "node:fs";
import { delimiter, join } from "node:path";
import { median } from "../stats.mjs";

const MiB = 1024 * 1024;
export const ROOT = join(import.meta.dirname, "../..");
export const PATHS = Object.freeze({
  cli: join(ROOT, "apps/cli/dist/cli.js"),
  gateCli: join(ROOT, "packages/gate-server/dist/cli.js"),
  proxyCli: join(ROOT, "packages/cred-proxy/dist/cli.js"),
  tokensCli: join(ROOT, "packages/gate-tokens/dist/cli.js"),
  testUtils: join(ROOT, "tooling/test-utils/dist/index.js"),
  serveGit: join(ROOT, "tooling/serve-git-http.mjs"),
  apiUpstream: join(ROOT, "bench/proxy/upstream.mjs"),
  srtPackage: join(ROOT, "node_modules/@anthropic-ai/sandbox-runtime"),
  fetchMany: join(import.meta.dirname, "fetch-many.mjs"),
  forward: join(import.meta.dirname, "forward.mjs"),
  countModules: join(import.meta.dirname, "count-modules.mjs"),
});
/** The manifest's name: the gate serves the repository as /bench/api.git. */
export const PROJECT = "bench";

export const round1 = (x) => Math.round(x * 10) / 10;

/** Nearest-rank quantile of `xs`. */
export function quantile(xs, q) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.max(0, Math.ceil(q * s.length) - 1)];
}

/** Median, p90, min, max and every run of `xs`, to one decimal. */
export const stats = (xs) => ({
  median: round1(median(xs)),
  p90: round1(quantile(xs, 0.9)),
  min: round1(Math.min(...xs)),
  max: round1(Math.max(...xs)),
  runs: xs.map(round1),
});

/** The first executable `name` on `path`, or null. */
export function onPath(name, path) {
  for (const dir of path.split(delimiter)) {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {}
  }
  return null;
}

/**
 * VmRSS, VmHWM, the RSS split and the PSS (sharing counted once: the node binary's pages are
 * shared by every node process) of one process in MiB, or null once it is gone.
 */
export function memoryOf(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kib = (text, key) => Number(new RegExp(`^${key}:\\s+(\\d+)`, "m").exec(text)?.[1] ?? 0);
    let pss = Number.NaN;
    try {
      pss = kib(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"), "Pss") / 1024;
    } catch {}
    return {
      rss: kib(status, "VmRSS") / 1024,
      hwm: kib(status, "VmHWM") / 1024,
      anon: kib(status, "RssAnon") / 1024,
      file: kib(status, "RssFile") / 1024,
      pss,
    };
  } catch {
    return null;
  }
}

/** CPU seconds of `pid`: its own (every thread) plus its waited-for children's, /proc/PID/stat. */
export function cpuOf(pid, clkTck) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / clkTck;
  } catch {
    return Number.NaN;
  }
}

/**
 * The shared context of one bench run on workspace `ws`: bottle's environment (an allowlist:
 * its own state and cache dirs under the work dir, the two upstream secrets, nothing of the
 * host's), `runFull` and `bottle(argv)`.
 */
export function createContext(ws) {
  const secrets = Object.freeze({
    GIT_UPSTREAM_TOKEN: `up_${randomBytes(16).toString("hex")}`,
    API_KEY: `key_${randomBytes(16).toString("hex")}`,
  });
  const state = join(ws.work, "state");
  const bottleEnv = Object.freeze({
    PATH: ws.PATH,
    HOME: ws.HOME,
    LANG: "C",
    XDG_STATE_HOME: state,
    XDG_CACHE_HOME: join(ws.work, "cache"),
    ...secrets,
  });

  /**
   * Runs a command to completion keeping its output (up to 8 MiB each), with its wall time and
   * its wall-clock start and end (`Date.now()`, the clock of bottle's progress events).
   */
  function runFull(command, argv, { env, cwd = ws.work, timeoutMs = 300_000 } = {}) {
    return new Promise((resolve) => {
      const startedAt = Date.now();
      const started = performance.now();
      const child = ws.track(command, argv, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
      const out = { stdout: "", stderr: "" };
      for (const name of ["stdout", "stderr"]) {
        child[name].setEncoding("utf8").on("data", (chunk) => {
          if (out[name].length < 8 * MiB) out[name] += chunk;
        });
      }
      const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
      const done = (code) => {
        clearTimeout(timer);
        resolve({ code, ms: performance.now() - started, startedAt, endedAt: Date.now(), ...out });
      };
      child.once("error", (error) => {
        out.stderr += String(error);
        done(-1);
      });
      child.once("close", (code, signal) => done(code ?? signal));
    });
  }

  return {
    ws,
    secrets,
    state,
    bottleEnv,
    agentWorkspace: join(ws.work, "agent-workspace"),
    runFull,
    /** `bottle ARGV` with bottle's environment. */
    bottle: (argv, options = {}) =>
      runFull(process.execPath, [PATHS.cli, ...argv], { env: bottleEnv, ...options }),
  };
}

/** `result`, or an error quoting the tail of its stderr when it did not exit 0. */
export function checked(what, result) {
  if (result.code !== 0) {
    throw new Error(`${what} exited ${result.code}:\n${result.stderr.trim().slice(-3000)}`);
  }
  return result;
}
