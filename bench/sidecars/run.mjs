#!/usr/bin/env node
// Start-up time and memory of each sidecar binary beside a bare node:http server started the
// same way: exec to the `listening` record, idle RSS, and RSS after 1,000 requests.
import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import {
  binArgv,
  createWorkspace,
  parseBenchArgs,
  progress,
  runBench,
  serveBenchGitHubApp,
  sleep,
  TEST_UTILS,
} from "../harness.mjs";
import { machineInfo, summarize } from "../stats.mjs";

const ROOT = join(import.meta.dirname, "../..");
const CLI = {
  gate: join(ROOT, "packages/gate-server/dist/cli.js"),
  proxy: join(ROOT, "packages/cred-proxy/dist/cli.js"),
  tokman: join(ROOT, "packages/tokman/dist/cli.js"),
};
const TOKENS_CLI = join(ROOT, "packages/gate-tokens/dist/cli.js");
const UPSTREAM = join(ROOT, "bench/proxy/upstream.mjs");
const FLOOR = join(import.meta.dirname, "floor.mjs");
const COUNT_MODULES = join(ROOT, "bench/bottle/count-modules.mjs");
const NEEDS = {
  files: [...Object.values(CLI), TOKENS_CLI, TEST_UTILS, "/usr/lib/git-core/git-http-backend"],
  hint: "build the packages (pnpm exec turbo run build), install git",
};
const REQUESTS = 1000;
const CONCURRENCY = 4;
const IDLE_MS = 500; // settle time after `listening` before idle RSS is read
const CLK_TCK = 100; // USER_HZ: the unit of /proc/PID/stat times on Linux
const TARGETS = { startup: 1.5, idleRss: 1.3, loadedRss: 1.5 }; // × the floor's

const USAGE = `usage: node bench/sidecars/run.mjs [--runs N] [--only gate,proxy,tokman] [--node-flags=FLAGS] [--json]

Starts the floor (a bare node:http server), bottle-gate, bottle-cred-proxy and bottle-tokman
N times each (default 5), interleaved, and reports the median time from exec to the
\`listening\` record, idle RSS and RSS after ${REQUESTS} requests, beside the floor's.
--only measures these sidecars alone (and the floor); --node-flags=FLAGS gives node options to
the sidecars (not the floor), to measure V8 flags.
`;
const { flags, runs: RUNS } = parseBenchArgs(USAGE, {
  runs: "5",
  options: {
    "node-flags": { type: "string", default: "" },
    only: { type: "string", default: "gate,proxy,tokman" },
  },
});
const NODE_FLAGS = flags["node-flags"].split(" ").filter(Boolean);
const ws = createWorkspace("sidecars");
const { work, HOME, PATH, GIT_ENV, track, must, git } = ws;

/** CPU time (user and system, all threads) a process has used so far, in ms. */
function cpuMsOf(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
}

/** VmRSS and VmHWM of a process in MiB (null once it is gone). */
function rssOf(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kib = (key) => Number(new RegExp(`^${key}:\\s+(\\d+)`, "m").exec(status)?.[1] ?? 0);
    return { rss: kib("VmRSS") / 1024, hwm: kib("VmHWM") / 1024 };
  } catch {
    return null;
  }
}

/**
 * Spawns `node argv` and resolves when its `listening` record arrives on stderr (a pipe, read as
 * it comes: the time is exec to that line, not a polling interval). The rest of stderr is drained.
 */
function startTimed(name, argv, env) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = track(process.execPath, argv, {
      cwd: work,
      env,
      stdio: ["ignore", "ignore", "pipe"],
    });
    let pending = "";
    let done = false;
    child.stderr.setEncoding("utf8").on("data", (chunk) => {
      if (done) return;
      pending += chunk;
      const at = pending.indexOf('"msg":"listening"');
      if (at === -1) {
        pending = pending.slice(-8000);
        return;
      }
      const ms = performance.now() - started;
      const cpuMs = cpuMsOf(child.pid);
      done = true;
      const line = pending.slice(pending.lastIndexOf("\n", at) + 1).split("\n")[0];
      resolve({ child, ms, cpuMs, url: JSON.parse(line).url });
    });
    child.once("exit", (code, signal) => {
      if (!done) reject(new Error(`${name} exited (${code ?? signal}):\n${pending.slice(-4000)}`));
    });
    child.once("error", reject);
  });
}

/** Stops a server child (SIGTERM, then SIGKILL after 5 s) and waits for its exit. */
async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
  await exited;
  clearTimeout(timer);
}

/** One HTTP exchange on `agent`; rejects unless the status is 200 and `check(body)` holds. */
function exchange(agent, url, { method = "GET", headers = {}, body, check = () => true }) {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, method, headers }, (res) => {
      const chunks = [];
      res.on("data", (chunk) => chunks.push(chunk));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        if (res.statusCode === 200 && check(text)) resolve();
        else reject(new Error(`${method} ${url}: ${res.statusCode} ${text.slice(0, 200)}`));
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** `count` requests made by `one(agent)`, CONCURRENCY at a time on a keep-alive agent. */
async function load(count, one) {
  const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  let left = count;
  const worker = async () => {
    while (left > 0) {
      left -= 1;
      await one(agent);
    }
  };
  try {
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  } finally {
    agent.destroy();
  }
}

// git's protocol v2 ls-remote over smart HTTP: the ref advertisement request, then ls-refs.
const LS_REFS = "0014command=ls-refs\n00010009peel\n000csymrefs\n0000";

/** The targets: how each starts, and what one unit of its load is (each makes 2 requests). */
async function setUp() {
  const env = { PATH, HOME, LANG: "C" };

  // bottle-gate: one bare repository with a commit, a token file with one token.
  const base = join(work, "gate-base");
  const repo = join(base, "bench.git");
  mkdirSync(base);
  await git(["init", "-q", "--bare", repo]);
  const clone = join(work, "clone");
  await git(["init", "-q", clone]);
  writeFileSync(join(clone, "README"), "bench\n");
  await git(["add", "README"], { cwd: clone });
  await git(["commit", "-q", "-m", "one"], { cwd: clone });
  await git(["push", "-q", repo, "HEAD:refs/heads/main"], { cwd: clone, env: GIT_ENV });
  const tokenDir = join(work, "gate-tokens");
  mkdirSync(tokenDir, { mode: 0o700 });
  chmodSync(tokenDir, 0o700);
  const tokenFile = join(tokenDir, "tokens.json");
  const tokenArgv = ["create", "--token-file", tokenFile, "--project", "bench", "--task", "b"];
  const token = (await must(process.execPath, [TOKENS_CLI, ...tokenArgv], { env })).stdout.trim();
  const gateAuth = `Basic ${Buffer.from(`${token}:x`).toString("base64")}`;
  const v2 = { "git-protocol": "version=2", authorization: gateAuth };

  // bottle-cred-proxy: one route to an upstream child, its token in the route's slot.
  const upstreamToken = `bench_${randomBytes(24).toString("base64url")}`;
  const upstream = await startTimed("the upstream", [UPSTREAM], {
    ...env,
    BENCH_UPSTREAM_TOKEN: upstreamToken,
  });
  const routes = join(work, "routes.json");
  const route = { path: "/api/", upstream: upstream.url, auth: { scheme: "Bearer" } };
  writeFileSync(
    routes,
    JSON.stringify({ version: 1, routes: [{ ...route, token_env: "BOTTLE_PROXY_TOKEN_0" }] }),
  );

  // bottle-tokman: the GitHub fake of tooling/test-utils in this process, one app, one caller.
  const app = await serveBenchGitHubApp(work);
  const tokmanAuth = { authorization: `Bearer ${app.key}` };

  const get =
    (path, headers = {}, check) =>
    (agent, url) =>
      exchange(agent, `${url}${path}`, { headers, check });
  const twice = (first, second) => async (agent, url) => {
    await first(agent, url);
    await second(agent, url);
  };
  return {
    close: () => app.close(),
    targets: {
      floor: { name: "node floor", argv: [FLOOR], env, unit: twice(get("/a"), get("/b")) },
      gate: {
        name: "bottle-gate",
        argv: [
          ...NODE_FLAGS,
          ...binArgv(CLI.gate),
          "--base-path",
          base,
          "--token-file",
          tokenFile,
          "--port",
          "0",
        ],
        env,
        unit: twice(
          get("/bench.git/info/refs?service=git-upload-pack", v2, (t) => t.includes("ls-refs")),
          (agent, url) =>
            exchange(agent, `${url}/bench.git/git-upload-pack`, {
              method: "POST",
              headers: { ...v2, "content-type": "application/x-git-upload-pack-request" },
              body: LS_REFS,
              check: (t) => t.includes("refs/heads/main"),
            }),
        ),
      },
      proxy: {
        name: "bottle-cred-proxy",
        argv: [...NODE_FLAGS, ...binArgv(CLI.proxy), "--routes", routes, "--port", "0"],
        env: { ...env, BOTTLE_PROXY_TOKEN_0: upstreamToken },
        unit: twice(get("/api/small"), get("/api/small")),
      },
      tokman: {
        name: "bottle-tokman",
        argv: [
          ...NODE_FLAGS,
          ...binArgv(CLI.tokman),
          "serve",
          "--config",
          app.configFile,
          "--port",
          "0",
        ],
        env,
        unit: twice(get("/api/acme/api", tokmanAuth), get("/api/acme/api", tokmanAuth)),
      },
    },
  };
}

/** One measured start: exec → listening, idle RSS, RSS after the load; then it is stopped. */
async function measureOnce(target) {
  const { child, ms, cpuMs, url } = await startTimed(target.name, target.argv, target.env);
  try {
    await sleep(IDLE_MS);
    const idle = rssOf(child.pid);
    await load(REQUESTS / 2, (agent) => target.unit(agent, url));
    const loaded = rssOf(child.pid);
    return { ms, cpuMs, idleMiB: idle.rss, loadedMiB: loaded.rss, hwmMiB: loaded.hwm };
  } finally {
    await stop(child);
  }
}

/** The modules a target loads up to its `listening` record, by package (count and source KiB). */
async function modulesOf(key, target) {
  const out = join(work, `modules-${key}.json`);
  const argv = ["--import", pathToFileURL(COUNT_MODULES).href, ...target.argv];
  const { child } = await startTimed(target.name, argv, { ...target.env, BENCH_MODULES_OUT: out });
  await sleep(IDLE_MS);
  await stop(child);
  const loaded = JSON.parse(readFileSync(out, "utf8"));
  const byPackage = new Map();
  let builtins = 0;
  for (const [url, bytes] of loaded) {
    if (url.startsWith("node:")) {
      builtins += 1;
      continue;
    }
    const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\/(?!.*node_modules)/.exec(url)?.[1];
    const own = /\/(packages|apps|tooling|bench)\/([^/]+)\//.exec(url)?.[2];
    const name = pkg ?? (own ? `@bottle/${own}` : url);
    const entry = byPackage.get(name) ?? { package: name, modules: 0, kib: 0 };
    entry.modules += 1;
    entry.kib += bytes / 1024;
    byPackage.set(name, entry);
  }
  const packages = [...byPackage.values()].sort((a, b) => b.kib - a.kib);
  return {
    modules: packages.reduce((n, p) => n + p.modules, 0),
    kib: Math.round(packages.reduce((n, p) => n + p.kib, 0)),
    builtins,
    packages: packages.map((p) => ({ ...p, kib: Math.round(p.kib) })),
  };
}

async function main() {
  progress(`work dir ${work}`);
  const { close, targets } = await setUp();
  try {
    const only = new Set(flags.only.split(","));
    const names = Object.keys(targets).filter((n) => n === "floor" || only.has(n));
    progress("warm-up: one unmeasured start of each (fills the compile cache)");
    for (const name of names) await measureOnce(targets[name]);
    const runs = Object.fromEntries(names.map((n) => [n, []]));
    for (let i = 0; i < RUNS; i++) {
      progress(`run ${i + 1}/${RUNS}`);
      for (let k = 0; k < names.length; k++) {
        const name = names[(k + i) % names.length];
        runs[name].push(await measureOnce(targets[name]));
      }
    }
    const modules = {};
    for (const name of names) modules[name] = await modulesOf(name, targets[name]);
    const results = {};
    for (const name of names) {
      const pick = (key) => summarize(runs[name].map((r) => r[key]));
      results[name] = {
        startupMs: pick("ms"),
        startupCpuMs: pick("cpuMs"),
        idleMiB: pick("idleMiB"),
        loadedMiB: pick("loadedMiB"),
        hwmMiB: pick("hwmMiB"),
      };
    }
    const floor = results.floor;
    const targetsMet = [];
    for (const name of names.filter((n) => n !== "floor")) {
      const r = results[name];
      const check = (what, ratio, limit) =>
        targetsMet.push({
          name: `${targets[name].name} ${what} ≤ ${limit}×`,
          ratio,
          pass: ratio <= limit,
        });
      check("start-up", r.startupMs.median / floor.startupMs.median, TARGETS.startup);
      check("idle RSS", r.idleMiB.median / floor.idleMiB.median, TARGETS.idleRss);
      check(
        "RSS after load vs floor idle",
        r.loadedMiB.median / floor.idleMiB.median,
        TARGETS.loadedRss,
      );
    }
    return {
      machine: machineInfo(),
      runs: RUNS,
      nodeFlags: NODE_FLAGS,
      requests: REQUESTS,
      names: Object.fromEntries(names.map((n) => [n, targets[n].name])),
      results,
      modules,
      targets: targetsMet,
    };
  } finally {
    await close();
  }
}

function report(r) {
  const m = r.machine;
  const cell = (s, digits = 0) =>
    `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`.padEnd(20);
  const floor = r.results.floor;
  const ratio = (x) => `${x.toFixed(2)}×`.padStart(7);
  const lines = [
    `bench/sidecars: nproc ${m.nproc} (${m.cpu}), Linux ${m.kernel}, node ${m.node}`,
    ...(r.nodeFlags.length > 0 ? [`sidecars run with node ${r.nodeFlags.join(" ")}`] : []),
    `${r.runs} starts each, interleaved; median (min–max); RSS in MiB; load: ${r.requests} requests, ${CONCURRENCY} at a time`,
    "",
    `${"".padEnd(19)}${"exec→listening ms".padEnd(20)}${"its CPU ms".padEnd(20)}${"idle RSS".padEnd(20)}${"RSS after load".padEnd(20)}  ×floor: start  idle  loaded/idle  modules (KiB)`,
  ];
  for (const [key, name] of Object.entries(r.names)) {
    const x = r.results[key];
    if (x === undefined) continue;
    const mods = r.modules[key];
    lines.push(
      `${name.padEnd(19)}${cell(x.startupMs)}${cell(x.startupCpuMs)}${cell(x.idleMiB, 1)}${cell(x.loadedMiB, 1)}  ${ratio(x.startupMs.median / floor.startupMs.median)}${ratio(x.idleMiB.median / floor.idleMiB.median)}${ratio(x.loadedMiB.median / floor.idleMiB.median)}      ${mods.modules} (${mods.kib})`,
    );
  }
  lines.push("", "modules loaded up to `listening`, largest packages:");
  for (const [key, name] of Object.entries(r.names)) {
    if (key === "floor" || r.modules[key] === undefined) continue;
    const top = r.modules[key].packages
      .slice(0, 6)
      .map((p) => `${p.package} ${p.modules}/${p.kib}`);
    lines.push(`  ${name.padEnd(18)} ${top.join(", ")}`);
  }
  lines.push("", "targets:");
  for (const t of r.targets) {
    lines.push(`  ${t.pass ? "PASS" : "MISS"}  ${t.name.padEnd(52)} ${t.ratio.toFixed(2)}×`);
  }
  return `${lines.join("\n")}\n`;
}

await runBench({ main, report, json: flags.json, workspace: ws, needs: NEEDS });
