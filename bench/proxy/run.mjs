#!/usr/bin/env node
import { createHash, randomBytes } from "node:crypto";
import {
  accessSync,
  closeSync,
  constants,
  mkdirSync,
  openSync,
  readFileSync,
  writeFileSync,
} from "node:fs";
import { request } from "node:http";
import { createRequire } from "node:module";
import { join } from "node:path";
import {
  binArgv,
  createWorkspace,
  descendants,
  parseBenchArgs,
  progress,
  runBench,
} from "../harness.mjs";
import { collectCpuProfile, summariseProfile } from "../profile.mjs";
import { startOnFreePort } from "../servers.mjs";
import { forEachLine, machineBusySeconds, machineInfo, median, summarize } from "../stats.mjs";
import { rssOf, UPLOAD_BYTES } from "./load.mjs";
import { DOWNLOAD_BYTES, SMALL_BODY } from "./upstream.mjs";

const ROOT = join(import.meta.dirname, "../..");
const CRED_PROXY_CLI = join(ROOT, "packages/cred-proxy/dist/cli.js");
/** What the bench runs, checked before it starts. */
const NEEDS = {
  files: [CRED_PROXY_CLI],
  hint: "run `pnpm --filter @bottle/cred-proxy... build` first",
};
const UPSTREAM = join(import.meta.dirname, "upstream.mjs");
const LOAD = join(import.meta.dirname, "load.mjs");
const HTTP_PROXY = join(import.meta.dirname, "node-http-proxy.mjs");
const NODE_FLOOR = join(import.meta.dirname, "node-floor.mjs");
const HOST = "127.0.0.1"; // loopback only, never `localhost`
const MiB = 1024 * 1024;

const CONNECTIONS = 32;
const WARMUP_S = 1;
const LATENCY_S = 3;
const TRANSFERS = 8; // 16 MiB downloads and 8 MiB uploads per target and run (after one more)
const SSE_COUNT = 20;
const TARGETS = {
  vsFloor: 0.9, // bottle-cred-proxy req/s ÷ the node floor's req/s
  vsHttpProxy: 1.5, // bottle-cred-proxy req/s ÷ http-proxy req/s
  addedP50VsFloor: 1.5, // bottle-cred-proxy's added p50 ÷ the node floor's, 1 connection
  downloadVsFloor: 0.9, // bottle-cred-proxy MiB/s ÷ the node floor's MiB/s, 16 MiB
  soakRssVsFloor: 1.2, // bottle-cred-proxy's peak RSS in the soak ÷ the node floor's
  soakGrowthMiB: 5, // last-third average − first-third average, at most this …
  soakGrowthShare: 0.1, // … and at most this share of the first-third average
};
const NAMES = ["direct", "cred", "nginx", "httpProxy", "floor"];
const LABELS = {
  direct: "direct",
  cred: "bottle-cred-proxy",
  nginx: "nginx",
  httpProxy: "http-proxy",
  floor: "node floor",
};

const USAGE = `usage: node bench/proxy/run.mjs [--runs N] [--seconds N] [--soak-seconds N] [--soak-rate N]
                               [--profile F] [--unpinned] [--json]

  --runs N          runs per measurement, targets interleaved (default 3)
  --seconds N       measured seconds of each req/s run, after ${WARMUP_S} s of warm-up (default 5)
  --soak-seconds N  length of the fixed-rate soak through bottle-cred-proxy, then the node floor (default 60; 0 skips it)
  --soak-rate N     requests per second during the soak (default 500)
  --profile F       afterwards, one more req/s run and one more set of 16 MiB downloads, each
                    against a fresh bottle-cred-proxy under \`node --cpu-prof\`; keep the
                    profiles as F and F.download.cpuprofile and summarise where the time goes
  --unpinned        do not pin the processes to CPUs with taskset
  --json            machine-readable results on stdout

Needs nginx on PATH (apt-get install -y nginx), \`pnpm install\` (http-proxy) and
\`pnpm --filter @bottle/cred-proxy... build\`.
`;
const { flags, integers } = parseBenchArgs(USAGE, {
  options: {
    seconds: { type: "string", default: "5" },
    "soak-seconds": { type: "string", default: "60" },
    "soak-rate": { type: "string", default: "500" },
    profile: { type: "string" },
    unpinned: { type: "boolean", default: false },
  },
  integers: { seconds: [1, 600], "soak-seconds": [0, 3600], "soak-rate": [1, 100_000] },
});
const { runs: RUNS, seconds: SECONDS } = integers;
const { "soak-seconds": SOAK_SECONDS, "soak-rate": SOAK_RATE } = integers;
if (SOAK_SECONDS > 0 && SOAK_SECONDS < 6) {
  process.stderr.write("bench: `--soak-seconds` must be 0 (no soak) or at least 6\n");
  process.exit(2);
}

const ws = createWorkspace("proxy");
const { work, HOME, PATH, track, run, must, sleep, startListening } = ws;
const env = { PATH, HOME, LANG: "C" };

// ---------------------------------------------------------------------------------------------
// Prerequisites and CPU placement.

function findExecutable(name) {
  const dirs = [...PATH.split(":"), "/usr/local/sbin", "/usr/sbin", "/sbin"];
  for (const dir of dirs) {
    if (dir === "") continue;
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {}
  }
  return null;
}

/** The CPUs this process may run on, from /proc/self/status (`0-1`, `0,2-3`). */
function allowedCpus() {
  try {
    const list = /^Cpus_allowed_list:\s*(.*)$/m.exec(readFileSync("/proc/self/status", "utf8"));
    const out = [];
    for (const part of list[1].trim().split(",")) {
      const [from, to = from] = part.split("-").map(Number);
      for (let cpu = from; cpu <= to; cpu++) out.push(cpu);
    }
    return out;
  } catch {
    return [];
  }
}

/**
 * Where each process runs: the load generator on one CPU, the proxies on another, and the
 * upstream on a third when there is one (else with the proxies). null: no pinning.
 */
function placement(taskset) {
  const cpuList = allowedCpus();
  if (flags.unpinned) return { pinned: false, why: "--unpinned" };
  if (taskset === null) return { pinned: false, why: "no taskset on PATH" };
  if (cpuList.length < 2) return { pinned: false, why: `only ${cpuList.length} CPU allowed` };
  const [load, proxy, upstream = proxy] = cpuList.map(String);
  return { pinned: true, load, proxy, upstream };
}

// ---------------------------------------------------------------------------------------------
// Servers.

/** One request on a fresh connection: status and body. */
function fetchOnce(url, { method = "GET", headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, agent: false, headers }, (res) => {
      const chunks = [];
      res.on("data", (chunk) => chunks.push(chunk));
      res.on("end", () => resolve({ status: res.statusCode, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

async function main() {
  // 0. Prerequisites, before anything slow (the built CLI is checked before main).
  let httpProxyVersion;
  try {
    const require = createRequire(import.meta.url);
    const manifest = require.resolve("http-proxy/package.json");
    httpProxyVersion = JSON.parse(readFileSync(manifest, "utf8")).version;
  } catch {
    throw new Error("the http-proxy package is not installed: run `pnpm install` at the root");
  }
  const nginx = findExecutable("nginx");
  if (nginx === null) {
    throw new Error(
      "nginx is not installed (or not on PATH, /usr/sbin or /usr/local/sbin): it is one of the targets; install it with `apt-get install -y nginx`",
    );
  }
  const nginxVersion = (await must(nginx, ["-v"], { env })).stderr.trim().replace(/^.*: /, "");
  const taskset = findExecutable("taskset");
  const place = placement(taskset);
  const pinned = (cpu, command, argv) =>
    place.pinned ? [taskset, ["-c", cpu, command, ...argv]] : [command, argv];
  progress(`work dir ${work}`);
  progress(
    place.pinned
      ? `pinned: load generator on CPU ${place.load}, proxies on CPU ${place.proxy}, upstream on CPU ${place.upstream}`
      : `not pinned (${place.why})`,
  );

  const token = `bench_${randomBytes(24).toString("base64url")}`;
  const authorization = `Bearer ${token}`;

  /** Starts a Node server child (pinned to `cpu`) and waits for its `listening` record. */
  const startNode = (name, cpu, nodeArgv, env, logFile) =>
    startListening(name, ...pinned(cpu, process.execPath, nodeArgv), { env, logFile });

  // 1. The upstream.
  const upstream = await startNode(
    "the upstream",
    place.upstream,
    [UPSTREAM],
    { ...env, BENCH_UPSTREAM_TOKEN: token },
    join(work, "upstream.log"),
  );
  progress(`upstream at ${upstream.url}`);

  // 2. bottle-cred-proxy: the built CLI, one route, the token in its slot.
  const routesFile = join(work, "routes.json");
  writeFileSync(
    routesFile,
    `${JSON.stringify(
      {
        version: 1,
        routes: [
          {
            path: "/api/",
            upstream: upstream.url,
            auth: { scheme: "Bearer" },
            token_env: "BOTTLE_PROXY_TOKEN_0",
          },
        ],
      },
      null,
      2,
    )}\n`,
  );
  const credEnv = { ...env, BOTTLE_PROXY_TOKEN_0: token };
  const credArgv = [...binArgv(CRED_PROXY_CLI), "--routes", routesFile, "--port", "0"];
  const cred = await startNode(
    "bottle-cred-proxy",
    place.proxy,
    credArgv,
    credEnv,
    join(work, "cred-proxy.log"),
  );
  progress(`bottle-cred-proxy at ${cred.url}`);

  // 3. nginx, generated config, in the foreground.
  const nginxServer = await startNginx(nginx, upstream.url, token, (argv) =>
    pinned(place.proxy, nginx, argv),
  );
  progress(`nginx at ${nginxServer.url} (worker pid ${nginxServer.workers.join(", ")})`);

  // 4. http-proxy, and 5. the node floor (undici dispatch behind node:http, nothing else):
  // both reach the upstream with its token from the environment.
  const startTarget = async (name, script, log) => {
    const targetEnv = { ...env, BENCH_UPSTREAM_URL: upstream.url, BENCH_UPSTREAM_TOKEN: token };
    const started = await startNode(name, place.proxy, [script], targetEnv, join(work, log));
    progress(`${name} at ${started.url}`);
    return started;
  };
  const httpProxy = await startTarget("http-proxy", HTTP_PROXY, "http-proxy.log");
  const floor = await startTarget("node floor", NODE_FLOOR, "node-floor.log");

  const targets = {
    direct: { url: upstream.url, prefix: "", authorization, proxyPids: [] },
    cred: { url: cred.url, prefix: "/api", proxyPids: [cred.pid] },
    nginx: {
      url: nginxServer.url,
      prefix: "/api",
      proxyPids: [nginxServer.child.pid, ...nginxServer.workers],
    },
    httpProxy: { url: httpProxy.url, prefix: "/api", proxyPids: [httpProxy.pid] },
    floor: { url: floor.url, prefix: "/api", proxyPids: [floor.pid] },
  };

  // 6. Checks: the upstream refuses a request without the token, every proxy injects it
  // (overwriting a wrong one the client sends), passes the small answer byte for byte and the
  // 16 MiB download with the upstream's sha256.
  const bare = await fetchOnce(`${upstream.url}/small`);
  if (bare.status !== 401) throw new Error(`the upstream answered ${bare.status} without a token`);
  for (const name of NAMES) {
    const t = targets[name];
    const headers = name === "direct" ? { authorization } : {};
    const plain = await fetchOnce(`${t.url}${t.prefix}/small`, { headers });
    if (plain.status !== 200 || !plain.body.equals(SMALL_BODY)) {
      throw new Error(`${LABELS[name]} answered ${plain.status}: ${plain.body.toString()}`);
    }
    const big = await fetchOnce(`${t.url}${t.prefix}/download`, { headers });
    const bigSha = createHash("sha256").update(big.body).digest("hex");
    if (big.status !== 200 || bigSha !== upstream.record.downloadSha256) {
      throw new Error(`${LABELS[name]} passed the 16 MiB download on altered (${big.status})`);
    }
    if (name === "direct") continue;
    const wrong = await fetchOnce(`${t.url}${t.prefix}/small`, {
      headers: { authorization: "Bearer wrong" },
    });
    if (wrong.status !== 200) {
      throw new Error(`${LABELS[name]} passed the client's Authorization on (${wrong.status})`);
    }
  }

  // 7. The runs, each measurement with its own load process; the target order rotates per run.
  // First, how busy the machine is without the bench (anything else running skews the figures).
  const clkTck = Number((await run("getconf", ["CLK_TCK"], { env })).stdout.trim()) || 100;
  const busy0 = machineBusySeconds(clkTck);
  await sleep(2000);
  const busyBefore = (machineBusySeconds(clkTck) - busy0) / 2;
  if (busyBefore > 0.2) {
    progress(
      `WARNING: ${busyBefore.toFixed(2)} cores busy before the runs: other work skews the figures`,
    );
  }
  const loadRun = async (spec, timeoutMs) => {
    const [command, argv] = pinned(place.load, process.execPath, [LOAD]);
    const out = await must(command, argv, {
      env: { ...env, BENCH_PROXY_LOAD: JSON.stringify(spec) },
      timeoutMs,
    });
    return JSON.parse(out.stdout.trim().split("\n").at(-1));
  };
  const specOf = (name) => ({
    url: targets[name].url,
    prefix: targets[name].prefix,
    ...(targets[name].authorization ? { authorization: targets[name].authorization } : {}),
  });
  const cpuOf = (name) => ({
    clkTck,
    groups: {
      proxy: targets[name].proxyPids,
      upstream: [upstream.pid],
    },
  });
  const results = Object.fromEntries(
    NAMES.map((n) => [n, { rps: [], latency: [], download: [], upload: [], sse: [] }]),
  );
  const rotated = (i) => NAMES.map((_, k) => NAMES[(k + i) % NAMES.length]);
  const failIf = (name, what, r) => {
    if (r.errors > 0) {
      throw new Error(
        `${LABELS[name]}: ${r.errors} failed requests (${what}): ${JSON.stringify(r.statuses)}`,
      );
    }
  };
  for (let i = 0; i < RUNS; i++) {
    const order = rotated(i);
    for (const name of order) {
      progress(`run ${i + 1}/${RUNS}: ${LABELS[name]}, req/s at ${CONNECTIONS} connections`);
      const r = await loadRun(
        {
          ...specOf(name),
          mode: "closed",
          connections: CONNECTIONS,
          warmupS: WARMUP_S,
          seconds: SECONDS,
          cpu: cpuOf(name),
        },
        (SECONDS + WARMUP_S + 60) * 1000,
      );
      failIf(name, "req/s", r);
      progress(`  ${Math.round(r.perSecond)} req/s, p50 ${Math.round(r.p50Us)} µs`);
      results[name].rps.push(r);
    }
    for (const name of order) {
      progress(`run ${i + 1}/${RUNS}: ${LABELS[name]}, latency at 1 connection`);
      const r = await loadRun(
        {
          ...specOf(name),
          mode: "closed",
          connections: 1,
          warmupS: WARMUP_S,
          seconds: LATENCY_S,
          cpu: cpuOf(name),
        },
        (LATENCY_S + WARMUP_S + 60) * 1000,
      );
      failIf(name, "latency", r);
      progress(`  p50 ${Math.round(r.p50Us)} µs, p99 ${Math.round(r.p99Us)} µs`);
      results[name].latency.push(r);
    }
    for (const name of order) {
      progress(`run ${i + 1}/${RUNS}: ${LABELS[name]}, 16 MiB downloads and 8 MiB uploads`);
      const transfer = { ...specOf(name), count: TRANSFERS, cpu: cpuOf(name) };
      const d = await loadRun({ ...transfer, mode: "download" }, 120_000);
      const u = await loadRun({ ...transfer, mode: "upload" }, 120_000);
      progress(
        `  download ${median(d.ms).toFixed(1)} ms, upload ${median(u.ms).toFixed(1)} ms (upstream saw chunked: ${u.upstreamSawChunked})`,
      );
      results[name].download.push(d);
      results[name].upload.push(u);
    }
    for (const name of order) {
      const r = await loadRun({ ...specOf(name), mode: "sse", count: SSE_COUNT }, 60_000);
      progress(
        `run ${i + 1}/${RUNS}: ${LABELS[name]}, SSE first event ${median(r.firstMs).toFixed(2)} ms`,
      );
      if (r.buffered > 0) progress(`  ${r.buffered} answers came in one piece (buffered)`);
      results[name].sse.push(r);
    }
  }

  // 8. The soak: a fixed rate through bottle-cred-proxy, its RSS sampled every second; then the
  // same through the node floor, whose peak RSS is the reference.
  let soak = null;
  if (SOAK_SECONDS > 0) {
    const soakOf = async (name, pid) => {
      progress(`soak: ${SOAK_RATE} req/s for ${SOAK_SECONDS} s through ${LABELS[name]}`);
      const spec = { ...specOf(name), mode: "soak", rate: SOAK_RATE, seconds: SOAK_SECONDS };
      const r = await loadRun({ ...spec, rssPid: pid, clkTck }, (SOAK_SECONDS + 60) * 1000);
      const verdict = { ...r, ...soakVerdict(r.samples, SOAK_SECONDS) };
      progress(
        `  RSS ${verdict.firstMiB.toFixed(1)} → ${verdict.lastMiB.toFixed(1)} MiB, max ${verdict.maxMiB.toFixed(1)} MiB, slope ${verdict.slopeMiBPerMin.toFixed(2)} MiB/min, ${r.errors} errors`,
      );
      return verdict;
    };
    soak = await soakOf("cred", cred.pid);
    soak.floor = await soakOf("floor", floor.pid);
  }

  // 9. Peak memory of every server, and bottle-cred-proxy's request log.
  const hwm = (pids) => Math.max(...pids.map((pid) => rssOf(pid)?.hwm ?? 0));
  const peakRssMiB = {
    upstream: hwm([upstream.pid]),
    cred: hwm(targets.cred.proxyPids),
    nginx: hwm(targets.nginx.proxyPids),
    httpProxy: hwm(targets.httpProxy.proxyPids),
    floor: hwm(targets.floor.proxyPids),
  };
  const credLog = countRequests(cred.logFile);

  // 10. The profiles: a fresh bottle-cred-proxy under --cpu-prof for one req/s run, and another
  // for the 16 MiB downloads; each is stopped with SIGTERM, which writes its profile.
  let profile = null;
  if (flags.profile !== undefined) {
    const profiled = async (label, file, spec, timeoutMs) => {
      const dir = join(work, `cpu-profile-${label}`);
      const proxy = await startNode(
        `bottle-cred-proxy (profiled, ${label})`,
        place.proxy,
        ["--cpu-prof", "--cpu-prof-dir", dir, ...credArgv],
        credEnv,
        join(work, `cred-proxy-profiled-${label}.log`),
      );
      progress(`profiling ${label}: bottle-cred-proxy under --cpu-prof at ${proxy.url}`);
      const cpu = { clkTck, groups: { proxy: [proxy.pid], upstream: [upstream.pid] } };
      const r = await loadRun({ ...spec, url: proxy.url, prefix: "/api", cpu }, timeoutMs);
      const name = `the profiled proxy (${label})`;
      const cpuProfile = await collectCpuProfile(name, proxy.child, dir, file, 15_000);
      // Only the measured window: no start-up, no warm-up.
      const served = spec.mode === "closed" ? r.answers : spec.count;
      const summary = summariseProfile(cpuProfile, served, { window: r.windowUs });
      return { result: r, ...summary };
    };
    const rps = await profiled(
      "rps",
      flags.profile,
      { mode: "closed", connections: CONNECTIONS, warmupS: WARMUP_S, seconds: SECONDS },
      (SECONDS + WARMUP_S + 60) * 1000,
    );
    const download = await profiled(
      "download",
      `${flags.profile.replace(/\.cpuprofile$/, "")}.download.cpuprofile`,
      { mode: "download", count: TRANSFERS },
      120_000,
    );
    profile = { rps, download };
  }

  return resultsSummary({
    machine: machineInfo({
      nginx: nginxVersion,
      httpProxy: httpProxyVersion,
      busyCoresBefore: busyBefore,
    }),
    placement: place,
    results,
    soak,
    peakRssMiB,
    credLog,
    profile,
  });
}

// ---------------------------------------------------------------------------------------------
// nginx.

function nginxConfig({ dir, port, upstreamUrl, token }) {
  const upstream = new URL(upstreamUrl);
  const q = (s) => JSON.stringify(s); // nginx strings in double quotes take the same escapes
  return `${[
    "daemon off;",
    "master_process on;",
    "worker_processes 1;",
    `pid ${q(join(dir, "nginx.pid"))};`,
    `error_log ${q(join(dir, "error.log"))} warn;`,
    "events { worker_connections 1024; }",
    "http {",
    // One line per request to a file, as bottle-cred-proxy writes one JSON line per request.
    `  access_log ${q(join(dir, "access.log"))};`,
    `  client_body_temp_path ${q(join(dir, "client_body"))};`,
    `  proxy_temp_path ${q(join(dir, "proxy"))};`,
    `  fastcgi_temp_path ${q(join(dir, "fastcgi"))};`,
    `  uwsgi_temp_path ${q(join(dir, "uwsgi"))};`,
    `  scgi_temp_path ${q(join(dir, "scgi"))};`,
    // nginx closes a client connection after 1000 requests by default; Node never does.
    "  keepalive_requests 1000000;",
    "  keepalive_timeout 65s;",
    "  upstream bench_upstream {",
    `    server ${upstream.host};`,
    "    keepalive 32;",
    "    keepalive_requests 1000000;",
    "    keepalive_timeout 60s;",
    "  }",
    "  server {",
    `    listen ${HOST}:${port};`,
    "    location /api/ {",
    "      proxy_pass http://bench_upstream/;",
    "      proxy_http_version 1.1;",
    '      proxy_set_header Connection "";',
    `      proxy_set_header Authorization ${q(`Bearer ${token}`)};`,
    "      proxy_buffering off;",
    "      proxy_request_buffering off;",
    "      client_max_body_size 0;",
    "    }",
    "  }",
    "}",
  ].join("\n")}\n`;
}

/** nginx in the foreground on a free loopback port (retried if another process takes it). */
async function startNginx(nginx, upstreamUrl, token, pinnedArgv) {
  const dir = join(work, "nginx");
  mkdirSync(dir, { mode: 0o700 });
  const conf = join(dir, "nginx.conf");
  const args = ["-p", dir, "-e", join(dir, "error.log"), "-c", conf];
  const { child, port } = await startOnFreePort(
    "nginx",
    HOST,
    join(dir, "error.log"),
    async (port) => {
      // The config holds the token: readable by this user only, in the 0700 temp dir.
      writeFileSync(conf, nginxConfig({ dir, port, upstreamUrl, token }), { mode: 0o600 });
      await must(nginx, ["-t", "-q", ...args], { env });
      const [command, argv] = pinnedArgv(args);
      return track(command, argv, { cwd: dir, env, stdio: ["ignore", "ignore", "pipe"] });
    },
  );
  let workers = [];
  for (let i = 0; i < 50 && workers.length === 0; i++) {
    workers = descendants(child.pid);
    if (workers.length === 0) await sleep(20);
  }
  return { child, url: `http://${HOST}:${port}`, workers };
}

// ---------------------------------------------------------------------------------------------
// Results.

/** bottle-cred-proxy's request lines (one JSON line each), by status. */
function countRequests(file) {
  const fd = openSync(file, "r");
  const statuses = {};
  let requests = 0;
  let aborted = 0;
  let maxDurationMs = 0;
  forEachLine(fd, (line) => {
    if (!line.includes('"msg":"request"')) return;
    requests++;
    const status = /"status":(\d+)/.exec(line)?.[1] ?? "?";
    statuses[status] = (statuses[status] ?? 0) + 1;
    if (line.includes('"aborted":true')) aborted++;
    const duration = Number(/"durationMs":(\d+)/.exec(line)?.[1] ?? 0);
    if (duration > maxDurationMs) maxDurationMs = duration;
  });
  closeSync(fd);
  return { requests, statuses, aborted, maxDurationMs };
}

/**
 * The soak's verdict. After a warm-up (a twelfth of the soak, 5 s of 60), the average RSS of the
 * first third of the soak is compared with that of the last third: flat when it grew by at most
 * 5 MiB and at most 10 %. The slope is a least-squares fit over the samples after the warm-up.
 */
function soakVerdict(samples, seconds) {
  const warmup = Math.max(1, Math.round(seconds / 12));
  const window = Math.max(2, Math.round(seconds / 3));
  const avg = (xs) => xs.reduce((a, s) => a + s.rss, 0) / xs.length;
  const settled = samples.filter((s) => s.t >= warmup - 0.05);
  const first = settled.filter((s) => s.t < warmup + window - 0.05);
  const last = samples.filter((s) => s.t > seconds - window - 0.05);
  const firstAvg = avg(first);
  const lastAvg = avg(last);
  const n = settled.length;
  const mt = settled.reduce((a, s) => a + s.t, 0) / n;
  const mr = avg(settled);
  const cov = settled.reduce((a, s) => a + (s.t - mt) * (s.rss - mr), 0);
  const vt = settled.reduce((a, s) => a + (s.t - mt) ** 2, 0);
  const growth = lastAvg - firstAvg;
  return {
    warmupS: warmup,
    windowS: window,
    firstMiB: samples[0].rss,
    lastMiB: samples.at(-1).rss,
    maxMiB: Math.max(...samples.map((s) => s.rss)),
    firstAnonMiB: samples[0].anon,
    lastAnonMiB: samples.at(-1).anon,
    firstWindowMiB: firstAvg,
    lastWindowMiB: lastAvg,
    growthMiB: growth,
    slopeMiBPerMin: vt > 0 ? (60 * cov) / vt : 0,
    flat: growth <= TARGETS.soakGrowthMiB && growth <= TARGETS.soakGrowthShare * firstAvg,
  };
}

function resultsSummary({ results, soak, ...rest }) {
  const s = {};
  for (const name of NAMES) {
    const r = results[name];
    s[name] = {
      rps: summarize(r.rps.map((x) => x.perSecond)),
      rpsP50Us: summarize(r.rps.map((x) => x.p50Us)),
      rpsP99Us: summarize(r.rps.map((x) => x.p99Us)),
      cores: {
        proxy: summarize(r.rps.map((x) => x.cores.proxy)),
        upstream: summarize(r.rps.map((x) => x.cores.upstream)),
        load: summarize(r.rps.map((x) => x.cores.load)),
        other: summarize(r.rps.map((x) => Math.max(0, x.cores.other))),
      },
      proxyCpuUsPerRequest: summarize(r.rps.map((x) => (1e6 * x.cores.proxy) / x.perSecond)),
      upstreamCpuUsPerRequest: summarize(r.rps.map((x) => (1e6 * x.cores.upstream) / x.perSecond)),
      p50Us: summarize(r.latency.map((x) => x.p50Us)),
      p99Us: summarize(r.latency.map((x) => x.p99Us)),
      addedP50Us: summarize(r.latency.map((x, i) => x.p50Us - results.direct.latency[i].p50Us)),
      addedP99Us: summarize(r.latency.map((x, i) => x.p99Us - results.direct.latency[i].p99Us)),
      latencyProxyCpuUsPerRequest: summarize(
        r.latency.map((x) => (1e6 * x.cores.proxy) / x.perSecond),
      ),
      downloadMs: summarize(r.download.map((x) => median(x.ms))),
      uploadMs: summarize(r.upload.map((x) => median(x.ms))),
      downloadCpuMs: {
        proxy: summarize(r.download.map((x) => x.cpuMsEach.proxy)),
        upstream: summarize(r.download.map((x) => x.cpuMsEach.upstream)),
        load: summarize(r.download.map((x) => x.cpuMsEach.load)),
      },
      uploadCpuMs: {
        proxy: summarize(r.upload.map((x) => x.cpuMsEach.proxy)),
        upstream: summarize(r.upload.map((x) => x.cpuMsEach.upstream)),
        load: summarize(r.upload.map((x) => x.cpuMsEach.load)),
      },
      upstreamSawChunked: r.upload.every((x) => x.upstreamSawChunked),
      sseFirstMs: summarize(r.sse.map((x) => median(x.firstMs))),
      sseBuffered: r.sse.reduce((n, x) => n + x.buffered, 0),
      errors: [...r.rps, ...r.latency].reduce((n, x) => n + x.errors, 0),
    };
    s[name].downloadMiBps = (DOWNLOAD_BYTES / MiB / s[name].downloadMs.median) * 1000;
    s[name].uploadMiBps = (UPLOAD_BYTES / MiB / s[name].uploadMs.median) * 1000;
  }
  const ratios = {
    rpsVsNginx: s.cred.rps.median / s.nginx.rps.median,
    rpsVsHttpProxy: s.cred.rps.median / s.httpProxy.rps.median,
    cpuVsNginx: s.cred.proxyCpuUsPerRequest.median / s.nginx.proxyCpuUsPerRequest.median,
    cpuVsHttpProxy: s.cred.proxyCpuUsPerRequest.median / s.httpProxy.proxyCpuUsPerRequest.median,
    downloadVsNginx: s.nginx.downloadMs.median / s.cred.downloadMs.median,
    downloadVsHttpProxy: s.httpProxy.downloadMs.median / s.cred.downloadMs.median,
    uploadVsNginx: s.nginx.uploadMs.median / s.cred.uploadMs.median,
    rpsVsFloor: s.cred.rps.median / s.floor.rps.median,
    cpuOverFloorUs: s.cred.proxyCpuUsPerRequest.median - s.floor.proxyCpuUsPerRequest.median,
    downloadVsFloor: s.floor.downloadMs.median / s.cred.downloadMs.median,
    floorRpsVsNginx: s.floor.rps.median / s.nginx.rps.median,
    floorDownloadVsNginx: s.nginx.downloadMs.median / s.floor.downloadMs.median,
  };
  const fmt = (x, d = 2) => x.toFixed(d);
  const errors =
    NAMES.reduce((n, name) => n + s[name].errors, 0) +
    (soak ? soak.errors + soak.unanswered + soak.floor.errors + soak.floor.unanswered : 0);
  const addedVsFloor = s.cred.addedP50Us.median / s.floor.addedP50Us.median;
  const targets = [
    {
      name: `bottle-cred-proxy req/s ≥ ${TARGETS.vsFloor}× node floor`,
      pass: ratios.rpsVsFloor >= TARGETS.vsFloor,
      measured: `${fmt(ratios.rpsVsFloor)}× (${Math.round(s.cred.rps.median)} vs ${Math.round(s.floor.rps.median)}; nginx ${Math.round(s.nginx.rps.median)}: ${fmt(ratios.rpsVsNginx)}×)`,
    },
    {
      name: `bottle-cred-proxy req/s ≥ ${TARGETS.vsHttpProxy}× http-proxy`,
      pass: ratios.rpsVsHttpProxy >= TARGETS.vsHttpProxy,
      measured: `${fmt(ratios.rpsVsHttpProxy)}× (${Math.round(s.cred.rps.median)} vs ${Math.round(s.httpProxy.rps.median)})`,
    },
    {
      name: `added p50 ≤ ${TARGETS.addedP50VsFloor}× node floor's (1 connection)`,
      pass: addedVsFloor <= TARGETS.addedP50VsFloor,
      measured: `${fmt(addedVsFloor)}× (${Math.round(s.cred.addedP50Us.median)} µs vs ${Math.round(s.floor.addedP50Us.median)}; nginx ${Math.round(s.nginx.addedP50Us.median)}, http-proxy ${Math.round(s.httpProxy.addedP50Us.median)})`,
    },
    {
      name: `16 MiB download ≥ ${TARGETS.downloadVsFloor}× node floor`,
      pass: ratios.downloadVsFloor >= TARGETS.downloadVsFloor,
      measured: `${fmt(ratios.downloadVsFloor)}× (${Math.round(s.cred.downloadMiBps)} vs ${Math.round(s.floor.downloadMiBps)} MiB/s; nginx ${Math.round(s.nginx.downloadMiBps)}: ${fmt(ratios.downloadVsNginx)}×)`,
    },
    ...(soak === null
      ? [{ name: "RSS in the soak", pass: null, measured: "not run (--soak-seconds 0)" }]
      : [
          {
            name: `soak peak RSS ≤ ${TARGETS.soakRssVsFloor}× node floor's`,
            pass: soak.maxMiB <= TARGETS.soakRssVsFloor * soak.floor.maxMiB,
            measured: `${fmt(soak.maxMiB / soak.floor.maxMiB)}× (${fmt(soak.maxMiB, 1)} vs ${fmt(soak.floor.maxMiB, 1)} MiB)`,
          },
          {
            name: `flat RSS in the ${soak.seconds} s soak`,
            pass: soak.flat,
            measured: `${soak.growthMiB >= 0 ? "+" : ""}${fmt(soak.growthMiB, 1)} MiB (${fmt(soak.firstWindowMiB, 1)} → ${fmt(soak.lastWindowMiB, 1)}), ${fmt(soak.slopeMiBPerMin)} MiB/min`,
          },
        ]),
    { name: "no failed request", pass: errors === 0, measured: `${errors} errors` },
  ];
  return {
    ...rest,
    load: {
      connections: CONNECTIONS,
      warmupSeconds: WARMUP_S,
      seconds: SECONDS,
      latencySeconds: LATENCY_S,
      smallBytes: SMALL_BODY.length,
      downloadBytes: DOWNLOAD_BYTES,
      uploadBytes: UPLOAD_BYTES,
      transfers: TRANSFERS,
      sseCount: SSE_COUNT,
    },
    runs: RUNS,
    results: s,
    raw: results,
    ratios,
    soak,
    targets,
  };
}

function report(r) {
  const pass = (ok) => (ok === null ? "----" : ok ? "PASS" : "MISS");
  const num = (x, d) => (Number.isFinite(x) ? x.toFixed(d) : "n/a");
  const cell = (s, d, width) =>
    `${num(s.median, d)} (${num(s.min, d)}–${num(s.max, d)})`.padEnd(width);
  const signed = (s, d, width) => {
    const sign = (x) => (x >= 0 ? "+" : "");
    return `${sign(s.median)}${num(s.median, d)} (${sign(s.min)}${num(s.min, d)}–${sign(s.max)}${num(s.max, d)})`.padEnd(
      width,
    );
  };
  const m = r.machine;
  const p = r.placement;
  const L = r.load;
  const rows = (fn) =>
    NAMES.map((name) => `${LABELS[name].padEnd(19)}${fn(r.results[name], name)}`.trimEnd());
  const lines = [
    `bench/proxy: nproc ${m.nproc} (${m.cpu}), Linux ${m.kernel}, node ${m.node}, ${m.nginx}, http-proxy ${m.httpProxy}`,
    p.pinned
      ? `pinned with taskset: load generator on CPU ${p.load}, proxies on CPU ${p.proxy}, upstream on CPU ${p.upstream}`
      : `not pinned (${p.why})`,
    `${r.runs} runs, targets interleaved; median (min–max) of the runs' values; ${num(m.busyCoresBefore, 2)} cores busy before the runs`,
    "",
    `small GET (${L.smallBytes} B): req/s at ${L.connections} connections (${L.warmupSeconds} s warm-up + ${L.seconds} s), latency at 1 connection (${L.latencySeconds} s)`,
    `${"".padEnd(19)}${"req/s".padEnd(24)}${"p50 µs @1".padEnd(20)}${"p99 µs @1".padEnd(22)}${"added p50 µs".padEnd(22)}added p99 µs`,
    ...rows(
      (x, name) =>
        `${cell(x.rps, 0, 24)}${cell(x.p50Us, 0, 20)}${cell(x.p99Us, 0, 22)}${name === "direct" ? "".padEnd(22) : signed(x.addedP50Us, 0, 22)}${name === "direct" ? "" : signed(x.addedP99Us, 0, 22)}`,
    ),
    "",
    `CPU during the req/s runs, in cores (of ${m.nproc}), and CPU µs per request (at 32 connections, and the proxy's at 1)`,
    `${"".padEnd(19)}${"proxy".padEnd(20)}${"upstream".padEnd(20)}${"load generator".padEnd(20)}${"everything else".padEnd(20)}${"proxy µs/req".padEnd(22)}${"upstream µs/req".padEnd(20)}proxy µs/req @1`,
    ...rows(
      (x, name) =>
        `${name === "direct" ? "-".padEnd(20) : cell(x.cores.proxy, 2, 20)}${cell(x.cores.upstream, 2, 20)}${cell(x.cores.load, 2, 20)}${cell(x.cores.other, 2, 20)}${name === "direct" ? "-".padEnd(22) : cell(x.proxyCpuUsPerRequest, 1, 22)}${cell(x.upstreamCpuUsPerRequest, 1, 20)}${name === "direct" ? "-" : cell(x.latencyProxyCpuUsPerRequest, 0, 0)}`,
    ),
    "",
    `transfers, ${L.transfers} each per run (median per run), and SSE first-event latency (${L.sseCount} per run)`,
    `${"".padEnd(19)}${"16 MiB GET ms".padEnd(22)}${"MiB/s".padEnd(8)}${"8 MiB chunked POST ms".padEnd(24)}${"MiB/s".padEnd(8)}SSE first event ms`,
    ...rows(
      (x) =>
        `${cell(x.downloadMs, 1, 22)}${num(x.downloadMiBps, 0).padEnd(8)}${cell(x.uploadMs, 1, 24)}${num(x.uploadMiBps, 0).padEnd(8)}${cell(x.sseFirstMs, 2, 22)}${x.sseBuffered > 0 ? `${x.sseBuffered} buffered` : ""}`,
    ),
    "",
    "CPU ms per transfer (proxy / upstream / load generator)",
    `${"".padEnd(19)}${"16 MiB GET".padEnd(24)}8 MiB chunked POST`,
    ...rows((x, name) => {
      const three = (c) =>
        `${name === "direct" ? "-" : num(c.proxy.median, 1)} / ${num(c.upstream.median, 1)} / ${num(c.load.median, 1)}`;
      return `${three(x.downloadCpuMs).padEnd(24)}${three(x.uploadCpuMs)}`;
    }),
    "",
    "bottle-cred-proxy against the others (medians):",
    `  req/s          ${num(r.ratios.rpsVsNginx, 2)}× nginx, ${num(r.ratios.rpsVsHttpProxy, 2)}× http-proxy`,
    `  proxy CPU/req  ${num(r.ratios.cpuVsNginx, 2)}× nginx's, ${num(r.ratios.cpuVsHttpProxy, 2)}× http-proxy's`,
    `  16 MiB GET     ${num(r.ratios.downloadVsNginx, 2)}× nginx's MiB/s, ${num(r.ratios.downloadVsHttpProxy, 2)}× http-proxy's`,
    `  8 MiB POST     ${num(r.ratios.uploadVsNginx, 2)}× nginx's MiB/s`,
    `  node floor     ${num(r.ratios.rpsVsFloor, 2)}× its req/s, +${num(r.ratios.cpuOverFloorUs, 1)} µs CPU/req, ${num(r.ratios.downloadVsFloor, 2)}× its 16 MiB MiB/s (the floor itself: ${num(r.ratios.floorRpsVsNginx, 2)}× nginx's req/s, ${num(r.ratios.floorDownloadVsNginx, 2)}× nginx's MiB/s)`,
    `  upstream saw the uploads chunked: ${NAMES.map((n) => `${LABELS[n]} ${r.results[n].upstreamSawChunked ? "yes" : "no"}`).join(", ")}`,
  ];
  if (r.soak) {
    const k = r.soak;
    lines.push(
      "",
      `soak: ${k.rate} req/s for ${k.seconds} s through bottle-cred-proxy: ${k.answers}/${k.sent} answered, ${k.errors} errors, ${k.unanswered} unanswered after 10 s, p50 ${num(k.p50Us, 0)} µs, p99 ${num(k.p99Us, 0)} µs, max ${num(k.maxUs / 1000, 1)} ms, at most ${k.maxInFlight} in flight`,
      `  cores: bottle-cred-proxy ${num(k.cores.proxy, 2)}, load generator ${num(k.cores.load, 2)}, everything else ${num(Math.max(0, k.cores.other), 2)}`,
      `  VmRSS first ${num(k.firstMiB, 1)} MiB, last ${num(k.lastMiB, 1)} MiB, max ${num(k.maxMiB, 1)} MiB (anonymous ${num(k.firstAnonMiB, 1)} → ${num(k.lastAnonMiB, 1)} MiB); slope ${num(k.slopeMiBPerMin, 2)} MiB/min after ${k.warmupS} s`,
      `  average of s ${k.warmupS}–${k.warmupS + k.windowS}: ${num(k.firstWindowMiB, 1)} MiB; of the last ${k.windowS} s: ${num(k.lastWindowMiB, 1)} MiB (${k.growthMiB >= 0 ? "+" : ""}${num(k.growthMiB, 2)} MiB)`,
      `  the node floor, same soak: VmRSS first ${num(k.floor.firstMiB, 1)} MiB, last ${num(k.floor.lastMiB, 1)} MiB, max ${num(k.floor.maxMiB, 1)} MiB; ${k.floor.answers}/${k.floor.sent} answered, p50 ${num(k.floor.p50Us, 0)} µs`,
    );
  }
  lines.push(
    "",
    `peak RSS (VmHWM) over the bench: bottle-cred-proxy ${num(r.peakRssMiB.cred, 1)} MiB, nginx ${num(r.peakRssMiB.nginx, 1)} MiB (worker), http-proxy ${num(r.peakRssMiB.httpProxy, 1)} MiB, node floor ${num(r.peakRssMiB.floor, 1)} MiB, upstream ${num(r.peakRssMiB.upstream, 1)} MiB`,
    `bottle-cred-proxy request log: ${r.credLog.requests} lines, by status ${JSON.stringify(r.credLog.statuses)}, ${r.credLog.aborted} aborted, longest ${r.credLog.maxDurationMs} ms`,
  );
  if (r.profile) {
    const item = (x) => `  ${num(x.pct, 1).padStart(5)} %  ${num(x.us, 1).padStart(8)} µs  `;
    const section = (pr) => [
      `${num(pr.busyMs / 1000, 2)} s not idle for ${pr.requests} requests = ${num(pr.busyUsPerRequest, 1)} µs per request; % of the time not idle, µs per request:`,
      "self time by area:",
      ...pr.areas.map((a) => `${item(a)}${a.area}`),
      "top functions by self time:",
      ...pr.top.map((f) => `${item(f)}${f.name}  ${f.where}`),
      "top functions of @bottle/*, undici and pino by inclusive time:",
      ...pr.inclusive.map((f) => `${item(f)}${f.name}  ${f.where}`),
    ];
    const { rps, download } = r.profile;
    lines.push(
      "",
      `CPU profile of bottle-cred-proxy under --cpu-prof, one req/s run: ${Math.round(rps.result.perSecond)} req/s, ${num(rps.result.cores.proxy, 2)} cores`,
      ...section(rps),
      "",
      `CPU profile of bottle-cred-proxy under --cpu-prof, ${r.load.transfers} downloads of 16 MiB (after one not counted): median ${num(median(download.result.ms), 1)} ms each`,
      ...section(download),
    );
  }
  lines.push(
    "",
    "targets:",
    ...r.targets.map((x) => `  ${pass(x.pass)}  ${x.name.padEnd(44)} ${x.measured}`),
  );
  return `${lines.join("\n")}\n`;
}

await runBench({ main, report, json: flags.json, workspace: ws, needs: NEEDS });
