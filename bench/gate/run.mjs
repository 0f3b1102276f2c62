#!/usr/bin/env node
import { randomBytes } from "node:crypto";
import { chmodSync, cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  binArgv,
  createWorkspace,
  descendants,
  parseBenchArgs,
  progress,
  runBench,
} from "../harness.mjs";
import { fastImport, importRepository } from "../repository.mjs";
import { startOnFreePort } from "../servers.mjs";
import { machineInfo, median, summarize } from "../stats.mjs";

const ROOT = join(import.meta.dirname, "../..");
const GATE_CLI = join(ROOT, "packages/gate-server/dist/cli.js");
const TOKENS_CLI = join(ROOT, "packages/gate-tokens/dist/cli.js");
const HTTP_BACKEND = "/usr/lib/git-core/git-http-backend";
/** What the bench runs, checked before it starts. */
const NEEDS = {
  files: [GATE_CLI, TOKENS_CLI, HTTP_BACKEND],
  hint: "build the packages, install git",
};
const MiB = 1024 * 1024;
const HOST = "127.0.0.1"; // loopback only, never `localhost`

const REPO = { commits: 2000, textFiles: 200, bigBlobs: 20, bigBlobBytes: 2.5 * MiB };
const PUSH_BYTES = 20 * MiB;
const BIG_PUSH = { blobs: 4, bytes: 200 * MiB };
const CONCURRENCY = 64;
const SAMPLE_MS = 20;
const TARGETS = {
  clone: 1.05, // gate/floor median
  lsRemote: 1.2,
  rssMiB: 100,
};

const USAGE = "usage: node bench/gate/run.mjs [--runs N] [--json]\n";
const { flags, runs: RUNS } = parseBenchArgs(USAGE, { runs: "5" });

const ws = createWorkspace("gate");
const { work, HOME, PATH, GIT_ENV, track, run, must, git } = ws;

// ---------------------------------------------------------------------------------------------
// The repository: many small commits plus large incompressible blobs, written with fast-import.

/** A `git fast-import` stream: `REPO.commits` text commits; every Nth also adds a random blob. */
function fastImportStream() {
  const stream = fastImport();
  const every = REPO.commits / REPO.bigBlobs;
  for (let i = 0; i < REPO.commits; i++) {
    const file = i % REPO.textFiles;
    const lines = Array.from({ length: 10 + (i % 40) }, (_, n) => `file ${file} rev ${i} ${n}`);
    const text = stream.blob(Buffer.from(`${lines.join("\n")}\n`));
    const changes = [`M 100644 :${text} src/f${file}.txt`];
    if (i % every === 0) {
      const big = stream.blob(randomBytes(REPO.bigBlobBytes));
      changes.push(`M 100644 :${big} assets/big${i / every}.bin`);
    }
    stream.commit(i, changes);
  }
  return stream.bytes();
}

const buildRepository = (dir) => importRepository(git, dir, fastImportStream());

// ---------------------------------------------------------------------------------------------
// The three targets.

/** (a) bottle-gate: a token, then the gate on 127.0.0.1:0; its JSON log lines are counted. */
async function startGate(source) {
  const base = join(work, "gate-base");
  const tokenDir = join(work, "gate-tokens");
  mkdirSync(base);
  mkdirSync(tokenDir, { mode: 0o700 });
  chmodSync(tokenDir, 0o700);
  cpSync(source, join(base, "bench.git"), { recursive: true });
  const tokenFile = join(tokenDir, "tokens.json");
  const env = { PATH, HOME, LANG: "C" };
  const argv = ["create", "--token-file", tokenFile, "--project", "bench", "--task", "bench"];
  const token = (await must(process.execPath, [TOKENS_CLI, ...argv], { env })).stdout.trim();
  if (!/^\S+$/.test(token)) throw new Error("gate-tokens printed no token");

  const child = track(
    process.execPath,
    [...binArgv(GATE_CLI), "--base-path", base, "--token-file", tokenFile, "--port", "0"],
    { cwd: work, env, stdio: ["ignore", "ignore", "pipe"] },
  );
  // Drain stderr for the whole run (a full pipe would stall the gate), counting request records.
  const log = { requests: 0, statuses: {}, tail: [] };
  const url = await new Promise((resolve, reject) => {
    let pending = "";
    child.stderr.setEncoding("utf8").on("data", (chunk) => {
      pending += chunk;
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) {
        log.tail = [...log.tail.slice(-19), line];
        let record;
        try {
          record = JSON.parse(line);
        } catch {
          continue;
        }
        if (record.msg === "listening") resolve(record.url);
        if (record.msg === "request") {
          log.requests++;
          log.statuses[record.status] = (log.statuses[record.status] ?? 0) + 1;
        }
      }
    });
    child.once("exit", (code) =>
      reject(new Error(`bottle-gate exited (${code}) before listening:\n${log.tail.join("\n")}`)),
    );
    child.once("error", reject);
  });
  const { port } = new URL(url);
  return {
    child,
    idleMiB: memoryOf(child.pid)?.rss ?? 0,
    log,
    url: `http://${encodeURIComponent(token)}:x@${HOST}:${port}/bench.git`,
    display: `${url}/bench.git`,
  };
}

/** lighttpd's config for the floor: git-http-backend as CGI under /git, streaming both ways. */
function lighttpdConfig({ port, root, dir }) {
  const q = (s) => JSON.stringify(s); // lighttpd strings use the same escapes
  // The CGI environment mirrors the gate's: no system or global git config, a private HOME.
  const cgiEnv = {
    GIT_PROJECT_ROOT: root,
    GIT_HTTP_EXPORT_ALL: "1",
    REMOTE_USER: "bench", // http-backend enables receive-pack only for an authenticated user
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_CONFIG_GLOBAL: "/dev/null",
    HOME,
    PATH,
  };
  return `${[
    `server.modules = ("mod_alias", "mod_setenv", "mod_cgi")`,
    `server.bind = ${q(HOST)}`,
    `server.port = ${port}`,
    `server.document-root = ${q(dir)}`,
    `server.errorlog = ${q(join(dir, "error.log"))}`,
    `server.upload-dirs = (${q(dir)})`,
    // Stream request and response bodies (no buffering to disk, as the gate does not buffer).
    "server.stream-request-body = 2",
    "server.stream-response-body = 2",
    // Except pushes: git sends bodies over http.postBuffer (1 MiB) chunked, and mod_cgi answers
    // 411 to a chunked body it would stream (CGI/1.1 needs CONTENT_LENGTH). Buffered, lighttpd
    // sets CONTENT_LENGTH; the floor's push then receives the whole body before git starts.
    `$HTTP["url"] =~ "/git-receive-pack$" { server.stream-request-body = 0 }`,
    // HTTP_GIT_PROTOCOL (protocol v2) and HTTP_CONTENT_ENCODING come from the request headers.
    `alias.url = ("/git" => ${q(HTTP_BACKEND)})`,
    // Conditions are re-evaluated after the path-info split, when the URL path is just "/git".
    `$HTTP["url"] =^ "/git" { cgi.assign = ("" => "") }`,
    `setenv.add-environment = (${Object.entries(cgiEnv)
      .map(([k, v]) => `${q(k)} => ${q(v)}`)
      .join(", ")})`,
    // As root, lighttpd keeps running as root unless told otherwise; switching user would need
    // the repositories chowned, and the gate runs as the same user here, so it is left as is.
  ].join("\n")}\n`;
}

/** (b) the floor: lighttpd -D on a free loopback port (retried if another process takes it). */
async function startFloor(source) {
  const root = join(work, "floor-repos");
  const dir = join(work, "lighttpd");
  mkdirSync(root);
  mkdirSync(dir);
  cpSync(source, join(root, "bench.git"), { recursive: true });
  const version = (await must("lighttpd", ["-v"], { env: { PATH } })).stdout.trim();
  const conf = join(dir, "lighttpd.conf");
  const { child, port } = await startOnFreePort(
    "lighttpd",
    HOST,
    join(dir, "error.log"),
    async (port) => {
      writeFileSync(conf, lighttpdConfig({ port, root, dir }));
      await must("lighttpd", ["-tt", "-f", conf], { env: { PATH } });
      return track("lighttpd", ["-D", "-f", conf], {
        cwd: dir,
        env: { PATH, LANG: "C" },
        stdio: ["ignore", "ignore", "pipe"],
      });
    },
  );
  return { child, url: `http://${HOST}:${port}/git/bench.git`, version };
}

// ---------------------------------------------------------------------------------------------
// Measurements.

function checked(what, result) {
  if (result.code !== 0) throw new Error(`${what} exited ${result.code}: ${result.stderr.trim()}`);
  return result.ms;
}

/** Which protocol version a target speaks, from the packet trace of one ls-remote. */
async function protocolVersion(url) {
  const trace = join(work, "packet-trace");
  await git(["ls-remote", url], { env: { ...GIT_ENV, GIT_TRACE_PACKET: trace } });
  const text = readFileSync(trace, "utf8");
  rmSync(trace);
  return /< version 2/.test(text) ? 2 : /version 1/.test(text) ? 1 : 0;
}

/** A commit on top of origin/main adding `blobs` random files of `bytes` in all, not pushed. */
async function prepareCommit(clone, name, bytes, blobs = 1) {
  const { stdout: tree } = await git(["ls-tree", "origin/main"], { cwd: clone });
  const entries = [tree.trimEnd()];
  for (let i = 0; i < blobs; i++) {
    const data = randomBytes(Math.floor(bytes / blobs));
    const { stdout } = await git(["hash-object", "-w", "--stdin"], { cwd: clone, input: data });
    entries.push(`100644 blob ${stdout.trim()}\t${name}-${i}.bin`);
  }
  const { stdout: newTree } = await git(["mktree"], {
    cwd: clone,
    input: `${entries.join("\n")}\n`,
  });
  const { stdout: commit } = await git(
    ["commit-tree", newTree.trim(), "-p", "origin/main", "-m", name],
    { cwd: clone },
  );
  return commit.trim();
}

/** Measures clone, no-op fetch, ls-remote and a 20 MiB push, interleaving targets per run. */
async function measureSequential(targets) {
  const names = Object.keys(targets);
  const ms = Object.fromEntries(
    names.map((n) => [n, { clone: [], fetch: [], lsRemote: [], push: [] }]),
  );
  const rotated = (i) => names.map((_, k) => names[(k + i) % names.length]);

  for (let i = 0; i < RUNS; i++) {
    progress(`clone, run ${i + 1}/${RUNS}`);
    for (const name of rotated(i)) {
      const dir = join(work, `clone-${name}-${i}`);
      ms[name].clone.push(
        checked(`${name} clone`, await run("git", ["clone", "-q", targets[name].url, dir])),
      );
      rmSync(dir, { recursive: true, force: true });
    }
  }
  for (let i = 0; i < RUNS; i++) {
    progress(`no-op fetch and ls-remote, run ${i + 1}/${RUNS}`);
    for (const name of rotated(i)) {
      const fetch = await run("git", ["fetch", "-q", "origin"], { cwd: targets[name].clone });
      ms[name].fetch.push(checked(`${name} fetch`, fetch));
    }
    for (const name of rotated(i)) {
      const ls = await run("git", ["ls-remote", targets[name].url]);
      ms[name].lsRemote.push(checked(`${name} ls-remote`, ls));
    }
  }
  for (let i = 0; i < RUNS; i++) {
    progress(`push 20 MiB, run ${i + 1}/${RUNS}`);
    for (const name of rotated(i)) {
      const { clone } = targets[name];
      const commit = await prepareCommit(clone, `push-${i}`, PUSH_BYTES);
      const push = await run("git", ["push", "-q", "origin", `${commit}:refs/heads/push-${i}`], {
        cwd: clone,
      });
      ms[name].push.push(checked(`${name} push`, push));
    }
  }
  return Object.fromEntries(
    names.map((n) => [
      n,
      Object.fromEntries(Object.entries(ms[n]).map(([k, xs]) => [k, summarize(xs)])),
    ]),
  );
}

async function measureConcurrent(url) {
  const started = performance.now();
  const results = await Promise.all(
    Array.from({ length: CONCURRENCY }, () =>
      run("git", ["ls-remote", url], { timeoutMs: 120_000 }),
    ),
  );
  const failed = results.filter((r) => r.code !== 0);
  return {
    clients: CONCURRENCY,
    failures: failed.length,
    wallMs: performance.now() - started,
    medianClientMs: median(results.map((r) => r.ms)),
    firstError: failed[0]?.stderr.trim().split("\n").slice(-2).join(" | ") ?? null,
  };
}

/** VmRSS, VmHWM and the RSS split of one process in MiB, or null once it is gone. */
function memoryOf(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kib = (key) => Number(new RegExp(`^${key}:\\s+(\\d+)`, "m").exec(status)?.[1] ?? 0);
    const name = /^Name:\s+(.*)$/m.exec(status)?.[1] ?? "?";
    return {
      name,
      rss: kib("VmRSS") / 1024,
      hwm: kib("VmHWM") / 1024,
      anon: kib("RssAnon") / 1024, // VmRSS = RssAnon + RssFile (the mapped node binary) + RssShmem
      file: kib("RssFile") / 1024,
    };
  } catch {
    return null;
  }
}

/** The 200 MiB push through the gate, sampling the gate's RSS (and its children's) every 20 ms. */
async function measureGateMemory(gate, clone) {
  const pid = gate.child.pid;
  progress(`preparing a ${BIG_PUSH.bytes / MiB} MiB commit`);
  const commit = await prepareCommit(clone, "big", BIG_PUSH.bytes, BIG_PUSH.blobs);
  // Reset VmHWM (clear_refs 5, Linux >= 4.0) so it covers this push only.
  let hwmReset = true;
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
  } catch {
    hwmReset = false;
  }
  const before = memoryOf(pid);
  let peak = before.rss;
  let peakAnon = before.anon;
  let fileAtPeak = before.file;
  let childSumPeak = 0;
  const childPeaks = new Map(); // pid -> { name, hwm }
  let samples = 0;
  const sample = () => {
    samples++;
    const own = memoryOf(pid);
    if (own && own.rss > peak) {
      peak = own.rss;
      fileAtPeak = own.file;
    }
    if (own) peakAnon = Math.max(peakAnon, own.anon);
    let sum = 0;
    for (const child of descendants(pid)) {
      const m = memoryOf(child);
      if (!m) continue;
      sum += m.rss;
      const seen = childPeaks.get(child);
      if (!seen || m.hwm > seen.hwm) childPeaks.set(child, { name: m.name, hwm: m.hwm });
    }
    childSumPeak = Math.max(childSumPeak, sum);
  };
  progress(`pushing ${BIG_PUSH.bytes / MiB} MiB to the gate, sampling every ${SAMPLE_MS} ms`);
  const timer = setInterval(sample, SAMPLE_MS);
  const push = await run("git", ["push", "-q", "origin", `${commit}:refs/heads/big`], {
    cwd: clone,
  });
  clearInterval(timer);
  checked("200 MiB push to the gate", push);
  const after = memoryOf(pid);
  const largest = [...childPeaks.values()].sort((a, b) => b.hwm - a.hwm)[0] ?? null;
  return {
    pushMs: push.ms,
    samples,
    idleAtStartMiB: gate.idleMiB,
    beforeMiB: before.rss,
    peakSampledMiB: Math.max(peak, after.rss),
    vmHwmMiB: after.hwm,
    vmHwmCoversPushOnly: hwmReset,
    peakRssAnonMiB: peakAnon,
    rssFileAtPeakMiB: fileAtPeak,
    peakMiB: hwmReset ? Math.max(peak, after.rss, after.hwm) : Math.max(peak, after.rss),
    children: {
      peakSumSampledMiB: childSumPeak,
      largest: largest && { name: largest.name, vmHwmMiB: largest.hwm },
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Report.

function report(r) {
  const ms = (x) => `${x.toFixed(0)}`;
  const cell = (s) => `${ms(s.median)} (${ms(s.min)}–${ms(s.max)})`.padEnd(22);
  const ratio = (x) => `${x.toFixed(2)}×`.padStart(8);
  const pass = (ok) => (ok ? "PASS" : "MISS");
  const m = r.machine;
  const lines = [
    `bench/gate: nproc ${m.nproc} (${m.cpu}), Linux ${m.kernel}, node ${m.node}, ${m.git}, ${m.lighttpd}`,
    `repository: ${REPO.commits} commits + ${REPO.bigBlobs} × ${REPO.bigBlobBytes / MiB} MiB random blobs, pack ${r.repository.packMiB.toFixed(1)} MiB; protocol v${r.protocol.gate}/v${r.protocol.floor}/v${r.protocol.file} (gate/floor/file)`,
    `${RUNS} runs each, targets interleaved; ms as median (min–max)`,
    "",
    `${"".padEnd(14)}${"(a) bottle-gate".padEnd(22)}${"(b) floor lighttpd".padEnd(22)}${"(c) file://".padEnd(22)}   (a)/(b)  (c)/(b)`,
  ];
  for (const [key, label] of [
    ["clone", "clone"],
    ["fetch", "no-op fetch"],
    ["lsRemote", "ls-remote"],
    ["push", "push 20 MiB"],
  ]) {
    const { gate, floor, file } = r.results;
    lines.push(
      `${label.padEnd(14)}${cell(gate[key])}${cell(floor[key])}${cell(file[key])}${ratio(r.ratios[key].gateToFloor)} ${ratio(r.ratios[key].fileToFloor)}`,
    );
  }
  const c = r.concurrency;
  const conc = (x) =>
    `${x.failures}/${x.clients} failed, wall ${ms(x.wallMs)} ms, median client ${ms(x.medianClientMs)} ms`;
  const mem = r.memory;
  lines.push(
    "",
    `${CONCURRENCY} concurrent ls-remote  gate:  ${conc(c.gate)}`,
    `${"".padEnd(25)}floor: ${conc(c.floor)}`,
    ...(c.gate.firstError ? [`  first gate failure: ${c.gate.firstError}`] : []),
    "",
    `gate RSS, ${BIG_PUSH.bytes / MiB} MiB push in ${BIG_PUSH.blobs} blobs (${(mem.pushMs / 1000).toFixed(1)} s, ${mem.samples} samples):`,
    `  gate node process: peak ${mem.peakMiB.toFixed(1)} MiB (sampled VmRSS ${mem.peakSampledMiB.toFixed(1)}, VmHWM ${mem.vmHwmMiB.toFixed(1)}${mem.vmHwmCoversPushOnly ? " since reset before the push" : " over its lifetime"}), ${mem.beforeMiB.toFixed(1)} MiB before the push, ${mem.idleAtStartMiB.toFixed(1)} MiB idle at start`,
    `  of which anonymous memory peaked at ${mem.peakRssAnonMiB.toFixed(1)} MiB; file-backed (the node binary, libraries) ${mem.rssFileAtPeakMiB.toFixed(1)} MiB at the sampled peak`,
    `  its child processes (separate): peak sum sampled ${mem.children.peakSumSampledMiB.toFixed(1)} MiB${mem.children.largest ? `, largest ${mem.children.largest.name} VmHWM ${mem.children.largest.vmHwmMiB.toFixed(1)} MiB` : ""}`,
    `  gate request log: ${r.gateLog.requests} requests, by status ${JSON.stringify(r.gateLog.statuses)}`,
    "",
    "targets:",
    ...r.targets.map((t) => `  ${pass(t.pass)}  ${t.name.padEnd(42)} ${t.measured}`),
  );
  return `${lines.join("\n")}\n`;
}

// ---------------------------------------------------------------------------------------------

async function main() {
  progress(`work dir ${work}`);
  const source = join(work, "source.git");
  progress("building the repository with git fast-import");
  const packMiB = await buildRepository(source);
  progress(`pack ${packMiB.toFixed(1)} MiB`);

  progress("starting bottle-gate and lighttpd");
  const gate = await startGate(source);
  const floor = await startFloor(source);
  const fileRepo = join(work, "file-repos/bench.git");
  cpSync(source, fileRepo, { recursive: true });
  const targets = {
    gate: { url: gate.url },
    floor: { url: floor.url },
    file: { url: `file://${fileRepo}` },
  };
  progress(`gate ${gate.display}, floor ${floor.url}, file://${fileRepo}`);

  const protocol = {};
  for (const [name, target] of Object.entries(targets)) {
    protocol[name] = await protocolVersion(target.url);
    // Untimed warm-up clone, kept for the fetch and push measurements.
    target.clone = join(work, `work-${name}`);
    await git(["clone", "-q", target.url, target.clone]);
  }

  const results = await measureSequential(targets);
  progress(`${CONCURRENCY} concurrent ls-remote against the gate, then the floor`);
  const concurrency = {
    gate: await measureConcurrent(targets.gate.url),
    floor: await measureConcurrent(targets.floor.url),
  };
  const memory = await measureGateMemory(gate, targets.gate.clone);

  const ratios = {};
  for (const key of ["clone", "fetch", "lsRemote", "push"]) {
    ratios[key] = {
      gateToFloor: results.gate[key].median / results.floor[key].median,
      fileToFloor: results.file[key].median / results.floor[key].median,
    };
  }
  const targetsMet = [
    {
      name: `clone ≤ ${TARGETS.clone}× floor`,
      pass: ratios.clone.gateToFloor <= TARGETS.clone,
      measured: `${ratios.clone.gateToFloor.toFixed(3)}×`,
    },
    {
      name: `ls-remote ≤ ${TARGETS.lsRemote}× floor`,
      pass: ratios.lsRemote.gateToFloor <= TARGETS.lsRemote,
      measured: `${ratios.lsRemote.gateToFloor.toFixed(3)}×`,
    },
    {
      name: `0 failures in ${CONCURRENCY} concurrent ls-remote`,
      pass: concurrency.gate.failures === 0,
      measured: `${concurrency.gate.failures} failures`,
    },
    {
      name: `gate RSS < ${TARGETS.rssMiB} MiB during ${BIG_PUSH.bytes / MiB} MiB push`,
      pass: memory.peakMiB < TARGETS.rssMiB,
      measured: `${memory.peakMiB.toFixed(1)} MiB`,
    },
  ];
  const gitVersion = (await git(["--version"])).stdout.trim();
  return {
    machine: machineInfo({
      git: gitVersion,
      lighttpd: floor.version.split(" ")[0],
    }),
    repository: { ...REPO, packMiB },
    runs: RUNS,
    protocol,
    results,
    ratios,
    concurrency,
    memory,
    gateLog: { requests: gate.log.requests, statuses: gate.log.statuses },
    targets: targetsMet,
  };
}

await runBench({ main, report, json: flags.json, workspace: ws, needs: NEEDS });
