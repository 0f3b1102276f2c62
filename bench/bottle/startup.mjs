// 1. Start-up: `bottle run FILE --yes -- true` with warm mirrors against `srt true` (srt's Linux
// bubblewrap mode) and a bare bwrap, interleaved; and, when bottle misses, what bounds it.
import { accessSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { progress } from "../harness.mjs";
import { areaOf } from "../profile.mjs";
import { median } from "../stats.mjs";
import { checked, onPath, PATHS, round1, stats } from "./context.mjs";

/** srt's Linux mode runs these three (bubblewrap, socat for its proxy bridges, ripgrep). */
const SRT_NEEDS = ["bwrap", "socat", "rg"];

/** The bare bwrap reference, exactly as the issue gives it. */
export const BWRAP_ARGS = [
  ...["--unshare-all", "--die-with-parent", "--ro-bind", "/usr", "/usr"],
  ...["--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib"],
  ...["--symlink", "usr/lib64", "/lib64", "--proc", "/proc", "--dev", "/dev", "true"],
];

/** The phases of a `bottle run`, in order, with their labels in the report. */
export const PHASES = [
  ["startup", "node start-up, CLI imports, orphan check (spawn → first event)"],
  ["manifest", "manifest: read and validate"],
  ["plan", "plan and preflight printed"],
  ["bringUp", "bring-up: stage, token, sidecars, mirrors (concurrent)"],
  ["stage", "  of which the gate's stage and credentials"],
  ["token", "  of which the gate token for the task"],
  ["gateStart", "  of which the gate's start, beside the mirrors' fetch"],
  ["mirrors", "  the mirrors' fetch, beside the gate's start"],
  ["mirrorFetch", "    of which the fetch from the upstream"],
  ["proxyStart", "  the proxy's start, beside all of the above"],
  ["sandbox", "sandbox: prepare, bwrap, forwarder, agent `true`"],
  ["stop", "stop the sidecars"],
  ["exit", "teardown (tokens, mirror back, files) and exit"],
];

/** Whether a phase is a part of another (indented): not added to the sum. */
export const isPart = (label) => label.startsWith(" ");

/** bottle's --json progress events, with `at` in ms since the epoch. */
function eventsOf(stderr) {
  const events = [];
  for (const line of stderr.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      const event = JSON.parse(line);
      if (typeof event.event === "string") events.push({ ...event, at: Date.parse(event.time) });
    } catch {}
  }
  return events;
}

/** The phases of one `bottle run` in ms, from its events and its spawn and exit times. */
function phasesOf(result) {
  const events = eventsOf(result.stderr);
  const need = (prefix, status) => {
    const event = events.find(
      (e) => e.event === "step" && e.step.startsWith(prefix) && e.status === status,
    );
    if (!event) throw new Error(`bottle run printed no "${prefix}" ${status} event`);
    return event;
  };
  const manifestDone = need("manifest", "done");
  const stageStart = need("git gate: stage", "started");
  // The bring-up's steps run at once: it ends with the last of them.
  const parts = ["git gate: stage", "gate token", "gate:", "git gate: mirrors", "proxy:"].map(
    (prefix) => need(prefix, "done"),
  );
  const bringUpDone = Math.max(...parts.map((e) => e.at));
  const [stage, token, gateStart, mirrors, proxyStart] = parts.map((e) => e.ms);
  const stopStart = need("stop ", "started");
  const stopDone = need("stop ", "done");
  const fetched = events
    .map((e) => (e.event === "note" ? /ready .* in (\d+) ms/.exec(e.text) : null))
    .find(Boolean);
  return {
    startup: events[0].at - result.startedAt,
    manifest: manifestDone.ms,
    plan: stageStart.at - manifestDone.at,
    bringUp: bringUpDone - stageStart.at,
    stage,
    token,
    gateStart,
    mirrors,
    mirrorFetch: fetched ? Number(fetched[1]) : 0,
    proxyStart,
    sandbox: stopStart.at - bringUpDone,
    stop: stopDone.ms,
    exit: result.endedAt - stopDone.at,
  };
}

async function bottleRunTrue(ctx, manifest, nodeOptions = [], env = ctx.bottleEnv) {
  const argv = ["run", manifest, "--yes", "--json", "--name", "bench-run"];
  const result = await ctx.runFull(
    process.execPath,
    [...nodeOptions, PATHS.cli, ...argv, "--workspace", ctx.agentWorkspace, "--", "true"],
    { env },
  );
  return checked("bottle run -- true", result);
}

/**
 * srt, or why its column is skipped: the package (a root devDependency) and bwrap, socat and
 * rg on PATH. Its settings file (no network, no write) lives in a HOME of its own, and it runs
 * in an empty directory (srt looks through its working directory for files to protect).
 */
function srtSetup(ctx) {
  const cli = join(PATHS.srtPackage, "dist/cli.js");
  let version;
  try {
    version = JSON.parse(readFileSync(join(PATHS.srtPackage, "package.json"), "utf8")).version;
    accessSync(cli);
  } catch {
    return { skip: "@anthropic-ai/sandbox-runtime is not installed (run `pnpm install`)" };
  }
  const missing = SRT_NEEDS.filter((name) => onPath(name, ctx.ws.PATH) === null);
  if (missing.length > 0) {
    return {
      version,
      skip: `srt ${version} needs ${missing.join(", ")} on PATH: apt-get install -y bubblewrap socat ripgrep`,
    };
  }
  const home = join(ctx.ws.work, "srt-home");
  const cwd = join(ctx.ws.work, "srt-cwd");
  mkdirSync(home, { mode: 0o700 });
  mkdirSync(cwd);
  const settings = join(home, "srt-settings.json");
  const config = {
    network: { allowedDomains: [], deniedDomains: [] },
    filesystem: { denyRead: [], allowWrite: [], denyWrite: [] },
  };
  writeFileSync(settings, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  return {
    version,
    run: () =>
      ctx.runFull(process.execPath, [cli, "-s", settings, "true"], {
        env: { PATH: ctx.ws.PATH, HOME: home },
        cwd,
      }),
  };
}

/**
 * `runs` of each of bottle run, srt true and bwrap true, in rotating order, after one unmeasured
 * warm-up each (bottle's fills the mirror cache). Returns the figures and bottle's phases.
 */
export async function measureStartup(ctx, manifest, runs) {
  const srt = srtSetup(ctx);
  // bwrap looks `true` up on the PATH it is given, inside, where only /usr is.
  const bwrapFile = onPath("bwrap", ctx.ws.PATH);
  const bwrap = async () =>
    checked("bwrap true", await ctx.runFull(bwrapFile, BWRAP_ARGS, { env: { PATH: "/usr/bin" } }));
  progress("warm-up: bottle run (fills the mirror cache), srt true, bwrap true");
  const warm = phasesOf(await bottleRunTrue(ctx, manifest));
  if (srt.run) {
    const first = await srt.run();
    if (first.code !== 0) {
      srt.skip = `srt true exited ${first.code}: ${first.stderr.trim().slice(-600)}`;
    }
  }
  if (srt.skip) progress(`skipping the srt column: ${srt.skip}`);
  await bwrap();

  const cases = {
    bottle: () => bottleRunTrue(ctx, manifest),
    ...(srt.skip ? {} : { srt: async () => checked("srt true", await srt.run()) }),
    bwrap,
  };
  const names = Object.keys(cases);
  const ms = Object.fromEntries(names.map((n) => [n, []]));
  const phases = [];
  for (let i = 0; i < runs; i++) {
    progress(`start-up, run ${i + 1}/${runs}`);
    for (let k = 0; k < names.length; k++) {
      const name = names[(k + i) % names.length];
      const result = await cases[name]();
      ms[name].push(result.ms);
      if (name === "bottle") phases.push(phasesOf(result));
    }
  }
  return {
    srt: srt.skip ? { version: srt.version ?? null, skipped: srt.skip } : { version: srt.version },
    ms: Object.fromEntries(names.map((n) => [n, stats(ms[n])])),
    phases: Object.fromEntries(
      PHASES.map(([key]) => [key, round1(median(phases.map((p) => p[key])))]),
    ),
    warmUpMirrorFetchMs: warm.mirrorFetch,
  };
}

// ---------------------------------------------------------------------------------------------
// What bounds it: start-up floors, the modules each program loads, a CPU profile of bottle.

/** Where a module comes from: an npm package, one of bottle's, or node itself. */
function packageOf(url) {
  if (url.startsWith("node:")) return "node:";
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\/(?!.*node_modules)/.exec(url);
  if (pkg) return pkg[1];
  const own = /\/(packages|apps|tooling)\/([^/]+)\//.exec(url);
  return own ? `@bottle/${own[2]}` : url;
}

/** The modules a program loads before `--version` answers, by package (count, source KiB). */
async function modulesOf(ctx, name, file) {
  const out = join(ctx.ws.work, `modules-${name}.json`);
  checked(
    `${name} --version`,
    await ctx.runFull(process.execPath, ["--import", PATHS.countModules, file, "--version"], {
      env: { PATH: ctx.ws.PATH, BENCH_MODULES_OUT: out },
    }),
  );
  const loaded = JSON.parse(readFileSync(out, "utf8"));
  const byPackage = new Map();
  for (const [url, bytes] of loaded) {
    const key = packageOf(url);
    const entry = byPackage.get(key) ?? { package: key, modules: 0, kib: 0 };
    entry.modules += 1;
    entry.kib += bytes / 1024;
    byPackage.set(key, entry);
  }
  const own = [...byPackage.values()].filter((e) => e.package !== "node:");
  return {
    modules: own.reduce((n, e) => n + e.modules, 0),
    kib: round1(own.reduce((n, e) => n + e.kib, 0)),
    builtins: byPackage.get("node:")?.modules ?? 0,
    packages: own.sort((a, b) => b.kib - a.kib).map((e) => ({ ...e, kib: round1(e.kib) })),
  };
}

/** A CPU profile's busy time by area: bottle's packages, npm packages, node's internals, V8. */
function areasOf(profile) {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const areas = new Map();
  const internals = new Map(); // "node: other internals" by module
  let idle = 0;
  let busy = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const us = profile.timeDeltas[i + 1] ?? 0;
    const frame = byId.get(profile.samples[i]).callFrame;
    if (frame.functionName === "(idle)") {
      idle += us;
      continue;
    }
    busy += us;
    let area = areaOf(frame);
    if (area.startsWith("@bottle/")) area = area.split(" ")[0];
    else if (area.startsWith("node:internal/modules/")) area = "node: loading modules (compile)";
    else if (area.startsWith("node:internal/bootstrap/")) area = "node: compiling its built-ins";
    else if (area.startsWith("node:internal/deps/")) area = "node: bundled deps (undici…)";
    else if (area.startsWith("node:")) {
      internals.set(area, (internals.get(area) ?? 0) + us);
      area = "node: other internals";
    }
    areas.set(area, (areas.get(area) ?? 0) + us);
  }
  const rows = (map) =>
    [...map]
      .sort((a, b) => b[1] - a[1])
      .map(([area, us]) => ({ area, ms: round1(us / 1000), pct: round1((100 * us) / busy) }));
  return {
    busyMs: round1(busy / 1000),
    idleMs: round1(idle / 1000),
    areas: rows(areas),
    otherInternals: rows(internals).slice(0, 5),
  };
}

/**
 * Start-up floors (median of 5, spawn to exit), the modules bottle and both sidecars load, and a
 * CPU profile of one `bottle run -- true` (bottle's own process; its children are not profiled).
 */
export async function profileStartup(ctx, manifest) {
  progress("profiling: start-up floors, modules loaded, a CPU profile of bottle run");
  const floors = {};
  const floor = async (name, argv) => {
    const xs = [];
    for (let i = 0; i < 5; i++) {
      const result = await ctx.runFull(process.execPath, argv, { env: { PATH: ctx.ws.PATH } });
      xs.push(checked(name, result).ms);
    }
    floors[name] = round1(median(xs));
  };
  await floor("node -e 0", ["-e", "0"]);
  await floor("bottle --version", [PATHS.cli, "--version"]);
  await floor("bottle-gate --version", [PATHS.gateCli, "--version"]);
  await floor("bottle-cred-proxy --version", [PATHS.proxyCli, "--version"]);

  const modules = {
    bottle: await modulesOf(ctx, "bottle", PATHS.cli),
    "bottle-gate": await modulesOf(ctx, "bottle-gate", PATHS.gateCli),
    "bottle-cred-proxy": await modulesOf(ctx, "bottle-cred-proxy", PATHS.proxyCli),
  };

  const dir = join(ctx.ws.work, "cpuprofile");
  mkdirSync(dir);
  const options = ["--cpu-prof", "--cpu-prof-dir", dir, "--cpu-prof-interval", "250"];
  await bottleRunTrue(ctx, manifest, options);
  const file = readdirSync(dir).find((f) => f.endsWith(".cpuprofile"));
  const cpu = file ? areasOf(JSON.parse(readFileSync(join(dir, file), "utf8"))) : null;
  return { floors, modules, cpu };
}
