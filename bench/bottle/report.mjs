// The text report: figures, ratios, targets (PASS, MISS, or SKIP when srt cannot run), and for
// every MISS what bounds it.
import { FETCH } from "./bottles.mjs";
import { isPart, PHASES } from "./startup.mjs";

const ms0 = (x) => (Number.isFinite(x) ? x.toFixed(0) : "–");
const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : "–");
const verdict = (ok) => (ok === null ? "SKIP" : ok ? "PASS" : "MISS");
const head = (label, columns) => `${label.padEnd(40)}${columns.map((c) => c.padStart(8)).join("")}`;
const row = (label, x) => head(label, [x.median, x.p90, x.min, x.max].map(ms0));

function startupLines(r) {
  const s = r.startup;
  const lines = [
    `1. start-up: ${r.runs} runs each, interleaved, after one unmeasured warm-up each; ms, spawn to exit`,
    head("", ["median", "p90", "min", "max"]),
    row("bottle run FILE --yes -- true", s.ms.bottle),
    s.ms.srt
      ? row(`srt true (srt ${s.srt.version})`, s.ms.srt)
      : `${"srt true".padEnd(40)}skipped: ${s.srt.skipped}`,
    row("bare bwrap … true", s.ms.bwrap),
  ];
  const ratio = (a, b) => (a && b ? `${(a.median / b.median).toFixed(2)}×` : "–");
  lines.push(
    `ratios of the medians: bottle/srt ${ratio(s.ms.bottle, s.ms.srt)}, bottle/bwrap ${ratio(s.ms.bottle, s.ms.bwrap)}, srt/bwrap ${ratio(s.ms.srt, s.ms.bwrap)}`,
  );
  return lines;
}

function memoryLines(r) {
  const line = (label, x) =>
    `  ${label.padEnd(28)}${f1(x.totalMiB).padStart(7)} MiB  (PSS ${f1(x.pssMiB)}; ${Object.entries(
      x.per,
    )
      .map(([name, m]) =>
        m
          ? `${name} ${f1(m.rss)} = anon ${f1(m.anon)} + file ${f1(m.file)}, peak ${f1(m.hwm)}`
          : `${name} gone`,
      )
      .join("; ")})`;
  const lines = [
    "2. sidecars' memory per bottle: VmRSS of gate + proxy (pids from `bottle ps --json`)",
  ];
  for (const [who, label] of [
    ["host", "bottle up bench-host"],
    ["inside", "bottle run bench-in (the agent's)"],
  ]) {
    const m = r.memory[who];
    lines.push(
      `${label}:`,
      line("at rest after start", m.idle),
      line("after one clone", m.afterClone),
      line(`after ${r.clones + 1} clones`, m.afterClones),
      line("after the requests (info)", m.afterRequests),
    );
  }
  return lines;
}

function cloneLines(r) {
  const { host, inside } = r.clone;
  return [
    `3. clone of the ${r.repository.packMiB.toFixed(0)} MiB repository: ${r.clones} each, alternating, after one unmeasured each; ms (date +%s%N around git clone)`,
    head("", ["median", "p90", "min", "max"]),
    row("inside the sandbox, via 127.0.0.1:9419", inside.ms),
    row("host, straight at the gate's socket", host.ms),
    `ratio of the medians inside/host: ${(inside.ms.median / host.ms.median).toFixed(3)}×`,
    `(the gate's mirror: ${r.mirror.inPack} objects in ${r.mirror.packs} pack(s), ${r.mirror.loose} loose)`,
  ];
}

function requestLines(r) {
  const q = r.requests;
  const line = (label, x) => head(label, [ms0(x.totalMs), f1(x.p50Ms), f1(x.p99Ms)]);
  const ratio = (k, key) => `${(q.inside[k][key] / q.host[k][key]).toFixed(2)}×`;
  return [
    `4. ${r.concurrency} concurrent GETs of ~200 B of JSON: ${FETCH.invocations} client processes per side, alternating, ${FETCH.rounds} rounds each;`,
    `   "new connections": each process's first round; "reused": its other rounds; ms`,
    head("", ["total", "p50", "p99"]),
    line("inside → proxy route, new connections", q.inside.cold),
    line("host → upstream, new connections", q.host.cold),
    line("inside → proxy route, reused", q.inside.warm),
    line("host → upstream, reused", q.host.warm),
    `ratios inside/host: new connections total ${ratio("cold", "totalMs")}, p50 ${ratio("cold", "p50Ms")}, p99 ${ratio("cold", "p99Ms")};` +
      ` reused total ${ratio("warm", "totalMs")}, p50 ${ratio("warm", "p50Ms")}, p99 ${ratio("warm", "p99Ms")}`,
  ];
}

function startupProfileLines(r) {
  const { phases } = r.startup;
  const wall = r.startup.ms.bottle.median;
  const lines = [
    `what bounds bottle run: medians of its phases over ${r.runs} runs, from its --json progress events`,
  ];
  for (const [key, label] of PHASES) {
    const share = isPart(label) ? "" : `${((100 * phases[key]) / wall).toFixed(0)} %`;
    lines.push(`  ${label.padEnd(62)}${ms0(phases[key]).padStart(6)} ms ${share.padStart(5)}`);
  }
  const sum = PHASES.filter(([, label]) => !isPart(label)).reduce((n, [k]) => n + phases[k], 0);
  lines.push(
    `  ${"sum of the medians (the median run)".padEnd(62)}${ms0(sum).padStart(6)} ms (${ms0(wall)})`,
  );
  const p = r.profile;
  lines.push(
    `start-up floors, median of 5, spawn to exit: ${Object.entries(p.floors)
      .map(([k, v]) => `${k} ${ms0(v)} ms`)
      .join(", ")}`,
    "modules loaded before --version answers (not counting node's built-ins), largest packages by source:",
  );
  for (const [name, m] of Object.entries(p.modules)) {
    const top = m.packages
      .slice(0, 7)
      .map((e) => `${e.package} ${e.modules}/${ms0(e.kib)}`)
      .join(", ");
    lines.push(
      `  ${name}: ${m.modules} modules, ${ms0(m.kib)} KiB (+${m.builtins} built-ins); modules/KiB: ${top}`,
    );
  }
  if (p.cpu) {
    lines.push(
      `CPU profile of one bottle run -- true (bottle's own process): ${ms0(p.cpu.busyMs)} ms busy, ${ms0(p.cpu.idleMs)} ms idle (waiting for its children); busy by area:`,
    );
    for (const a of p.cpu.areas.slice(0, 9)) {
      lines.push(
        `    ${a.area.padEnd(40)}${ms0(a.ms).padStart(6)} ms ${`${a.pct.toFixed(0)} %`.padStart(5)}`,
      );
    }
    const top = p.cpu.otherInternals.map((a) => `${a.area} ${ms0(a.ms)}`).join(", ");
    lines.push(`    node's other internals, the largest (ms): ${top}`);
  }
  return lines;
}

function cloneProfileLines(r) {
  const line = (label, x) => {
    const p = x.profile;
    return head(
      label,
      [
        x.ms.median,
        p.gateRequestMs,
        x.ms.median - p.gateRequestMs,
        p.gateCpuMs,
        p.upstreamCpuMs,
        p.forwarderCpuMs,
        p.machineCpuMs,
      ].map(ms0),
    );
  };
  const { host } = r.clone;
  return [
    "what bounds the clone inside: medians per clone, ms.",
    `  in gate: the summed durations of the gate's request records, ${host.profile.gateRequests} a clone (the last: ${host.gateRequestsOfTheLast});`,
    "    each upload-pack request runs the access hook (a mirror refresh from the upstream) first",
    "  outside: wall − in gate (the client, the forwarder, the sandbox); then CPU ms from /proc: the gate with",
    "  its hook and git children, the git upstream with its children, the forwarder, and the whole machine",
    "  (other processes included)",
    head("", ["wall", "in gate", "outside", "gate", "upstrm", "fwd", "machine"]),
    line("host", r.clone.host),
    line("inside", r.clone.inside),
  ];
}

const WHO = { host: "bottle up", inside: "bottle run" };
const WHEN = {
  idle: "at rest",
  afterClone: "after one clone",
  afterClones: "after the timed clones",
};

function memoryProfileLines(r) {
  const b = r.bareNode;
  const points = ["host", "inside"].flatMap((who) =>
    ["idle", "afterClone", "afterClones"].map((when) => ({ who, when, ...r.memory[who][when] })),
  );
  const worst = points.reduce((a, x) => (x.totalMiB > a.totalMiB ? x : a));
  const sum = (key) => Object.values(worst.per).reduce((n, m) => n + (m?.[key] ?? 0), 0);
  const each = (key) =>
    Object.entries(worst.per)
      .map(([name, m]) => `${name} ${f1(m?.[key])}`)
      .join(", ");
  return [
    `what bounds the sidecars' RSS, at the largest (${WHO[worst.who]}, ${WHEN[worst.when]}): ${f1(worst.totalMiB)} MiB =`,
    `  anonymous ${f1(sum("anon"))} MiB (${each("anon")}): heap and the code of the modules each loads,`,
    `  + file-backed ${f1(sum("file"))} MiB (${each("file")}): the node binary's pages, in both processes and shared`,
    "  between them (PSS counts them once). Each sidecar is a node process: a bare node at rest",
    `  (node -e with a timer) has VmRSS ${f1(b?.rss)} MiB = anon ${f1(b?.anon)} + file ${f1(b?.file)}.`,
  ];
}

export function report(r) {
  const m = r.machine;
  const lines = [
    `bench/bottle: nproc ${m.nproc} (${m.cpu}), Linux ${m.kernel}, node ${m.node}, ${m.git}, ${m.bwrap}`,
    `load average ${r.load.before.map(f1).join(" ")} at the start, ${r.load.after.map(f1).join(" ")} at the end`,
    `repository: ${r.repository.commits} commits, ${r.repository.sourceFiles} small files and ${r.repository.blobMiB} MiB of random blobs, pack ${r.repository.packMiB.toFixed(1)} MiB, on tooling/serve-git-http.mjs; one proxy route (Bearer) to bench/proxy/upstream.mjs`,
    "",
    ...startupLines(r),
    "",
    ...memoryLines(r),
    "",
    ...cloneLines(r),
    "",
    ...requestLines(r),
    "",
    "targets:",
    ...r.targets.map((t) => `  ${verdict(t.pass)}  ${t.name.padEnd(44)} ${t.measured}`),
  ];
  const missed = (key) => r.targets.some((t) => t.key === key && t.pass === false);
  if (missed("run")) lines.push("", ...startupProfileLines(r));
  if (missed("rss")) lines.push("", ...memoryProfileLines(r));
  if (missed("clone")) lines.push("", ...cloneProfileLines(r));
  return `${lines.join("\n")}\n`;
}
