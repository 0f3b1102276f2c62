// 2–4. Two bottles of the same manifest at once: `bottle up bench-host`, whose gate the host
// reaches through a TCP forwarder with a token of its own, and `bottle run bench-in`, whose
// agent (a shell loop) takes commands on stdin (clone, fetch, quit) and answers on stdout. The
// sidecars' RSS is read at rest and after clones; clones and request rounds alternate sides.
import { closeSync, openSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { descendants, progress } from "../harness.mjs";
import { machineBusySeconds, median } from "../stats.mjs";
import { checked, cpuOf, memoryOf, PATHS, PROJECT, quantile, round1, stats } from "./context.mjs";

/** Processes per side for the requests, alternating; each runs this many rounds. */
export const FETCH = { invocations: 3, rounds: 5 };

/** The agent: a shell loop in the sandbox. Clones are timed with date around git clone. */
const AGENT_LOOP = `url=$1
echo ready
while read -r cmd a b; do
  case $cmd in
    clone)
      rm -rf /workspace/clone
      t0=$(date +%s%N)
      if git clone -q "$url" /workspace/clone; then
        t1=$(date +%s%N); echo "clone $(( (t1 - t0) / 1000 ))"
      else echo "error clone"; fi ;;
    fetch) echo "fetch $(node /workspace/fetch-many.mjs "$ANTHROPIC_BASE_URL/small" "$a" "$b" || echo error)" ;;
    quit) exit 0 ;;
    *) echo "error unknown command $cmd" ;;
  esac
done`;

/** The same clone on the host, timed the same way (µs on stdout). */
const HOST_CLONE = `rm -rf "$2"
t0=$(date +%s%N)
git clone -q "$1" "$2" || exit 1
t1=$(date +%s%N); echo $(( (t1 - t0) / 1000 ))`;

/** Lines of a stream one at a time: `next(timeoutMs)` resolves with the next line. */
function lineReader(stream, describe) {
  const lines = [];
  const waiters = [];
  let pending = "";
  let ended = false;
  const fail = () => new Error(`the agent ended:\n${describe()}`);
  stream.setEncoding("utf8").on("data", (chunk) => {
    const parts = (pending + chunk).split("\n");
    pending = parts.pop() ?? "";
    lines.push(...parts);
    while (waiters.length > 0 && lines.length > 0) waiters.shift().resolve(lines.shift());
  });
  stream.on("end", () => {
    ended = true;
    for (const waiter of waiters.splice(0)) waiter.reject(fail());
  });
  return {
    next(timeoutMs) {
      if (lines.length > 0) return Promise.resolve(lines.shift());
      if (ended) return Promise.reject(fail());
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () =>
            reject(new Error(`no answer from the agent in ${timeoutMs / 1000} s:\n${describe()}`)),
          timeoutMs,
        );
        const settle = (f) => (value) => {
          clearTimeout(timer);
          f(value);
        };
        waiters.push({ resolve: settle(resolve), reject: settle(reject) });
      });
    },
  };
}

/** `bottle run bench-in -- sh -c AGENT_LOOP`, once its agent said "ready". */
async function startAgent(ctx, manifest, gitUrl) {
  const log = join(ctx.ws.work, "bench-in.stderr");
  const fd = openSync(log, "a", 0o600);
  const argv = ["run", manifest, "--yes", "--json", "--name", "bench-in"];
  const child = ctx.ws.track(
    process.execPath,
    [
      PATHS.cli,
      ...argv,
      "--workspace",
      ctx.agentWorkspace,
      "--",
      "sh",
      "-c",
      AGENT_LOOP,
      "sh",
      gitUrl,
    ],
    { cwd: ctx.ws.work, env: ctx.bottleEnv, stdio: ["pipe", "pipe", fd] },
  );
  closeSync(fd);
  const tail = () => readFileSync(log, "utf8").trim().split("\n").slice(-12).join("\n");
  const exited = new Promise((resolve) => child.once("close", (code) => resolve(code)));
  const lines = lineReader(child.stdout, tail);
  const ask = async (command, timeoutMs = 600_000) => {
    child.stdin.write(`${command}\n`);
    const line = await lines.next(timeoutMs);
    if (line.startsWith("error")) throw new Error(`agent: ${line}\n${tail()}`);
    return line;
  };
  const ready = await lines.next(600_000);
  if (ready !== "ready") throw new Error(`the agent said ${ready}`);
  return { child, ask, exited, tail };
}

/** The sidecars of bottle `name` from `bottle ps --json`: `{ gate: pid, proxy: pid }`. */
async function sidecarsOf(ctx, name) {
  const rows = JSON.parse(checked("bottle ps", await ctx.bottle(["ps", "--json"])).stdout);
  const row = rows.find((r) => r.name === name);
  if (!row) throw new Error(`bottle ps lists no ${name}`);
  return Object.fromEntries(row.sidecars.map((s) => [s.name, s.pid]));
}

/** How bottle `name`'s gate mirror holds its objects: packed, loose (`git count-objects -v`). */
async function mirrorLayout(ctx, name) {
  const dir = join(ctx.state, "bottle", name, "stage", "repos", PROJECT, "api.git");
  const { stdout } = await ctx.ws.git(["--git-dir", dir, "count-objects", "-v"]);
  const field = (key) => Number(new RegExp(`^${key}: (\\d+)`, "m").exec(stdout)?.[1] ?? Number.NaN);
  return { packs: field("packs"), inPack: field("in-pack"), loose: field("count") };
}

/** The sidecars' memory: VmRSS total (the target) and PSS total, and each process's figures. */
function memoryOfBottle(pids) {
  const per = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, memoryOf(pid)]));
  const sum = (key) => round1(Object.values(per).reduce((n, m) => n + (m?.[key] ?? Number.NaN), 0));
  return { totalMiB: sum("rss"), pssMiB: sum("pss"), per };
}

/** The RSS of a bare node process at rest: what each sidecar costs before its own code. */
async function bareNodeRss(ctx) {
  const child = ctx.ws.track(process.execPath, ["-e", "setInterval(() => {}, 1 << 30)"], {
    env: { PATH: ctx.ws.PATH },
    stdio: "ignore",
  });
  await ctx.ws.sleep(1000);
  const memory = memoryOf(child.pid);
  child.kill("SIGKILL");
  return memory;
}

/** The sandbox's forwarder: the node running /opt/bottle/init.mjs under `rootPid`. */
function sandboxForwarderPid(rootPid) {
  for (const pid of descendants(rootPid)) {
    try {
      // node's argv[1], not the start-up shell whose script names the file too.
      if (readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")[1] === "/opt/bottle/init.mjs") {
        return pid;
      }
    } catch {}
  }
  return null;
}

/**
 * The `request` records a sidecar logged to `file` after byte `from`: how many, their total
 * duration, and each one's method and status.
 */
function requestsSince(file, from) {
  const text = readFileSync(file, "utf8").slice(from);
  let count = 0;
  let ms = 0;
  const seen = [];
  for (const line of text.split("\n")) {
    if (!line.includes('"msg":"request"')) continue;
    const record = JSON.parse(line);
    count += 1;
    ms += record.durationMs ?? 0;
    seen.push(`${record.method} ${record.status}`);
  }
  return { count, ms, seen: seen.join(", ") };
}

function fetchSummary(outputs) {
  const sum = (rounds) => {
    const latencies = rounds.flatMap((r) => r.latencies);
    return {
      rounds: rounds.length,
      totalMs: round1(median(rounds.map((r) => r.totalMs))),
      p50Ms: round1(quantile(latencies, 0.5)),
      p99Ms: round1(quantile(latencies, 0.99)),
    };
  };
  return {
    cold: sum(outputs.map((o) => o.rounds[0])),
    warm: sum(outputs.flatMap((o) => o.rounds.slice(1))),
  };
}

/**
 * Parts 2–4. `upstreamPid` is the git upstream's server (its CPU, with its http-backend
 * children, is part of each clone's profile). Leaves nothing up.
 */
export async function measureBottles(
  ctx,
  { manifest, gitUrl, apiUrl, upstreamPid, clkTck, clones, requests },
) {
  const { ws } = ctx;
  const logOf = (name) => join(ctx.state, "bottle", name, "logs", "gate.log");
  progress("bottle up bench-host");
  checked(
    "bottle up",
    await ctx.bottle([
      ...["up", manifest, "--yes", "--json", "--name", "bench-host"],
      // Not the work dir, the default: it holds bottle's state directory, which bottle refuses.
      ...["--workspace", ctx.agentWorkspace],
    ]),
  );
  const hostPids = await sidecarsOf(ctx, "bench-host");
  const mirror = await mirrorLayout(ctx, "bench-host");
  await ws.sleep(1000);
  const memory = { host: { idle: memoryOfBottle(hostPids) } };

  progress("bottle run bench-in (its mirror is fetched afresh: the cache keeps one per upstream)");
  const agent = await startAgent(ctx, manifest, gitUrl);
  const inPids = await sidecarsOf(ctx, "bench-in");
  await ws.sleep(1000);
  memory.inside = { idle: memoryOfBottle(inPids) };

  // The host's way in: a token of its own in the bottle's token file, and a TCP forwarder.
  const tokenFile = join(ctx.state, "bottle", "bench-host", "private", "gate-tokens.json");
  const create = ["create", "--token-file", tokenFile, "--project", PROJECT, "--task", "bench"];
  const tokenResult = await ws.must(process.execPath, [PATHS.tokensCli, ...create], {
    env: { PATH: ws.PATH, HOME: ws.HOME },
  });
  const token = tokenResult.stdout.trim();
  const socket = join(ctx.state, "bottle", "bench-host", "sockets", "gate.sock");
  const forwarder = await ws.startListening(
    "forwarder",
    process.execPath,
    [PATHS.forward, socket],
    {
      env: { PATH: ws.PATH },
      logFile: join(ws.work, "forward.log"),
    },
  );
  const hostUrl = `http://${token}:x@127.0.0.1:${new URL(forwarder.url).port}/${PROJECT}/api.git`;
  const hostDir = join(ws.work, "host-clone");

  const sides = {
    host: {
      gate: hostPids.gate,
      log: logOf("bench-host"),
      forwarder: forwarder.pid,
      clone: async () => {
        const r = await ws.run("sh", ["-c", HOST_CLONE, "sh", hostUrl, hostDir], {
          env: ws.GIT_ENV,
        });
        if (r.code !== 0) throw new Error(`host clone exited ${r.code}: ${r.stderr.trim()}`);
        return Number(r.stdout.trim()) / 1000;
      },
    },
    inside: {
      gate: inPids.gate,
      log: logOf("bench-in"),
      forwarder: sandboxForwarderPid(agent.child.pid),
      clone: async () => Number((await agent.ask("clone")).split(" ")[1]) / 1000,
    },
  };
  progress("one unmeasured clone each way");
  await sides.host.clone();
  await sides.inside.clone();
  memory.host.afterClone = memoryOfBottle(hostPids);
  memory.inside.afterClone = memoryOfBottle(inPids);

  const clone = await measureClones(sides, { clones, clkTck, upstreamPid });
  memory.host.afterClones = memoryOfBottle(hostPids);
  memory.inside.afterClones = memoryOfBottle(inPids);

  const requestsResult = await measureRequests(ctx, agent, { apiUrl, requests });
  memory.host.afterRequests = memoryOfBottle(hostPids);
  memory.inside.afterRequests = memoryOfBottle(inPids);

  agent.child.stdin.end("quit\n");
  const code = await agent.exited;
  if (code !== 0) throw new Error(`bottle run bench-in exited ${code}:\n${agent.tail()}`);
  checked("bottle down", await ctx.bottle(["down", "bench-host"]));
  forwarder.child.kill("SIGTERM");

  return { memory, bareNode: await bareNodeRss(ctx), mirror, clone, requests: requestsResult };
}

/**
 * `clones` timed clones per side, alternating which goes first; around each, the side's gate
 * log (its request records) and CPU from /proc. Medians per side.
 */
async function measureClones(sides, { clones, clkTck, upstreamPid }) {
  const cloned = { host: [], inside: [] };
  for (let i = 0; i < clones; i++) {
    progress(`clone, run ${i + 1}/${clones}`);
    for (const name of i % 2 ? ["inside", "host"] : ["host", "inside"]) {
      const side = sides[name];
      const cpu = () => ({
        gate: cpuOf(side.gate, clkTck),
        forwarder: side.forwarder ? cpuOf(side.forwarder, clkTck) : Number.NaN,
        upstream: cpuOf(upstreamPid, clkTck),
        machine: machineBusySeconds(clkTck),
      });
      const logFrom = statSync(side.log).size;
      const before = cpu();
      const ms = await side.clone();
      const after = cpu();
      const gateRequests = requestsSince(side.log, logFrom);
      side.requestsSeen = gateRequests.seen;
      cloned[name].push({
        ms,
        gateRequests: gateRequests.count,
        gateRequestMs: gateRequests.ms,
        ...Object.fromEntries(
          Object.keys(before).map((k) => [`${k}CpuMs`, (after[k] - before[k]) * 1000]),
        ),
      });
    }
  }
  const med = (xs, key) => round1(median(xs.map((x) => x[key])));
  const keys = ["gateRequests", "gateRequestMs", "gateCpuMs", "forwarderCpuMs", "upstreamCpuMs"];
  const summary = (name) => ({
    ms: stats(cloned[name].map((x) => x.ms)),
    gateRequestsOfTheLast: sides[name].requestsSeen,
    profile: Object.fromEntries([...keys, "machineCpuMs"].map((k) => [k, med(cloned[name], k)])),
  });
  return { host: summary("host"), inside: summary("inside") };
}

/**
 * `FETCH.invocations` client processes per side, alternating which goes first, each running
 * `FETCH.rounds` rounds of `requests` concurrent GETs: inside at the proxy's route, without a
 * credential; on the host straight at the upstream, with the header.
 */
async function measureRequests(ctx, agent, { apiUrl, requests }) {
  const { ws } = ctx;
  const fetched = { host: [], inside: [] };
  const direct = [PATHS.fetchMany, `${apiUrl}/small`, `${requests}`, `${FETCH.rounds}`];
  for (let i = 0; i < FETCH.invocations; i++) {
    progress(
      `${requests} concurrent requests × ${FETCH.rounds} rounds, run ${i + 1}/${FETCH.invocations}`,
    );
    for (const name of i % 2 ? ["host", "inside"] : ["inside", "host"]) {
      if (name === "inside") {
        const line = await agent.ask(`fetch ${requests} ${FETCH.rounds}`);
        fetched.inside.push(JSON.parse(line.slice("fetch ".length)));
      } else {
        const r = await ws.must(process.execPath, direct, {
          env: { PATH: ws.PATH, BENCH_AUTHORIZATION: `Bearer ${ctx.secrets.API_KEY}` },
        });
        fetched.host.push(JSON.parse(r.stdout));
      }
    }
  }
  return { host: fetchSummary(fetched.host), inside: fetchSummary(fetched.inside) };
}
