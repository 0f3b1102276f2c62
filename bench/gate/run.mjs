#!/usr/bin/env node
// bench/gate: bottle-gate against plain `git http-backend` behind lighttpd (the floor, no auth)
// and file://, on one repository with a ~50 MiB pack, in one run on loopback.
//
//   ./tooling/setup.sh -- pnpm bench:gate [--runs N] [--json]
//
// Needs: git, lighttpd (apt-get install lighttpd), and the built packages (setup.sh builds).
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";

const ROOT = join(import.meta.dirname, "../..");
const GATE = join(ROOT, "packages/gate-server/dist/cli.js");
const TOKENS = join(ROOT, "packages/gate-tokens/dist/cli.js");
const HTTP_BACKEND = "/usr/lib/git-core/git-http-backend";
const args = process.argv.slice(2);
const RUNS = Number(args[args.indexOf("--runs") + 1]) || 5;
const JSON_OUT = args.includes("--json");
const MiB = 1024 * 1024;

const work = mkdtempSync(join(tmpdir(), "bottle-bench-gate-"));
const children = new Set();
const log = (text) => process.stderr.write(`bench: ${text}\n`);

// An isolated git environment: never the machine's config (it carries a credential helper).
mkdirSync(join(work, "home"));
writeFileSync(
  join(work, "home/.gitconfig"),
  "[user]\n\tname = Bench\n\temail = bench@bottle.invalid\n[init]\n\tdefaultBranch = main\n[gc]\n\tauto = 0\n",
);
const ENV = {
  PATH: process.env.PATH ?? "/usr/bin:/bin",
  HOME: join(work, "home"),
  LANG: "C",
  GIT_CONFIG_NOSYSTEM: "1",
  GIT_CONFIG_GLOBAL: join(work, "home/.gitconfig"),
  GIT_TERMINAL_PROMPT: "0",
};

/** Runs a command; resolves with its exit code, duration and stderr tail. */
function run(cmd, argv, { cwd = work, input, env = ENV } = {}) {
  return new Promise((resolve) => {
    const started = performance.now();
    const child = spawn(cmd, argv, {
      cwd,
      env,
      stdio: [input ? "pipe" : "ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c) => {
      if (stdout.length < 1e6) stdout += c;
    });
    child.stderr.on("data", (c) => {
      stderr = (stderr + c).slice(-4000);
    });
    if (input) {
      child.stdin.on("error", () => {});
      child.stdin.end(input);
    }
    child.on("close", (code) => resolve({ code, ms: performance.now() - started, stdout, stderr }));
  });
}

async function must(cmd, argv, options) {
  const result = await run(cmd, argv, options);
  if (result.code !== 0)
    throw new Error(`${cmd} ${argv.join(" ")} failed (${result.code}): ${result.stderr}`);
  return result;
}

/** A long-running child, killed at the end. Resolves once `ready(text)` is true for its stderr. */
function daemon(cmd, argv, ready, options = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, {
      env: options.env ?? ENV,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    children.add(child);
    let text = "";
    const onData = (c) => {
      text += c;
      if (text.length > 1e5) text = text.slice(-1e4);
      const value = ready(text);
      if (value) resolve({ child, value });
    };
    child.stderr.on("data", onData);
    child.stdout.on("data", onData);
    child.once("exit", (code) =>
      reject(new Error(`${cmd} exited early (${code}): ${text.slice(-2000)}`)),
    );
    const now = ready("");
    if (now) resolve({ child, value: now });
  });
}

function freePort() {
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Builds the source repository with git fast-import: many small commits plus large blobs. */
async function buildRepository(dir) {
  await must("git", ["init", "-q", "--bare", dir]);
  const chunks = [];
  let mark = 0;
  const blob = (data) => {
    chunks.push(
      Buffer.from(`blob\nmark :${++mark}\ndata ${data.length}\n`),
      data,
      Buffer.from("\n"),
    );
    return mark;
  };
  const big = [];
  for (let i = 0; i < 20; i++) big.push(blob(randomBytes(2 * MiB)));
  let when = 1_700_000_000;
  for (let i = 0; i < 2000; i++) {
    const text = blob(Buffer.from(`line ${i}\n${"lorem ipsum ".repeat(20 + (i % 50))}\n`));
    const files = [`M 100644 :${text} src/file${i % 200}.txt`];
    if (i % 100 === 0) files.push(`M 100644 :${big[i / 100]} assets/big${i / 100}.bin`);
    const message = `commit ${i}\n`;
    chunks.push(
      Buffer.from(
        `commit refs/heads/main\ncommitter Bench <bench@bottle.invalid> ${when++} +0000\ndata ${message.length}\n${message}${
          i === 0 ? "" : ""
        }${files.join("\n")}\n\n`,
      ),
    );
  }
  await must("git", ["fast-import", "--quiet"], { cwd: dir, input: Buffer.concat(chunks) });
  await must("git", ["repack", "-adq"], { cwd: dir });
  const size = await must("git", ["count-objects", "-vH"], { cwd: dir });
  return /size-pack: (.*)/.exec(size.stdout)?.[1] ?? "?";
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const stats = (xs) => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs) });

/** Times `n` runs of `step(i)` (each resolves to a run() result), failing on a non-zero exit. */
async function time(name, n, step) {
  const ms = [];
  for (let i = 0; i < n; i++) {
    const result = await step(i);
    if (result.code !== 0) throw new Error(`${name} failed: ${result.stderr}`);
    ms.push(result.ms);
  }
  return stats(ms);
}

/** Prepares a commit with a `size`-byte random blob on a new branch in `clone`. */
async function prepareCommit(clone, branch, size) {
  await must("git", ["checkout", "-q", "-B", branch, "origin/main"], { cwd: clone });
  const parts = Math.max(1, Math.ceil(size / (50 * MiB)));
  for (let p = 0; p < parts; p++)
    writeFileSync(
      join(clone, `${branch}-${p}.bin`),
      randomBytes(Math.min(50 * MiB, size - p * 50 * MiB)),
    );
  await must("git", ["add", "-A"], { cwd: clone });
  await must("git", ["commit", "-qm", branch], { cwd: clone });
}

async function measureTarget(name, url) {
  log(`${name}: clone ×${RUNS}`);
  const clone = await time(`${name} clone`, RUNS, (i) =>
    run("git", ["clone", "-q", url, join(work, `${name}-clone-${i}`)]).finally(
      () => i > 0 && rmSync(join(work, `${name}-clone-${i}`), { recursive: true, force: true }),
    ),
  );
  const keep = join(work, `${name}-clone-0`);
  log(`${name}: no-op fetch, ls-remote ×${RUNS}`);
  const fetch = await time(`${name} fetch`, RUNS, () =>
    run("git", ["fetch", "-q", "origin"], { cwd: keep }),
  );
  const lsRemote = await time(`${name} ls-remote`, RUNS, () => run("git", ["ls-remote", url]));
  log(`${name}: 20 MiB push ×${RUNS}`);
  const pushes = [];
  for (let i = 0; i < RUNS; i++) {
    await prepareCommit(keep, `push-${i}`, 20 * MiB);
    const result = await run("git", ["push", "-q", "origin", `push-${i}`], { cwd: keep });
    if (result.code !== 0) throw new Error(`${name} push failed: ${result.stderr}`);
    pushes.push(result.ms);
  }
  return { clone, fetch, lsRemote, push: stats(pushes) };
}

async function concurrent(url, n) {
  const started = performance.now();
  const results = await Promise.all(
    Array.from({ length: n }, () => run("git", ["ls-remote", url])),
  );
  return {
    failures: results.filter((r) => r.code !== 0).length,
    totalMs: performance.now() - started,
  };
}

function rss(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (key) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
    return { rss: kb("VmRSS") / 1024, hwm: kb("VmHWM") / 1024 };
  } catch {
    return { rss: 0, hwm: 0 };
  }
}

async function main() {
  log(`building the repository in ${work}`);
  const source = join(work, "source.git");
  const packSize = await buildRepository(source);
  log(`pack: ${packSize}`);

  // (a) bottle-gate
  const gateBase = join(work, "gate");
  const tokenDir = join(work, "tokens");
  mkdirSync(gateBase);
  mkdirSync(tokenDir, { mode: 0o700 });
  cpSync(source, join(gateBase, "bench.git"), { recursive: true });
  const tokenFile = join(tokenDir, "tokens.json");
  log("starting bottle-gate");
  const token = (
    await must(process.execPath, [
      TOKENS,
      "create",
      "--token-file",
      tokenFile,
      "--project",
      "bench",
      "--task",
      "bench",
    ])
  ).stdout.trim();
  const gate = await daemon(
    process.execPath,
    [
      GATE,
      "--base-path",
      gateBase,
      "--token-file",
      tokenFile,
      "--port",
      "0",
      "--max-concurrent",
      "32",
    ],
    (text) => /"url":"([^"]+)"/.exec(text)?.[1],
  );
  const gateUrl = gate.value.replace("http://", `http://${token}:x@`) + "/bench.git";

  log(`bottle-gate at ${gate.value}; starting lighttpd`);
  // (b) the floor: git http-backend behind lighttpd, no auth
  const floorRoot = join(work, "floor");
  mkdirSync(floorRoot);
  cpSync(source, join(floorRoot, "bench.git"), { recursive: true });
  await must("git", ["config", "http.receivepack", "true"], { cwd: join(floorRoot, "bench.git") });
  const floorPort = await freePort();
  const conf = join(work, "lighttpd.conf");
  writeFileSync(
    conf,
    [
      'server.modules = ("mod_alias", "mod_cgi", "mod_setenv")',
      `server.document-root = "${floorRoot}"`,
      'server.bind = "127.0.0.1"',
      `server.port = ${floorPort}`,
      `server.errorlog = "${join(work, "lighttpd.err")}"`,
      // lighttpd answers 411 to a chunked body it would stream to CGI; buffered, it sets CONTENT_LENGTH.
      "server.stream-request-body = 0",
      "server.stream-response-body = 2",
      "server.max-request-size = 0",
      `alias.url = ("/git/" => "${HTTP_BACKEND}/")`,
      'cgi.assign = ("" => "")',
      `setenv.add-environment = ("GIT_PROJECT_ROOT" => "${floorRoot}", "GIT_HTTP_EXPORT_ALL" => "1", "REMOTE_USER" => "bench", "GIT_CONFIG_NOSYSTEM" => "1", "HOME" => "${join(work, "home")}")`,
    ].join("\n"),
  );
  await must("lighttpd", ["-tt", "-f", conf]);
  const floor = await daemon("lighttpd", ["-D", "-f", conf], () => true);
  const floorUrl = `http://127.0.0.1:${floorPort}/git/bench.git`;
  for (let i = 0; i < 50 && (await run("git", ["ls-remote", floorUrl])).code !== 0; i++)
    await new Promise((r) => setTimeout(r, 100));

  // (c) file://
  const fileRepo = join(work, "file.git");
  cpSync(source, fileRepo, { recursive: true });
  const fileUrl = `file://${fileRepo}`;

  const results = {};
  for (const [name, url] of [
    ["floor", floorUrl],
    ["gate", gateUrl],
    ["file", fileUrl],
  ])
    results[name] = await measureTarget(name, url);

  log("64 concurrent ls-remote");
  const concurrency = {
    gate: await concurrent(gateUrl, 64),
    floor: await concurrent(floorUrl, 64),
  };

  log("200 MiB push through the gate, sampling its RSS");
  const bigClone = join(work, "gate-clone-0");
  await prepareCommit(bigClone, "huge", 200 * MiB);
  const before = rss(gate.child.pid);
  let peak = before.rss;
  const sampler = setInterval(() => {
    peak = Math.max(peak, rss(gate.child.pid).rss);
  }, 20);
  const bigPush = await run("git", ["push", "-q", "origin", "huge"], { cwd: bigClone });
  clearInterval(sampler);
  if (bigPush.code !== 0) throw new Error(`200 MiB push failed: ${bigPush.stderr}`);
  const after = rss(gate.child.pid);
  const memory = {
    beforeMiB: before.rss,
    peakSampledMiB: Math.max(peak, after.rss),
    hwmMiB: after.hwm,
    pushMs: bigPush.ms,
  };

  const ratio = (metric) => ({
    gate: results.gate[metric].median / results.floor[metric].median,
    file: results.file[metric].median / results.floor[metric].median,
  });
  const report = {
    machine: {
      cores: availableParallelism(),
      node: process.versions.node,
      git: (await must("git", ["--version"])).stdout.trim(),
      pack: packSize,
      runs: RUNS,
    },
    results,
    ratios: {
      clone: ratio("clone"),
      fetch: ratio("fetch"),
      lsRemote: ratio("lsRemote"),
      push: ratio("push"),
    },
    concurrency,
    memory,
    targets: {
      "clone ≤ 1.05× floor": ratio("clone").gate <= 1.05,
      "ls-remote ≤ 1.2× floor": ratio("lsRemote").gate <= 1.2,
      "0 failures in 64 concurrent ls-remote": concurrency.gate.failures === 0,
      "gate RSS < 100 MiB during a 200 MiB push": memory.hwmMiB < 100,
    },
  };
  if (JSON_OUT) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return;
  }
  const f = (ms) => `${ms.toFixed(0).padStart(6)} ms`;
  const lines = [
    `bench/gate — ${report.machine.cores} cores, node ${report.machine.node}, ${report.machine.git}, pack ${packSize}, ${RUNS} runs (median [min–max])`,
    "",
    `${"".padEnd(14)}${"floor (lighttpd)".padEnd(30)}${"bottle-gate".padEnd(30)}${"file://".padEnd(30)}gate/floor  file/floor`,
  ];
  for (const [metric, label] of [
    ["clone", "clone"],
    ["fetch", "no-op fetch"],
    ["lsRemote", "ls-remote"],
    ["push", "push 20 MiB"],
  ]) {
    const cell = (s) => `${f(s.median)} [${s.min.toFixed(0)}–${s.max.toFixed(0)}]`.padEnd(30);
    const r = report.ratios[metric];
    lines.push(
      `${label.padEnd(14)}${cell(results.floor[metric])}${cell(results.gate[metric])}${cell(results.file[metric])}${r.gate.toFixed(3).padStart(9)}× ${r.file.toFixed(3).padStart(9)}×`,
    );
  }
  lines.push(
    "",
    `64 concurrent ls-remote: gate ${concurrency.gate.failures} failures in ${concurrency.gate.totalMs.toFixed(0)} ms; floor ${concurrency.floor.failures} failures in ${concurrency.floor.totalMs.toFixed(0)} ms`,
    `gate RSS during a 200 MiB push (${memory.pushMs.toFixed(0)} ms): before ${memory.beforeMiB.toFixed(1)} MiB, peak sampled ${memory.peakSampledMiB.toFixed(1)} MiB, VmHWM ${memory.hwmMiB.toFixed(1)} MiB`,
    "",
    ...Object.entries(report.targets).map(([target, ok]) => `${ok ? "PASS" : "MISS"}  ${target}`),
  );
  process.stdout.write(`${lines.join("\n")}\n`);
  void floor;
}

function cleanup() {
  for (const child of children) {
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {}
  }
  rmSync(work, { recursive: true, force: true });
}

process.on("SIGINT", () => {
  cleanup();
  process.exit(130);
});
try {
  await main();
} catch (error) {
  process.stderr.write(`bench: failed: ${error.stack ?? error}\n`);
  process.exitCode = 1;
} finally {
  cleanup();
}
