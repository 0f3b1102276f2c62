// The load generator: one process per measurement, node:http with a keep-alive Agent. The parent
// passes what to do as JSON in BENCH_PROXY_LOAD (never in argv: the direct target's credential
// is in it) and reads one JSON line from stdout.
//
//   closed    `connections` callers, each sending its next GET /small when its answer is
//             complete; `warmupS` not counted, then `seconds` measured (req/s, latencies, CPU)
//   download  GET /download `count` times in a row (after one not counted), each timed end to end
//   upload    POST /upload with 8 MiB written in 64 KiB chunks, no Content-Length (chunked)
//   sse       GET /sse: time from sending the request to the first event's bytes
//   soak      GET /small at a fixed rate (open loop) for `seconds`, sampling VmRSS of `rssPid`
//             every second
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { latencyLog, machineBusySeconds } from "../stats.mjs";
import { DOWNLOAD_BYTES, SMALL_BODY } from "./upstream.mjs";

const MiB = 1024 * 1024;
export const UPLOAD_BYTES = 8 * MiB;
export const UPLOAD_CHUNK = 64 * 1024;

if (process.argv[1] === import.meta.filename) {
  const spec = JSON.parse(process.env.BENCH_PROXY_LOAD ?? "{}");
  const modes = { closed, download, upload, sse, soak };
  if (!(spec.mode in modes)) throw new Error(`unknown load mode ${spec.mode}`);
  const result = await modes[spec.mode](spec);
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

function base(spec, agent) {
  const url = new URL(spec.url);
  return {
    host: url.hostname,
    port: Number(url.port),
    agent,
    headers: spec.authorization ? { authorization: spec.authorization } : {},
  };
}

/** CLOCK_MONOTONIC in µs: the clock of V8's CPU profiles, to cut a profile to a window. */
function monotonicUs() {
  return Number(process.hrtime.bigint() / 1000n);
}

/** Quantile of a sorted typed array (nearest rank below). */
function quantile(sorted, q) {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** CPU seconds (user + kernel, every thread) of the processes in `pids`, from /proc/PID/stat. */
export function cpuSecondsOf(pids, clkTck) {
  let total = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      total += (Number(fields[11]) + Number(fields[12])) / clkTck;
    } catch {
      // gone
    }
  }
  return total;
}

/** VmRSS and RssAnon of a process in MiB, or null once it is gone. */
export function rssOf(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kib = (key) => Number(new RegExp(`^${key}:\\s+(\\d+)`, "m").exec(status)?.[1] ?? 0);
    return { rss: kib("VmRSS") / 1024, anon: kib("RssAnon") / 1024, hwm: kib("VmHWM") / 1024 };
  } catch {
    return null;
  }
}

/** Closed loop on GET /small: throughput at N connections, or latency at 1. */
async function closed(spec) {
  const agent = new Agent({ keepAlive: true, maxSockets: spec.connections });
  const options = { ...base(spec, agent), method: "GET", path: `${spec.prefix}/small` };
  const started = performance.now();
  const windowStart = started + spec.warmupS * 1000;
  const windowEnd = windowStart + spec.seconds * 1000;
  const latencies = latencyLog(256 * 1024);
  let errors = 0;
  let wrongBodies = 0;
  const statuses = {};

  // CPU of this process and of each server group, over the measured window only.
  const groups = spec.cpu?.groups ?? {};
  const clkTck = spec.cpu?.clkTck ?? 100;
  const cpu = {};
  setTimeout(() => {
    cpu.load0 = process.cpuUsage();
    cpu.groups0 = Object.fromEntries(
      Object.entries(groups).map(([name, pids]) => [name, cpuSecondsOf(pids, clkTck)]),
    );
    cpu.machine0 = machineBusySeconds(clkTck);
    cpu.t0 = performance.now();
    cpu.fromUs = monotonicUs();
  }, windowStart - performance.now());
  // Awaited after the callers: on a busy machine the last answer can arrive before this timer.
  const windowClosed = new Promise((resolve) => setTimeout(resolve, windowEnd - performance.now()));
  const measured = windowClosed.then(() => {
    const wallS = (performance.now() - cpu.t0) / 1000;
    cpu.toUs = monotonicUs();
    const used = process.cpuUsage(cpu.load0);
    cpu.cores = { load: (used.user + used.system) / 1e6 / wallS };
    for (const [name, pids] of Object.entries(groups)) {
      cpu.cores[name] = (cpuSecondsOf(pids, clkTck) - cpu.groups0[name]) / wallS;
    }
    // Everything else: other processes, and kernel time charged to no process (softirqs).
    const machine = (machineBusySeconds(clkTck) - cpu.machine0) / wallS;
    cpu.cores.other = Object.values(cpu.cores).reduce((rest, cores) => rest - cores, machine);
  });

  const record = (sent, status, ok) => {
    const done = performance.now();
    if (done < windowStart || done >= windowEnd) return;
    if (status === 200 && ok) latencies.add(done - sent);
    else {
      errors++;
      if (status === 200) wrongBodies++;
      statuses[status] = (statuses[status] ?? 0) + 1;
    }
  };
  const caller = (resolve) => {
    if (performance.now() >= windowEnd) return resolve();
    const sent = performance.now();
    let finished = false;
    const finish = (status, ok) => {
      if (finished) return;
      finished = true;
      record(sent, status, ok);
      if (status === 0) setTimeout(() => caller(resolve), 10);
      else caller(resolve);
    };
    const req = request(options, (res) => {
      let bytes = 0;
      res.on("data", (chunk) => {
        bytes += chunk.length;
      });
      res.on("end", () => finish(res.statusCode, bytes === SMALL_BODY.length));
      res.on("error", () => finish(0, false));
    });
    req.on("error", () => finish(0, false));
    req.end();
  };
  await Promise.all(Array.from({ length: spec.connections }, () => new Promise(caller)));
  agent.destroy();
  await measured;
  const sorted = latencies.sorted();
  const answers = latencies.count;
  return {
    answers,
    errors,
    wrongBodies,
    statuses,
    perSecond: answers / spec.seconds,
    p50Us: 1000 * quantile(sorted, 0.5),
    p99Us: 1000 * quantile(sorted, 0.99),
    maxUs: 1000 * (sorted.at(-1) ?? Number.NaN),
    cores: cpu.cores,
    windowUs: [cpu.fromUs, cpu.toUs],
  };
}

/** One exchange: resolves with status, bytes, the first body byte's time and (if asked) the body. */
function exchange(options, { body, keep = false } = {}) {
  return new Promise((resolve, reject) => {
    const sent = performance.now();
    const req = request(options, (res) => {
      let bytes = 0;
      let first;
      const chunks = [];
      res.on("data", (chunk) => {
        if (first === undefined) {
          first = performance.now();
          if (keep === "first") chunks.push(chunk);
        }
        if (keep === true) chunks.push(chunk);
        bytes += chunk.length;
      });
      res.on("end", () =>
        resolve({
          status: res.statusCode,
          bytes,
          firstMs: first - sent,
          ms: performance.now() - sent,
          text: Buffer.concat(chunks).toString("utf8"),
        }),
      );
      res.on("error", reject);
    });
    req.on("error", reject);
    if (body === undefined) return req.end();
    (async () => {
      for (let at = 0; at < body.length; at += UPLOAD_CHUNK) {
        if (!req.write(body.subarray(at, at + UPLOAD_CHUNK))) await once(req, "drain");
      }
      req.end();
    })().catch(reject);
  });
}

/** CPU ms of this process and of each server group from `start()` to `stop()`. */
function cpuMeter(spec) {
  const groups = spec.cpu?.groups ?? {};
  const clkTck = spec.cpu?.clkTck ?? 100;
  let load0;
  let groups0;
  let fromUs;
  return {
    start() {
      fromUs = monotonicUs();
      load0 = process.cpuUsage();
      groups0 = Object.fromEntries(
        Object.entries(groups).map(([name, pids]) => [name, cpuSecondsOf(pids, clkTck)]),
      );
    },
    stop() {
      const used = process.cpuUsage(load0);
      const ms = { load: (used.user + used.system) / 1000 };
      for (const [name, pids] of Object.entries(groups)) {
        ms[name] = 1000 * (cpuSecondsOf(pids, clkTck) - groups0[name]);
      }
      return { ms, windowUs: [fromUs, monotonicUs()] };
    },
  };
}

/**
 * Runs `one()` once not counted, then `count` times; every result must pass `check`. Returns
 * the counted results and the CPU ms each process group used per counted run.
 */
async function repeat(spec, one, check) {
  const results = [];
  const meter = cpuMeter(spec);
  for (let i = 0; i <= spec.count; i++) {
    if (i === 1) meter.start();
    const result = await one();
    const problem = check(result);
    if (problem) throw new Error(`${problem} (status ${result.status})`);
    if (i > 0) results.push(result);
  }
  const { ms: total, windowUs } = meter.stop();
  const cpuMsEach = Object.fromEntries(
    Object.entries(total).map(([name, ms]) => [name, ms / spec.count]),
  );
  return { results, cpuMsEach, windowUs };
}

async function download(spec) {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const options = { ...base(spec, agent), method: "GET", path: `${spec.prefix}/download` };
  const { results, cpuMsEach, windowUs } = await repeat(
    spec,
    () => exchange(options),
    (r) => (r.status !== 200 || r.bytes !== DOWNLOAD_BYTES ? `got ${r.bytes} bytes` : null),
  );
  agent.destroy();
  return { ms: results.map((r) => r.ms), bytes: DOWNLOAD_BYTES, cpuMsEach, windowUs };
}

async function upload(spec) {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const body = randomBytes(UPLOAD_BYTES);
  const sha256 = createHash("sha256").update(body).digest("hex");
  // No Content-Length: node:http sends a POST body it does not know the length of chunked.
  const options = { ...base(spec, agent), method: "POST", path: `${spec.prefix}/upload` };
  let chunked = true;
  const { results, cpuMsEach } = await repeat(
    spec,
    () => exchange(options, { body, keep: true }),
    (r) => {
      if (r.status !== 200) return `upload answered: ${r.text.slice(0, 200)}`;
      const answer = JSON.parse(r.text);
      if (answer.bytes !== UPLOAD_BYTES || answer.sha256 !== sha256) {
        return `the upstream received ${answer.bytes} bytes with another sha256`;
      }
      chunked &&= answer.chunked;
      return null;
    },
  );
  agent.destroy();
  return {
    ms: results.map((r) => r.ms),
    bytes: UPLOAD_BYTES,
    upstreamSawChunked: chunked,
    cpuMsEach,
  };
}

async function sse(spec) {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const options = {
    ...base(spec, agent),
    method: "GET",
    path: `${spec.prefix}/sse`,
  };
  options.headers = { ...options.headers, accept: "text/event-stream" };
  const { results } = await repeat(
    spec,
    () => exchange(options, { keep: "first" }),
    (r) =>
      r.status !== 200 || !r.text.startsWith("event: first\n") || !r.text.endsWith("\n\n")
        ? `the first chunk was not the first event: ${JSON.stringify(r.text.slice(0, 60))}`
        : null,
  );
  agent.destroy();
  // The last event comes 25 ms after the first: a first chunk holding both means buffering.
  const buffered = results.filter((r) => r.text.includes("[DONE]")).length;
  return { firstMs: results.map((r) => r.firstMs), totalMs: results.map((r) => r.ms), buffered };
}

/** Open loop at `rate` req/s for `seconds`, sampling the RSS of `rssPid` once a second. */
async function soak(spec) {
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const options = { ...base(spec, agent), method: "GET", path: `${spec.prefix}/small` };
  const samples = [];
  const started = performance.now();
  const end = started + spec.seconds * 1000;
  const sample = () => {
    const memory = rssOf(spec.rssPid);
    if (memory) samples.push({ t: (performance.now() - started) / 1000, ...memory });
  };
  const clkTck = spec.clkTck ?? 100;
  const machine0 = machineBusySeconds(clkTck);
  const proxy0 = cpuSecondsOf([spec.rssPid], clkTck);
  const load0 = process.cpuUsage();
  sample();
  const sampler = setInterval(sample, 1000);
  const latencies = latencyLog();
  let sent = 0;
  let errors = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  let settle;
  const settled = new Promise((resolve) => {
    settle = resolve;
  });
  const one = () => {
    const t0 = performance.now();
    sent++;
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    let finished = false;
    const finish = (ok) => {
      if (finished) return;
      finished = true;
      inFlight--;
      if (!ok) errors++;
      else latencies.add(performance.now() - t0);
      if (inFlight === 0 && performance.now() >= end) settle();
    };
    const req = request(options, (res) => {
      let bytes = 0;
      res.on("data", (chunk) => {
        bytes += chunk.length;
      });
      res.on("end", () => finish(res.statusCode === 200 && bytes === SMALL_BODY.length));
      res.on("error", () => finish(false));
    });
    req.on("error", () => finish(false));
    req.end();
  };
  await new Promise((resolve) => {
    const tick = setInterval(() => {
      const now = Math.min(performance.now(), end);
      const due = Math.floor(((now - started) / 1000) * spec.rate);
      while (sent < due) one();
      if (now >= end) {
        clearInterval(tick);
        resolve();
      }
    }, 2);
  });
  clearInterval(sampler);
  sample();
  const wallS = (performance.now() - started) / 1000;
  const used = process.cpuUsage(load0);
  const cores = {
    proxy: (cpuSecondsOf([spec.rssPid], clkTck) - proxy0) / wallS,
    load: (used.user + used.system) / 1e6 / wallS,
  };
  cores.other = (machineBusySeconds(clkTck) - machine0) / wallS - cores.proxy - cores.load;
  if (inFlight > 0) await Promise.race([settled, new Promise((r) => setTimeout(r, 10_000))]);
  const unanswered = inFlight;
  agent.destroy();
  const sorted = latencies.sorted();
  const answers = latencies.count;
  return {
    seconds: spec.seconds,
    rate: spec.rate,
    sent,
    answers,
    errors,
    unanswered,
    maxInFlight,
    cores,
    p50Us: 1000 * quantile(sorted, 0.5),
    p99Us: 1000 * quantile(sorted, 0.99),
    maxUs: 1000 * (sorted.at(-1) ?? Number.NaN),
    samples,
  };
}
