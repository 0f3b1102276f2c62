// CPU profiles of a bench's servers: collects the .cpuprofile a child wrote under
// `node --cpu-prof`, and summarises it: self time by area and by function, and inclusive time of
// bottle's own functions and its libraries', as a share of the non-idle time and in µs per
// request served. These are wall-clock samples while the process is not idle.
import { once } from "node:events";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { progress, sleep } from "./harness.mjs";

/**
 * Stops a server child running under `node --cpu-prof --cpu-prof-dir dir` with SIGTERM (it
 * closes and exits, which writes its profile), waits for it `timeoutMs` at most, keeps the
 * profile as `out` and returns it parsed.
 */
export async function collectCpuProfile(name, child, dir, out, timeoutMs) {
  const exited = once(child, "exit");
  child.kill("SIGTERM");
  await Promise.race([exited, sleep(timeoutMs)]);
  const file = existsSync(dir)
    ? readdirSync(dir).find((f) => f.endsWith(".cpuprofile"))
    : undefined;
  if (file === undefined) throw new Error(`${name} wrote no .cpuprofile`);
  const text = readFileSync(join(dir, file), "utf8");
  writeFileSync(out, text);
  progress(`${name}: CPU profile written to ${out}`);
  return JSON.parse(text);
}

/** Where a profiled function lives, in a few words: a package, a node module, or native code. */
export function areaOf(frame) {
  const { url, functionName } = frame;
  if (url === "") return /^\(.*\)$/.test(functionName) ? functionName : "native (V8 builtins, C++)";
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\/(?!.*node_modules)/.exec(url);
  if (pkg) return pkg[1];
  const own = /\/(packages|tooling|apps)\/([^/]+)\/dist\/(.*)$/.exec(url);
  if (own) return `@bottle/${own[2]} ${own[3]}`;
  return url;
}

/** A frame's file and line, relative to node_modules/ or the workspace. */
function shortUrl(frame) {
  if (frame.url === "") return "";
  const url = frame.url.replace(/^.*\/(node_modules|packages|tooling|apps)\//, "$1/");
  return `${url.replace(/^file:\/\//, "")}:${frame.lineNumber + 1}`;
}

/**
 * `window` ([from, to] in CLOCK_MONOTONIC µs, the profile's own clock) keeps only the samples
 * taken in it: the measured part of a run, without start-up and warm-up. `requests` is the
 * number of requests served in that window.
 */
export function summariseProfile(profile, requests, { top = 20, window } = {}) {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map();
  const { samples, timeDeltas } = profile;
  const [from, to] = window ?? [Number.NEGATIVE_INFINITY, Number.POSITIVE_INFINITY];
  let at = profile.startTime;
  let kept = 0;
  for (let i = 0; i < samples.length; i++) {
    at += timeDeltas[i] ?? 0;
    if (at < from || at > to) continue;
    kept++;
    const us = timeDeltas[i + 1] ?? 0;
    self.set(samples[i], (self.get(samples[i]) ?? 0) + us);
  }
  if (window && kept === 0) throw new Error("no profile sample in the measured window");
  let totalUs = 0;
  let idleUs = 0;
  const functions = new Map();
  const areas = new Map();
  for (const [id, us] of self) {
    const frame = byId.get(id).callFrame;
    totalUs += us;
    if (frame.functionName === "(idle)") {
      idleUs += us;
      continue;
    }
    const key = `${frame.functionName || "(anonymous)"}\t${shortUrl(frame)}`;
    functions.set(key, (functions.get(key) ?? 0) + us);
    const area = areaOf(frame);
    areas.set(area, (areas.get(area) ?? 0) + us);
  }
  // Inclusive time of bottle's own functions (packages, tooling), undici and pino: a sample
  // counts once for every such function on its stack.
  const parents = new Map();
  for (const node of profile.nodes)
    for (const child of node.children ?? []) parents.set(child, node.id);
  const inclusive = new Map();
  for (const [id, us] of self) {
    const seen = new Set();
    for (let at = id; at !== undefined; at = parents.get(at)) {
      const frame = byId.get(at).callFrame;
      if (!/\/(packages|tooling)\/|\/node_modules\/(undici|pino|@pinojs)\//.test(frame.url))
        continue;
      const key = `${frame.functionName || "(anonymous)"}\t${shortUrl(frame)}`;
      if (seen.has(key)) continue;
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + us);
    }
  }
  const busyUs = totalUs - idleUs;
  const pct = (us) => (100 * us) / busyUs;
  const perRequest = (us) => us / requests;
  const sorted = (map) => [...map].sort((a, b) => b[1] - a[1]);
  const rows = (map) =>
    sorted(map)
      .slice(0, top)
      .map(([key, us]) => {
        const [name, where] = key.split("\t");
        return { name, where, pct: pct(us), us: perRequest(us) };
      });
  const areaRows = sorted(areas);
  const shown = areaRows.slice(0, 15);
  const rest = areaRows.slice(15).reduce((n, [, us]) => n + us, 0);
  return {
    samples: kept,
    totalMs: totalUs / 1000,
    busyMs: busyUs / 1000,
    requests,
    busyUsPerRequest: perRequest(busyUs),
    areas: [
      ...shown.map(([area, us]) => ({ area, pct: pct(us), us: perRequest(us) })),
      ...(rest > 0
        ? [{ area: `${areaRows.length - 15} other areas`, pct: pct(rest), us: perRequest(rest) }]
        : []),
    ],
    top: rows(functions),
    inclusive: rows(inclusive),
  };
}
