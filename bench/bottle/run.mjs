#!/usr/bin/env node
// A whole bottle on loopback upstreams, in one run: `bottle run FILE --yes -- true` against
// `srt true` and a bare bwrap; the sidecars' RSS; a ~50 MiB clone from inside the sandbox
// against the same clone from the host straight at the gate; 50 concurrent proxied requests
// from inside against the same 50 straight at the upstream. Targets print PASS or MISS, and a
// MISS comes with what bounds it.
import { randomBytes } from "node:crypto";
import { accessSync, copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { createWorkspace, parseBenchArgs, progress, runBench } from "../harness.mjs";
import { fastImport, importRepository } from "../repository.mjs";
import { machineInfo } from "../stats.mjs";
import { measureBottles } from "./bottles.mjs";
import { createContext, onPath, PATHS, PROJECT } from "./context.mjs";
import { report } from "./report.mjs";
import { measureStartup, profileStartup } from "./startup.mjs";

const MiB = 1024 * 1024;
const TARGETS = { runMs: 1000, runToSrt: 2, rssMiB: 150, cloneRatio: 1.1 };
const COMMITS = 5;
const BLOBS_PER_COMMIT = 2;
/**
 * Small files of the first commit. They keep the object count above git's unpack limit (100):
 * a fetch of fewer objects is stored loose, and a mirror of loose objects makes every clone
 * recompress them all (a 50 MiB clone through the gate then takes several times longer).
 */
const SOURCE_FILES = 200;

const USAGE = `usage: node bench/bottle/run.mjs [--runs N] [--clones N] [--requests N] [--repo-mib N] [--json]
  --runs N       timed runs of bottle run -- true, srt true and bwrap each (default 10)
  --clones N     timed clones from inside and from the host each (default 5)
  --requests N   concurrent proxied requests per round (default 50)
  --repo-mib N   the repository's random blobs, in MiB (default 50)
`;
const { flags, integers } = parseBenchArgs(USAGE, {
  runs: "10",
  options: {
    clones: { type: "string", default: "5" },
    requests: { type: "string", default: "50" },
    "repo-mib": { type: "string", default: "50" },
  },
  integers: { clones: [1, 50], requests: [1, 1000], "repo-mib": [1, 1000] },
});
const { runs: RUNS, clones: CLONES, requests: REQUESTS, "repo-mib": REPO_MIB } = integers;

const ws = createWorkspace("bottle");
const ctx = createContext(ws);

/** A bare repository: a few commits, each adding random (incompressible) blobs; fast-import. */
function buildRepository(dir) {
  const blobBytes = Math.floor((REPO_MIB * MiB) / (COMMITS * BLOBS_PER_COMMIT));
  const stream = fastImport();
  for (let i = 0; i < COMMITS; i++) {
    const changes = [
      `M 100644 :${stream.blob(Buffer.from(`# bench\n\nrevision ${i}\n`))} README.md`,
    ];
    for (let f = 0; i === 0 && f < SOURCE_FILES; f++) {
      const text = `export const value${f} = ${f};\n`.repeat(20 + (f % 30));
      changes.push(`M 100644 :${stream.blob(Buffer.from(text))} src/f${f}.js`);
    }
    for (let b = 0; b < BLOBS_PER_COMMIT; b++) {
      changes.push(`M 100644 :${stream.blob(randomBytes(blobBytes))} assets/blob-${i}-${b}.bin`);
    }
    stream.commit(i, changes);
  }
  return importRepository(ws.git, dir, stream.bytes());
}

/** tooling/serve-git-http.mjs on `root` (smart HTTP, Basic with the upstream token). */
async function startGitUpstream(root) {
  const child = ws.track(process.execPath, [PATHS.serveGit, root], {
    cwd: ws.work,
    env: {
      PATH: ws.PATH,
      HOME: ws.HOME,
      LANG: "C",
      UPSTREAM_TOKEN: ctx.secrets.GIT_UPSTREAM_TOKEN,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (chunk) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  const url = await new Promise((resolve, reject) => {
    let text = "";
    child.stdout.setEncoding("utf8").on("data", (chunk) => {
      text += chunk;
      if (text.includes("\n")) resolve(text.split("\n")[0].trim());
    });
    child.once("exit", (code) => reject(new Error(`serve-git-http exited (${code}): ${stderr}`)));
  });
  return { pid: child.pid, url };
}

/** One repository on the git upstream, one proxy route (the agent's ANTHROPIC_BASE_URL). */
const manifestYaml = (gitUrl, apiUrl) => `version: 1
name: ${PROJECT}
agent: { command: [sh] }
git_gate:
  repos:
    api: { url: "${gitUrl}", key: { provider: token, token_ref: GIT_UPSTREAM_TOKEN } }
  scan: { scanner: builtin }
cred_proxy:
  routes:
    - path: /api/
      upstream: "${apiUrl}"
      auth: { scheme: Bearer }
      token_ref: API_KEY
      roles: [anthropic-base-url]
`;

function targetsOf(startup, bottles) {
  const runMedian = startup.ms.bottle.median;
  const toSrt = startup.ms.srt ? runMedian / startup.ms.srt.median : null;
  const rss = Math.max(
    ...["host", "inside"].flatMap((who) =>
      ["idle", "afterClone", "afterClones"].map((when) => bottles.memory[who][when].totalMiB),
    ),
  );
  const clone = bottles.clone.inside.ms.median / bottles.clone.host.ms.median;
  return [
    {
      key: "run",
      name: `bottle run median ≤ ${TARGETS.runMs} ms, warm mirrors`,
      pass: runMedian <= TARGETS.runMs,
      measured: `${runMedian.toFixed(0)} ms`,
    },
    {
      key: "run",
      name: `bottle run median ≤ ${TARGETS.runToSrt}× srt true's`,
      pass: toSrt === null ? null : toSrt <= TARGETS.runToSrt,
      measured: toSrt === null ? `no srt column: ${startup.srt.skipped}` : `${toSrt.toFixed(2)}×`,
    },
    {
      key: "rss",
      name: `sidecars' RSS per bottle ≤ ${TARGETS.rssMiB} MiB`,
      pass: rss <= TARGETS.rssMiB,
      measured: `${rss.toFixed(1)} MiB, the most of both bottles at rest and after clones`,
    },
    {
      key: "clone",
      name: `clone inside ≤ ${TARGETS.cloneRatio}× host`,
      pass: clone <= TARGETS.cloneRatio,
      measured: `${clone.toFixed(3)}×`,
    },
  ];
}

async function main() {
  for (const file of [PATHS.cli, PATHS.gateCli, PATHS.proxyCli, PATHS.tokensCli, PATHS.testUtils]) {
    try {
      accessSync(file);
    } catch {
      throw new Error(`missing ${file}: build first (./tooling/setup.sh)`);
    }
  }
  if (onPath("bwrap", ws.PATH) === null)
    throw new Error("bwrap is missing: apt-get install -y bubblewrap");
  const load = { before: loadavg() };
  progress(`work dir ${ws.work}`);
  mkdirSync(ctx.agentWorkspace);
  copyFileSync(PATHS.fetchMany, join(ctx.agentWorkspace, "fetch-many.mjs"));
  const getconf = await ws.must("getconf", ["CLK_TCK"], { env: { PATH: ws.PATH } });
  const clkTck = Number(getconf.stdout.trim()) || 100;

  progress(`building the repository (${COMMITS} commits, ${REPO_MIB} MiB of random blobs)`);
  const upstreamRoot = join(ws.work, "upstream");
  const packMiB = await buildRepository(join(upstreamRoot, PROJECT, "api.git"));
  const gitUpstream = await startGitUpstream(upstreamRoot);
  const api = await ws.startListening("api upstream", process.execPath, [PATHS.apiUpstream], {
    env: { PATH: ws.PATH, BENCH_UPSTREAM_TOKEN: ctx.secrets.API_KEY },
    logFile: join(ws.work, "api-upstream.log"),
  });
  const gitUrl = `${gitUpstream.url}/${PROJECT}/api.git`;
  const manifest = join(ws.work, "bottle.yaml");
  writeFileSync(manifest, manifestYaml(gitUrl, api.url), { mode: 0o600 });
  progress(`git upstream ${gitUrl}, api upstream ${api.url}`);

  const startup = await measureStartup(ctx, manifest, RUNS);
  const bottles = await measureBottles(ctx, {
    manifest,
    gitUrl,
    apiUrl: api.url,
    upstreamPid: gitUpstream.pid,
    clkTck,
    clones: CLONES,
    requests: REQUESTS,
  });
  const targets = targetsOf(startup, bottles);
  const missedRun = targets.some((t) => t.key === "run" && t.pass === false);
  const profile = missedRun ? await profileStartup(ctx, manifest) : null;
  load.after = loadavg();

  const version = async (command) =>
    (await ws.run(command, ["--version"], { env: { PATH: ws.PATH } })).stdout.trim().split("\n")[0];
  return {
    machine: machineInfo({ git: await version("git"), bwrap: await version("bwrap") }),
    load,
    repository: { commits: COMMITS, sourceFiles: SOURCE_FILES, blobMiB: REPO_MIB, packMiB },
    runs: RUNS,
    clones: CLONES,
    concurrency: REQUESTS,
    startup,
    ...bottles,
    profile,
    targets,
  };
}

/** Whatever a failure left up goes down through bottle itself, then the workspace's cleanup. */
async function cleanup() {
  const down = await ctx.bottle(["down", "--all"], { timeoutMs: 60_000 }).catch(() => null);
  if (down && down.code !== 0)
    progress(`bottle down --all exited ${down.code}: ${down.stderr.trim()}`);
  await ws.cleanup();
}

await runBench({ main, report, json: flags.json, workspace: { ...ws, cleanup } });
