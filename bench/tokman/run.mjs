#!/usr/bin/env node
import { closeSync, ftruncateSync, openSync, readFileSync } from "node:fs";
import { Agent, createServer, request } from "node:http";
import { join } from "node:path";
import {
  binArgv,
  createWorkspace,
  parseBenchArgs,
  progress,
  runBench,
  serveBenchGitHubApp,
  TEST_UTILS,
} from "../harness.mjs";
import { collectCpuProfile, summariseProfile } from "../profile.mjs";
import { serveBenchServer } from "../servers.mjs";
import { forEachLine, latencyLog, machineBusySeconds, machineInfo, summarize } from "../stats.mjs";

const ROOT = join(import.meta.dirname, "../..");
const TOKMAN_CLI = join(ROOT, "packages/tokman/dist/cli.js");
/** What the bench runs, checked before it starts. */
const NEEDS = {
  files: [TOKMAN_CLI, TEST_UTILS],
  hint: "run `pnpm --filter @bottle/tokman... build` first",
};
const HOST = "127.0.0.1"; // loopback only, never `localhost`
const PATH_ASKED = "/api/acme/api";
const CALLERS = 100;
const WARMUP_S = 1;
const TARGET_PER_S = 10_000;
const PROFILE_TOP = 20;

const USAGE = `usage: node bench/tokman/run.mjs [--runs N] [--seconds N] [--json] [--profile F]

  --runs N      measured runs per target, tokman and the floor interleaved (default 3)
  --seconds N   measured seconds per run, after ${WARMUP_S} s of warm-up (default 5)
  --json        machine-readable results on stdout
  --profile F   run tokman and the floor under \`node --cpu-prof\`, keep tokman's profile
                as F and the floor's as F.floor.cpuprofile (for Chrome DevTools), and
                summarise where their time goes; the figures then include the profiler
`;
const { flags, integers } = parseBenchArgs(USAGE, {
  options: {
    seconds: { type: "string", default: "5" },
    profile: { type: "string" },
    // Internal: the load generator and the floor, each in its own process.
    load: { type: "string" },
    floor: { type: "boolean", default: false },
    "server-pid": { type: "string" },
    "clk-tck": { type: "string", default: "100" },
  },
  integers: { seconds: [1, 600] },
});
const { runs: RUNS, seconds: SECONDS } = integers;

// ---------------------------------------------------------------------------------------------
// Child mode 1: the floor. node:http answering GET /api/acme/api with the body and headers
// tokman answers, after comparing the Authorization header with a fixed string; nothing else.
// The parent passes the expected header and the body in the environment, never in argv.

if (flags.floor) {
  const expected = process.env.BENCH_FLOOR_AUTHORIZATION ?? "";
  const body = Buffer.from(process.env.BENCH_FLOOR_BODY ?? "", "utf8");
  const notFound = Buffer.from('{"error":"no such endpoint"}\n');
  const unauthenticated = Buffer.from('{"error":"a valid caller key is required"}\n');
  const send = (res, status, payload) => {
    res.writeHead(status, {
      "cache-control": "no-store",
      "content-type": "application/json",
      "content-length": payload.length,
    });
    res.end(payload);
  };
  // The same server options as tokman's (keep-alive and request timeouts).
  const server = createServer(
    { headersTimeout: 10_000, requestTimeout: 30_000, keepAliveTimeout: 5_000 },
    (req, res) => {
      if (req.method !== "GET" || req.url !== PATH_ASKED) return send(res, 404, notFound);
      if (req.headers.authorization !== expected) return send(res, 401, unauthenticated);
      send(res, 200, body);
    },
  );
  serveBenchServer(server, HOST);
} else if (flags.load !== undefined) {
  // -------------------------------------------------------------------------------------------
  // Child mode 2: the load. CALLERS callers, each sending its next request when its answer is
  // complete, over one keep-alive agent; the first WARMUP_S seconds are not counted. Prints one
  // JSON line on stdout.
  process.stdout.write(`${JSON.stringify(await load(flags.load))}\n`);
} else {
  await orchestrate();
}

/** CPU seconds in user and in kernel mode (every thread) of a process so far, /proc/PID/stat. */
function cpuSecondsOf(pid, clkTck) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The fields after `comm` (which may hold spaces): utime and stime are the 12th and 13th.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { user: Number(fields[11]) / clkTck, sys: Number(fields[12]) / clkTck };
  } catch {
    return { user: Number.NaN, sys: Number.NaN };
  }
}

async function load(url) {
  const key = process.env.BENCH_TOKMAN_KEY ?? "";
  const serverPid = Number(flags["server-pid"]);
  const clkTck = Number(flags["clk-tck"]);
  const target = new URL(url);
  const agent = new Agent({ keepAlive: true, maxSockets: CALLERS });
  const options = {
    host: target.hostname,
    port: Number(target.port),
    path: PATH_ASKED,
    method: "GET",
    agent,
    headers: { authorization: `Bearer ${key}` },
  };
  const started = performance.now();
  const windowStart = started + WARMUP_S * 1000;
  const windowEnd = windowStart + SECONDS * 1000;
  const latencies = latencyLog();
  let errors = 0;
  let all200 = 0;
  let requests = 0; // every request answered, warm-up included
  let bodyBytes = -1;
  const statuses = {};
  const failures = {};

  // CPU of this process and of the server, over the measured window only.
  const cpu = {};
  setTimeout(() => {
    cpu.load0 = process.cpuUsage();
    cpu.server0 = cpuSecondsOf(serverPid, clkTck);
    cpu.machine0 = machineBusySeconds(clkTck);
    cpu.t0 = performance.now();
  }, windowStart - performance.now());
  setTimeout(() => {
    const used = process.cpuUsage(cpu.load0);
    cpu.loadS = (used.user + used.system) / 1e6;
    const server = cpuSecondsOf(serverPid, clkTck);
    cpu.serverUserS = server.user - cpu.server0.user;
    cpu.serverSysS = server.sys - cpu.server0.sys;
    cpu.serverS = cpu.serverUserS + cpu.serverSysS;
    cpu.machineS = machineBusySeconds(clkTck) - cpu.machine0;
    cpu.wallS = (performance.now() - cpu.t0) / 1000;
  }, windowEnd - performance.now());

  const record = (sent, status, bytes, failure) => {
    const done = performance.now();
    if (status !== 0) requests++;
    if (status === 200) {
      all200++;
      if (bodyBytes === -1) bodyBytes = bytes;
      else if (bytes !== bodyBytes) bodyBytes = Number.NaN; // answers differ in size
    }
    if (done < windowStart || done >= windowEnd) return;
    if (status === 200) latencies.add(done - sent);
    else {
      errors++;
      if (failure) failures[failure] = (failures[failure] ?? 0) + 1;
      else statuses[status] = (statuses[status] ?? 0) + 1;
    }
  };

  const caller = (resolve) => {
    if (performance.now() >= windowEnd) return resolve();
    const sent = performance.now();
    let finished = false;
    const finish = (status, bytes, failure) => {
      if (finished) return;
      finished = true;
      record(sent, status, bytes, failure);
      if (failure) setTimeout(() => caller(resolve), 10);
      else caller(resolve);
    };
    const req = request(options, (res) => {
      let bytes = 0;
      res.on("data", (chunk) => {
        bytes += chunk.length;
      });
      res.on("end", () => finish(res.statusCode, bytes));
      res.on("error", (error) => finish(0, bytes, error.code ?? error.message));
    });
    req.on("error", (error) => finish(0, 0, error.code ?? error.message));
    req.end();
  };
  await Promise.all(Array.from({ length: CALLERS }, () => new Promise(caller)));
  agent.destroy();
  const measured = latencies.sorted();
  const answers = latencies.count;
  const at = (q) =>
    measured.length === 0
      ? Number.NaN
      : measured[Math.min(measured.length - 1, Math.floor(q * measured.length))];
  return {
    answers,
    errors,
    seconds: SECONDS,
    perSecond: answers / SECONDS,
    p50Ms: at(0.5),
    p99Ms: at(0.99),
    maxMs: measured.length === 0 ? Number.NaN : measured[measured.length - 1],
    statuses,
    failures,
    all200,
    requests,
    bodyBytes,
    cpu: {
      serverCores: cpu.serverS / cpu.wallS,
      serverSysCores: cpu.serverSysS / cpu.wallS,
      loadCores: cpu.loadS / cpu.wallS,
      // Everything else that ran meanwhile: other processes, and kernel time not charged to a
      // process (loopback softirqs handled outside the two processes' own time slices).
      otherCores: (cpu.machineS - cpu.serverS - cpu.loadS) / cpu.wallS,
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The bench itself.

async function orchestrate() {
  const ws = createWorkspace("tokman");
  const { work, HOME, PATH, run, must, startListening } = ws;
  const env = { PATH, HOME };
  const closers = [];
  // The fake GitHub lives in this process: cleanup closes it too (also on a signal).
  const workspace = {
    ...ws,
    cleanup: async () => {
      for (const close of closers.splice(0)) await close().catch(() => {});
      return ws.cleanup();
    },
  };

  /** One GET with a fresh connection: status, headers and body. */
  function get(url, path, authorization) {
    return new Promise((resolve, reject) => {
      const req = request(`${url}${path}`, {
        agent: false,
        headers: authorization === undefined ? {} : { authorization },
      });
      req.on("response", (res) => {
        const chunks = [];
        res.on("data", (chunk) => chunks.push(chunk));
        res.on("end", () =>
          resolve({
            status: res.statusCode,
            headers: res.headers,
            body: Buffer.concat(chunks).toString("utf8"),
          }),
        );
        res.on("error", reject);
      });
      req.on("error", reject);
      req.end();
    });
  }

  /** Starts a Node server child and waits for its `listening` record (10 s at most). */
  const startServer = (name, argv, env, logFile) =>
    startListening(name, process.execPath, argv, { env, logFile, timeoutMs: 10_000 });

  async function main() {
    progress(`work dir ${work}`);

    // 1. The fake GitHub, in this process, with the real clock; tokman's configuration (app
    // key, a caller key) for the built CLI.
    const app = await serveBenchGitHubApp(work);
    const { fake } = app;
    closers.push(() => app.close());
    progress(`fake GitHub at ${fake.url}`);

    // 2. tokman: the built CLI.
    const authorization = `Bearer ${app.key}`;
    const config = app.configFile;
    const profiling = flags.profile !== undefined;
    const cpuProf = (name) =>
      profiling ? ["--cpu-prof", "--cpu-prof-dir", join(work, `cpu-profile-${name}`)] : [];
    // Its log (one audit line per answer) goes to a file, not a pipe: nothing in this process
    // has to keep up with it, and the lines are counted after each run.
    const tokmanLog = join(work, "tokman.log");
    const tokman = await startServer(
      "bottle-tokman",
      [...cpuProf("tokman"), ...binArgv(TOKMAN_CLI), "serve", "--config", config, "--port", "0"],
      env,
      tokmanLog,
    );
    progress(`tokman at ${tokman.url}${profiling ? " (under --cpu-prof)" : ""}`);

    // The warm-up request: the only mint of the whole bench.
    const first = await get(tokman.url, PATH_ASKED, authorization);
    if (first.status !== 200) throw new Error(`tokman answered ${first.status}: ${first.body}`);
    if (fake.mints !== 1)
      throw new Error(`expected 1 mint after the first answer, got ${fake.mints}`);
    const second = await get(tokman.url, PATH_ASKED, authorization);
    if (second.body !== first.body)
      throw new Error("tokman's second answer differs from its first");

    // 3. The floor, answering the same body with the same headers.
    const floor = await startServer(
      "the floor",
      [...cpuProf("floor"), import.meta.filename, "--floor"],
      { ...env, BENCH_FLOOR_AUTHORIZATION: authorization, BENCH_FLOOR_BODY: first.body },
      join(work, "floor.log"),
    );
    const floorAnswer = await get(floor.url, PATH_ASKED, authorization);
    const wrongKey = await get(floor.url, PATH_ASKED, "Bearer btk_wrong");
    const same = ["content-type", "cache-control", "content-length"].every(
      (name) => floorAnswer.headers[name] === first.headers[name],
    );
    if (floorAnswer.status !== 200 || floorAnswer.body !== first.body || !same) {
      throw new Error(
        `the floor does not answer what tokman answers: ${floorAnswer.status} ${JSON.stringify(floorAnswer.headers)}`,
      );
    }
    if (wrongKey.status !== 401)
      throw new Error(`the floor answered ${wrongKey.status} to a wrong key`);
    progress(`floor at ${floor.url}`);

    // 4. The runs, interleaved (the order alternates), each load in its own process.
    const clkTck = Number((await run("getconf", ["CLK_TCK"], { env })).stdout.trim()) || 100;
    const servers = { tokman, floor };
    const results = { tokman: [], floor: [] };
    let auditLines = 0;
    const countAudit = () => {
      // The log is opened O_APPEND, so truncating it while tokman writes is safe.
      const fd = openSync(tokmanLog, "r+");
      let count = 0;
      let fresh = 0;
      forEachLine(fd, (line) => {
        if (!line.includes('"audit":"issued"')) return;
        count++;
        if (!line.includes('"cached":true')) fresh++;
      });
      ftruncateSync(fd, 0);
      closeSync(fd);
      return { count, fresh };
    };
    const before = countAudit();
    if (before.count !== 2 || before.fresh !== 1) {
      throw new Error(`expected 2 audit lines (1 minted) so far, got ${JSON.stringify(before)}`);
    }
    for (let i = 0; i < RUNS; i++) {
      const order = i % 2 === 0 ? ["tokman", "floor"] : ["floor", "tokman"];
      for (const name of order) {
        progress(`run ${i + 1}/${RUNS}: ${name}, ${CALLERS} callers, ${WARMUP_S} + ${SECONDS} s`);
        const argv = [
          import.meta.filename,
          "--load",
          servers[name].url,
          "--seconds",
          String(SECONDS),
        ];
        argv.push("--server-pid", String(servers[name].child.pid), "--clk-tck", String(clkTck));
        const out = await must(process.execPath, argv, {
          env: { ...env, BENCH_TOKMAN_KEY: app.key },
          timeoutMs: (SECONDS + WARMUP_S + 60) * 1000,
        });
        const result = JSON.parse(out.stdout.trim().split("\n").at(-1));
        if (result.bodyBytes !== Buffer.byteLength(first.body)) {
          throw new Error(
            `${name} answered ${result.bodyBytes} body bytes, expected ${Buffer.byteLength(first.body)}`,
          );
        }
        if (name === "tokman") {
          const audit = countAudit();
          if (audit.fresh !== 0 || audit.count !== result.all200) {
            throw new Error(
              `tokman wrote ${audit.count} audit lines (${audit.fresh} not cached) for ${result.all200} answers`,
            );
          }
          auditLines += audit.count;
        }
        progress(
          `  ${Math.round(result.perSecond)} answers/s, p50 ${result.p50Ms.toFixed(2)} ms, p99 ${result.p99Ms.toFixed(2)} ms, ${result.errors} errors`,
        );
        results[name].push(result);
      }
    }

    // 5. tokman's own counters, then the mint count, which must still be 1.
    const metrics = (await get(tokman.url, "/metrics")).body;
    const counter = (name) => Number(new RegExp(`^${name} (\\d+)$`, "m").exec(metrics)?.[1]);
    const tokmanMetrics = {
      mints: counter("tokman_mints_total"),
      cacheHits: counter("tokman_cache_hits_total"),
    };
    const mints = fake.mints;
    if (mints !== 1 || tokmanMetrics.mints !== 1) {
      throw new Error(
        `expected exactly 1 mint, the fake saw ${mints} and tokman counted ${tokmanMetrics.mints}: the bench measured mints, not cached answers`,
      );
    }

    /** Stops a profiled server (SIGTERM: it closes and exits), keeps and summarises its profile. */
    async function profileOf(name, server, requests, out) {
      const dir = join(work, `cpu-profile-${name}`);
      const cpuProfile = await collectCpuProfile(name, server.child, dir, out, 10_000);
      return summariseProfile(cpuProfile, requests, { top: PROFILE_TOP });
    }
    let profile = null;
    if (profiling) {
      const floorRequests = results.floor.reduce((n, r) => n + r.requests, 0) + 2;
      profile = {
        tokman: await profileOf("tokman", tokman, auditLines + before.count + 1, flags.profile),
        floor: await profileOf(
          "floor",
          floor,
          floorRequests,
          `${flags.profile.replace(/\.cpuprofile$/, "")}.floor.cpuprofile`,
        ),
      };
    }

    const summary = (name) => {
      const rs = results[name];
      return {
        perSecond: summarize(rs.map((r) => r.perSecond)),
        p50Ms: summarize(rs.map((r) => r.p50Ms)),
        p99Ms: summarize(rs.map((r) => r.p99Ms)),
        maxMs: summarize(rs.map((r) => r.maxMs)),
        errors: rs.reduce((n, r) => n + r.errors, 0),
        serverCores: summarize(rs.map((r) => r.cpu.serverCores)),
        serverSysShare: summarize(rs.map((r) => r.cpu.serverSysCores / r.cpu.serverCores)),
        loadCores: summarize(rs.map((r) => r.cpu.loadCores)),
        otherCores: summarize(rs.map((r) => r.cpu.otherCores)),
        cpuPerAnswerUs: summarize(rs.map((r) => (1e6 * r.cpu.serverCores) / r.perSecond)),
        runs: rs,
      };
    };
    const t = summary("tokman");
    const f = summary("floor");
    const ratio = {
      perSecond: t.perSecond.median / f.perSecond.median,
      p50Ms: t.p50Ms.median / f.p50Ms.median,
      p99Ms: t.p99Ms.median / f.p99Ms.median,
    };
    return {
      machine: machineInfo(),
      load: {
        callers: CALLERS,
        warmupSeconds: WARMUP_S,
        seconds: SECONDS,
        path: PATH_ASKED,
        bodyBytes: Buffer.byteLength(first.body),
      },
      runs: RUNS,
      profiled: flags.profile !== undefined,
      results: { tokman: t, floor: f },
      ratio,
      mints,
      tokmanMetrics,
      auditLines: auditLines + before.count,
      profile,
      targets: [
        {
          name: `tokman ≥ ${TARGET_PER_S.toLocaleString("en")} answers/s (median)`,
          pass: t.perSecond.median >= TARGET_PER_S,
          measured: `${Math.round(t.perSecond.median)} answers/s`,
        },
        {
          name: "no failed request (tokman)",
          pass: t.errors === 0,
          measured: `${t.errors} errors`,
        },
        {
          name: "exactly one mint for the whole bench",
          pass: mints === 1,
          measured: String(mints),
        },
      ],
    };
  }

  function report(r) {
    const pass = (ok) => (ok ? "PASS" : "MISS");
    const num = (x, digits) => x.toFixed(digits);
    const cell = (s, digits, width = 22) =>
      `${num(s.median, digits)} (${num(s.min, digits)}–${num(s.max, digits)})`.padEnd(width);
    const m = r.machine;
    // A difference of tick counters: a few ticks below zero are rounding, shown as 0.
    const atLeastZero = (x) => ({
      median: Math.max(0, x.median),
      min: Math.max(0, x.min),
      max: Math.max(0, x.max),
    });
    const row = (label, s) =>
      `${label.padEnd(18)}${cell(s.perSecond, 0, 24)}${cell(s.p50Ms, 2)}${cell(s.p99Ms, 2, 26)}${cell(s.maxMs, 1, 24)}${s.errors}`;
    const cpuRow = (label, s) =>
      `${label.padEnd(18)}${cell(s.serverCores, 2)}${cell(s.cpuPerAnswerUs, 0)}${`${num(100 * s.serverSysShare.median, 0)} %`.padEnd(17)}${cell(s.loadCores, 2)}${cell(atLeastZero(s.otherCores), 2).trimEnd()}`;
    const { tokman, floor } = r.results;
    const lines = [
      `bench/tokman: nproc ${m.nproc} (${m.cpu}), Linux ${m.kernel}, node ${m.node}`,
      `load: ${r.load.callers} callers on keep-alive, GET ${r.load.path} (body ${r.load.bodyBytes} B), ${r.load.warmupSeconds} s warm-up + ${r.load.seconds} s measured`,
      `${r.runs} runs each, tokman and the floor interleaved; median (min–max)${r.profiled ? "; both servers UNDER THE PROFILER" : ""}`,
      "",
      `${"".padEnd(18)}${"answers/s".padEnd(24)}${"p50 ms".padEnd(22)}${"p99 ms".padEnd(26)}${"max ms".padEnd(24)}errors`,
      row("tokman", tokman),
      row("floor (node:http)", floor),
      `${"tokman/floor".padEnd(18)}${`${num(r.ratio.perSecond, 2)}×`.padEnd(24)}${`${num(r.ratio.p50Ms, 2)}×`.padEnd(22)}${`${num(r.ratio.p99Ms, 2)}×`}`,
      "",
      `CPU during the measured seconds, in cores (of ${m.nproc}):`,
      `${"".padEnd(18)}${"server".padEnd(22)}${"server µs/answer".padEnd(22)}${"of it in kernel".padEnd(17)}${"load generator".padEnd(22)}everything else`,
      cpuRow("tokman", tokman),
      cpuRow("floor (node:http)", floor),
      "",
      `mints: ${r.mints} (fake GitHub); tokman /metrics: ${r.tokmanMetrics.mints} mint, ${r.tokmanMetrics.cacheHits} cache hits; ${r.auditLines} audit lines, one per answer`,
    ];
    if (r.profile) {
      const { tokman: tp, floor: fp } = r.profile;
      const item = (x) => `  ${num(x.pct, 1).padStart(5)} %  ${num(x.us, 1).padStart(6)} µs  `;
      lines.push(
        "",
        `CPU profiles (node --cpu-prof; % of the time not idle, and µs per request served):`,
        `tokman: ${num(tp.busyMs / 1000, 2)} s not idle for ${tp.requests} requests = ${num(tp.busyUsPerRequest, 1)} µs/request; floor: ${num(fp.busyMs / 1000, 2)} s for ${fp.requests} = ${num(fp.busyUsPerRequest, 1)} µs/request`,
        "tokman, self time by area:",
        ...tp.areas.map((a) => `${item(a)}${a.area}`),
        `tokman, top ${PROFILE_TOP} functions by self time:`,
        ...tp.top.map((f) => `${item(f)}${f.name}  ${f.where}`),
        `tokman, top ${PROFILE_TOP} functions of tokman, @bottle/* and pino by inclusive time:`,
        ...tp.inclusive.map((f) => `${item(f)}${f.name}  ${f.where}`),
        "floor, top 10 functions by self time:",
        ...fp.top.slice(0, 10).map((f) => `${item(f)}${f.name}  ${f.where}`),
      );
    }
    lines.push(
      "",
      "targets:",
      ...r.targets.map((x) => `  ${pass(x.pass)}  ${x.name.padEnd(40)} ${x.measured}`),
    );
    return `${lines.join("\n")}\n`;
  }

  await runBench({ main, report, json: flags.json, workspace, needs: NEEDS });
}

// ---------------------------------------------------------------------------------------------
// Statistics and the CPU profile.
