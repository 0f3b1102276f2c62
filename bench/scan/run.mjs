#!/usr/bin/env node
import { generateKeyPairSync } from "node:crypto";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { createWorkspace, parseBenchArgs, progress, runBench } from "../harness.mjs";
import { machineInfo, summarize } from "../stats.mjs";

const ROOT = join(import.meta.dirname, "../..");
const MiB = 1024 * 1024;

const PUSH = { commits: 200, textMiB: 20 };
const TARGETS = { scanMs: 1000 };

const USAGE = "usage: node bench/scan/run.mjs [--runs N] [--json] [--from dist|src]\n";
const BUILT = existsSync(join(ROOT, "packages/secret-scan/dist/scan.js"));
const { flags, runs: RUNS } = parseBenchArgs(USAGE, {
  options: {
    from: { type: "string", default: BUILT ? "dist" : "src" },
    // Internal: one cold scan in a fresh process (see measureCold).
    child: { type: "string" },
  },
});
if (flags.from !== "src" && flags.from !== "dist") {
  process.stderr.write(`bench: expected \`--from\` to be src or dist, got ${flags.from}\n`);
  process.exit(2);
}

/** The @bottle/secret-scan modules the gate's hook uses, from the sources or the build. */
async function loadGitGate(from) {
  const dir = join(ROOT, "packages/secret-scan", from);
  const ext = from === "src" ? "ts" : "js";
  const load = (name) => import(pathToFileURL(join(dir, `${name}.${ext}`)).href);
  const [commits, scan, run] = await Promise.all([load("commits"), load("scan"), load("run")]);
  return { ...commits, ...scan, ...run };
}

// ---------------------------------------------------------------------------------------------
// A fresh process per cold run: the pre-receive hook is a new process on every push, so its
// scan never runs warm. The parent passes `--child <repo> <tip>`; the child prints one JSON line.

if (flags.child !== undefined) {
  const [repo, tip] = flags.child.split(",");
  const started = performance.now();
  const gate = await loadGitGate(flags.from);
  const imported = performance.now();
  const timing = await scanOnce(gate, repo, tip);
  process.stdout.write(`${JSON.stringify({ importMs: imported - started, ...timing })}\n`);
  process.exit(0);
}

const ws = createWorkspace("scan");
const { work, HOME, GIT_ENV, track, run, must, git } = ws;

// ---------------------------------------------------------------------------------------------
// The push: source-like text from a seeded generator, written with fast-import.

/** A small deterministic PRNG (mulberry32), so every run scans the same bytes. */
function prng(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = (
  "account buffer cache client config context count data default error event field file " +
  "handler index input key list logger message name next node options output parse path " +
  "record request response result router server session source state stream table target " +
  "timeout token update user value version worker"
).split(" ");

/** The mean length of a line of {@link sourceLines}, newline included (measured). */
const LINE_BYTES = 55;

/** `count` lines of TypeScript-, JSON- and Markdown-like text. */
function sourceLines(random, count) {
  const pick = (list) => list[Math.floor(random() * list.length)];
  const ident = () => `${pick(WORDS)}${pick(WORDS).replace(/^./, (c) => c.toUpperCase())}`;
  const hex = (n) =>
    Array.from({ length: n }, () => Math.floor(random() * 16).toString(16)).join("");
  const shapes = [
    () =>
      `  const ${ident()} = await ${ident()}(${ident()}, { ${pick(WORDS)}: ${Math.floor(random() * 1e6)} });`,
    () =>
      `  if (${ident()}.${pick(WORDS)} === undefined) throw new Error("missing ${pick(WORDS)} in ${ident()}");`,
    () =>
      `  // ${pick(WORDS)} the ${pick(WORDS)} before the ${pick(WORDS)} reaches the ${pick(WORDS)} (see #${Math.floor(random() * 9000)})`,
    () => `    "${ident()}": "${pick(WORDS)}-${hex(8)}",`,
    () =>
      `export function ${ident()}(${pick(WORDS)}: ${pick(["string", "number", "Buffer", "Options"])}): ${pick(["void", "boolean", "Result"])} {`,
    () => `  return ${ident()}.map((${pick(WORDS)}) => ${pick(WORDS)}.${ident()}).filter(Boolean);`,
    () => `- the ${pick(WORDS)} ${pick(WORDS)} is read from \`${ident()}\` at commit ${hex(40)}`,
    () => "}",
    () => "",
  ];
  return Array.from({ length: count }, () => pick(shapes)());
}

/** Secrets planted in the push (built at run time), each with the commit that adds it. */
function plantedSecrets(random) {
  const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  const text = (alphabet, n) =>
    Array.from({ length: n }, () => alphabet[Math.floor(random() * alphabet.length)]).join("");
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  return [
    { commit: 17, lines: [`const GITHUB = "ghp_${text(alnum, 36)}";`] },
    { commit: 61, lines: [`BOTTLE_TOKEN=bottle_gt_${text(`${alnum}-_`, 32)}`] },
    {
      commit: 99,
      lines: [`aws_access_key_id = AKIA${text("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)}`],
    },
    { commit: 142, lines: [`anthropic: sk-ant-api03-${text(`${alnum}-_`, 93)}AA`] },
    {
      commit: 188,
      lines: privateKey.export({ type: "pkcs8", format: "pem" }).toString().trimEnd().split("\n"),
    },
  ];
}

/**
 * A fast-import stream: a base commit on main (40 files), then the push on `refs/heads/push`:
 * each commit adds one new file and inserts lines into an existing one (so both new files and
 * -U0 hunks inside old ones are scanned), every 10th also renames a file.
 */
function fastImportStream({ plant = true } = {}) {
  const random = prng(42);
  const bytesPerCommit = (PUSH.textMiB * MiB) / PUSH.commits;
  const secrets = plantedSecrets(random); // drawn either way, so both variants share the text
  const planted = new Map(plant ? secrets.map((secret) => [secret.commit, secret.lines]) : []);
  const files = new Map();
  const parts = [];
  let mark = 0;
  const commit = (ref, message, changes, from) => {
    const data = [];
    for (const change of changes) {
      if (change.delete !== undefined) data.push(`D ${change.delete}\n`);
      else
        data.push(
          `M 100644 inline ${change.path}\ndata ${Buffer.byteLength(change.content)}\n${change.content}\n`,
        );
    }
    parts.push(
      `commit ${ref}\nmark :${++mark}\ncommitter Bench <bench@bottle.invalid> ${1_700_000_000 + mark} +0000\n` +
        `data ${Buffer.byteLength(message)}\n${message}\n${from === undefined ? "" : `from ${from}\n`}${data.join("")}\n`,
    );
    return `:${mark}`;
  };
  const base = [];
  for (let i = 0; i < 40; i++) {
    const lines = sourceLines(random, 300);
    files.set(`src/module${i}.ts`, lines);
    base.push({ path: `src/module${i}.ts`, content: `${lines.join("\n")}\n` });
  }
  const baseMark = commit("refs/heads/main", "base\n", base);
  let from = baseMark;
  for (let c = 0; c < PUSH.commits; c++) {
    const changes = [];
    // Roughly 60 % as a new file, 40 % inserted into an existing one.
    const newLines = sourceLines(random, Math.round((bytesPerCommit * 0.6) / LINE_BYTES));
    newLines.splice(Math.floor(newLines.length / 2), 0, ...(planted.get(c) ?? []));
    const path = `src/feature${c}/index.ts`;
    files.set(path, newLines);
    changes.push({ path, content: `${newLines.join("\n")}\n` });
    const existing = [...files.keys()][Math.floor(random() * 40)];
    const lines = files.get(existing);
    const inserted = sourceLines(random, Math.round((bytesPerCommit * 0.4) / LINE_BYTES));
    lines.splice(Math.floor(random() * lines.length), 0, ...inserted);
    if (lines.length > 3000) lines.splice(0, lines.length - 3000); // keep old files bounded
    changes.push({ path: existing, content: `${lines.join("\n")}\n` });
    if (c % 10 === 9) {
      const moved = `src/feature${c - 1}/index.ts`;
      const target = `src/moved/feature${c - 1}.ts`;
      files.set(target, files.get(moved));
      files.delete(moved);
      changes.push(
        { delete: moved },
        { path: target, content: `${files.get(target).join("\n")}\n` },
      );
    }
    from = commit(
      "refs/heads/push",
      `feature ${c}: ${sourceLines(random, 1)[0].trim()}\n`,
      changes,
      from,
    );
  }
  return { stream: parts.join(""), planted: planted.size };
}

/**
 * The bare repository of the bench: `main` at the base commit, and the pushed commits held by
 * no ref (as in a pre-receive hook, where the pushed refs have not moved yet). Returns the tip.
 */
async function buildPush(repo) {
  await git(["init", "-q", "--bare", repo]);
  const { stream, planted } = fastImportStream();
  await git(["fast-import", "--quiet"], { cwd: repo, input: stream });
  const tip = (await git(["rev-parse", "refs/heads/push"], { cwd: repo })).stdout.trim();
  await git(["update-ref", "-d", "refs/heads/push"], { cwd: repo });
  return { tip, planted, streamMiB: Buffer.byteLength(stream) / MiB };
}

// ---------------------------------------------------------------------------------------------
// Section 1: the scan.

/** newCommits + scanCommits (built-in scanner), as the hook runs them; times each. */
async function scanOnce(gate, repo, tip) {
  const env = gate.gitEnv(childGitEnv());
  const updates = [{ oldOid: gate.ZERO_OID, newOid: tip, ref: "refs/heads/feature" }];
  const t0 = performance.now();
  const commits = await gate.newCommits({ env, cwd: repo, updates });
  const t1 = performance.now();
  const result = await gate.scanCommits({ env, cwd: repo, commits, scanner: "builtin" });
  const t2 = performance.now();
  return {
    newCommitsMs: t1 - t0,
    scanMs: t2 - t1,
    totalMs: t2 - t0,
    commits: result.commits,
    bytes: result.bytes,
    findings: result.findings.length,
    rules: result.findings.map((finding) => finding.rule),
  };
}

/** The child's git environment: what the parent gave it (already an allowlist). */
function childGitEnv() {
  return { PATH: process.env.PATH, HOME: process.env.HOME };
}

/** One cold run: a fresh `node` process that imports the modules and scans once. */
async function measureCold(repo, tip) {
  const result = await must(
    process.execPath,
    [import.meta.filename, "--from", flags.from, "--child", `${repo},${tip}`],
    {
      env: { PATH: GIT_ENV.PATH, HOME },
    },
  );
  return JSON.parse(result.stdout.trim().split("\n").at(-1));
}

async function benchScan() {
  const repo = join(work, "mirror.git");
  progress(`building a push of ${PUSH.commits} commits, ~${PUSH.textMiB} MiB of text`);
  const push = await buildPush(repo);
  progress(`${RUNS} cold runs (a fresh node process each)`);
  const cold = [];
  for (let i = 0; i < RUNS; i++) cold.push(await measureCold(repo, push.tip));
  progress(`${RUNS} warm runs (one process)`);
  const gate = await loadGitGate(flags.from);
  const warm = [];
  await scanOnce(gate, repo, push.tip); // warm-up, not counted
  for (let i = 0; i < RUNS; i++) warm.push(await scanOnce(gate, repo, push.tip));
  const last = cold.at(-1);
  return {
    push: {
      commits: last.commits,
      mib: last.bytes / MiB,
      planted: push.planted,
      importMiB: push.streamMiB,
    },
    findings: last.findings,
    rules: [...new Set(last.rules)].sort(),
    cold: {
      importMs: summarize(cold.map((r) => r.importMs)),
      newCommitsMs: summarize(cold.map((r) => r.newCommitsMs)),
      scanMs: summarize(cold.map((r) => r.scanMs)),
      totalMs: summarize(cold.map((r) => r.totalMs)),
    },
    warm: {
      newCommitsMs: summarize(warm.map((r) => r.newCommitsMs)),
      scanMs: summarize(warm.map((r) => r.scanMs)),
      totalMs: summarize(warm.map((r) => r.totalMs)),
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Section 2: the pre-receive hook's overhead. The same push twice to the same kind of upstream
// (git http-backend behind a small HTTP server on loopback): once directly, once through the
// gate (bottle-git-gate entrypoint: token check, receive into the mirror's quarantine, the hook
// scans the new commits and forwards them upstream, then the mirror's refs move).

/** Starts `bottle-git-gate entrypoint` for a manifest; resolves with the gate's URL. */
async function startGate(manifest, stage, tokenFile, env) {
  const cli = join(ROOT, "packages/git-gate/dist/cli.js");
  const argv = [cli, "entrypoint", "--manifest", manifest, "--stage", stage];
  argv.push("--", "--token-file", tokenFile, "--port", "0");
  const child = track(process.execPath, argv, { env, stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  return new Promise((resolve, reject) => {
    child.stderr.setEncoding("utf8").on("data", (chunk) => {
      log = (log + chunk).slice(-8000);
      const url = /"url":"(http:\/\/[^"]+)"/.exec(log)?.[1];
      if (url) resolve(url);
    });
    child.once("exit", (code) => reject(new Error(`the gate exited (${code}): ${log}`)));
  });
}

async function benchOverhead() {
  if (!existsSync(join(ROOT, "packages/git-gate/dist/cli.js"))) {
    throw new Error("section 2 runs the built CLI: run `pnpm --filter @bottle/git-gate... build`");
  }
  const src = join(work, "clean.git");
  progress("section 2: building the same push without secrets");
  await git(["init", "-q", "--bare", src]);
  await git(["fast-import", "--quiet"], {
    cwd: src,
    input: fastImportStream({ plant: false }).stream,
  });
  const big = (await git(["rev-parse", "refs/heads/push"], { cwd: src })).stdout.trim();
  const tree = (await git(["rev-parse", "main^{tree}"], { cwd: src })).stdout.trim();
  const small = (
    await git(["commit-tree", tree, "-p", "main", "-m", "one small commit"], { cwd: src })
  ).stdout.trim();

  const root = join(work, "upstreams");
  mkdirSync(root);
  for (const name of ["plain.git", "gated.git"]) {
    await git([
      "clone",
      "-q",
      "--bare",
      "--single-branch",
      "--branch",
      "main",
      src,
      join(root, name),
    ]);
  }
  // The upstream demands the credential the gate holds (Basic x-access-token:<token>).
  const { serveGitHttp } = await import(
    pathToFileURL(join(ROOT, "tooling/test-utils/dist/git-http-server.js")).href
  );
  const upstreamToken = "bench-upstream-token";
  const upstream = await serveGitHttp({
    root,
    username: "x-access-token",
    password: upstreamToken,
  });

  const { createTokenStore } = await import(
    pathToFileURL(join(ROOT, "packages/gate-tokens/dist/index.js")).href
  );
  mkdirSync(join(work, "tokens"), { mode: 0o700 });
  const tokenFile = join(work, "tokens", "tokens.json");
  const { token } = await createTokenStore({ file: tokenFile }).create({
    project: "bench",
    task: "b",
  });
  const manifest = join(work, "bottle.yaml");
  writeFileSync(
    manifest,
    [
      "version: 1",
      "name: bench",
      "agent: { command: [agent] }",
      "git_gate:",
      "  repos:",
      "    api:",
      `      url: ${upstream.url("gated.git")}`,
      "      key: { provider: token, token_ref: BENCH_UPSTREAM_TOKEN }",
      "  scan: { scanner: builtin }",
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
  const stage = join(work, "stage");
  const gateEnv = { ...GIT_ENV, BENCH_UPSTREAM_TOKEN: upstreamToken };
  const gate = await startGate(manifest, stage, tokenFile, gateEnv);
  const gateUrl = gate.replace("http://", `http://${token}:x@`);
  const mirror = join(stage, "repos", "bench", "api.git");

  const directUrl = upstream
    .url("plain.git")
    .replace("http://", `http://x-access-token:${upstreamToken}@`);
  const time = async (target, tip) => {
    const t0 = performance.now();
    await git(["push", "-q", target, `${tip}:refs/heads/bench`], { cwd: src });
    return performance.now() - t0;
  };
  // Between runs the pushed ref goes away everywhere, so every run adds the same commits again.
  const reset = async () => {
    for (const dir of [join(root, "plain.git"), join(root, "gated.git"), mirror]) {
      await run("git", ["update-ref", "-d", "refs/heads/bench"], { cwd: dir });
    }
  };
  const results = {};
  for (const [name, tip] of [
    ["1 commit", small],
    [`${PUSH.commits} commits`, big],
  ]) {
    progress(`section 2: ${RUNS} pushes of ${name}, directly and through the gate`);
    const plain = [];
    const gated = [];
    for (let i = 0; i < RUNS; i++) {
      await reset();
      plain.push(await time(directUrl, tip));
      gated.push(await time(`${gateUrl}/bench/api.git`, tip));
    }
    const landed = (
      await git(["rev-parse", "refs/heads/bench"], { cwd: join(root, "gated.git") })
    ).stdout.trim();
    if (landed !== tip) throw new Error("the gated push did not reach the upstream");
    results[name] = { plainMs: summarize(plain), gateMs: summarize(gated) };
  }
  await upstream.close();
  return results;
}

// ---------------------------------------------------------------------------------------------
// Report.

function report(r) {
  const cell = (s) => `${s.median.toFixed(0)} (${s.min.toFixed(0)}–${s.max.toFixed(0)})`.padEnd(20);
  const pass = (ok) => (ok ? "PASS" : "MISS");
  const m = r.machine;
  const s = r.scan;
  const mibPerS = (ms) => (s.push.mib / (ms / 1000)).toFixed(1);
  const lines = [
    `bench/scan: nproc ${m.nproc} (${m.cpu}), Linux ${m.kernel}, node ${m.node}, ${m.git}, modules from ${r.from}`,
    `push: ${s.push.commits} commits, ${s.push.mib.toFixed(1)} MiB of added text scanned, ${s.push.planted} planted secrets`,
    `${r.runs} runs each; ms as median (min–max)`,
    "",
    `${"".padEnd(34)}${"newCommits".padEnd(20)}${"scanCommits".padEnd(20)}${"both".padEnd(20)}MiB/s`,
    `${"cold (fresh process, like a hook)".padEnd(34)}${cell(s.cold.newCommitsMs)}${cell(s.cold.scanMs)}${cell(s.cold.totalMs)}${mibPerS(s.cold.totalMs.median)}`,
    `${"warm (same process, after one)".padEnd(34)}${cell(s.warm.newCommitsMs)}${cell(s.warm.scanMs)}${cell(s.warm.totalMs)}${mibPerS(s.warm.totalMs.median)}`,
    `cold runs also spent ${s.cold.importMs.median.toFixed(0)} ms importing the modules (not counted above)`,
    "",
    `findings: ${s.findings} (${s.rules.join(", ")})`,
    "",
    "pre-receive overhead: the same push directly to the upstream and through the gate",
    `${"".padEnd(34)}${"direct".padEnd(20)}${"through the gate".padEnd(20)}gate − direct   ratio`,
    ...Object.entries(r.overhead).map(
      ([name, o]) =>
        `${name.padEnd(34)}${cell(o.plainMs)}${cell(o.gateMs)}${`${(o.gateMs.median - o.plainMs.median).toFixed(0)} ms`.padEnd(16)}${(o.gateMs.median / o.plainMs.median).toFixed(2)}×`,
    ),
    "",
    "targets:",
    ...r.targets.map((t) => `  ${pass(t.pass)}  ${t.name.padEnd(44)} ${t.measured}`),
  ];
  return `${lines.join("\n")}\n`;
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const scan = await benchScan();
  const overhead = await benchOverhead();
  const gitVersion = (await git(["--version"])).stdout.trim();
  return {
    machine: machineInfo({
      git: gitVersion,
    }),
    from: flags.from,
    runs: RUNS,
    scan,
    overhead,
    targets: [
      {
        name: `scan of ${PUSH.commits} commits / ${PUSH.textMiB} MiB ≤ ${TARGETS.scanMs} ms (cold)`,
        pass: scan.cold.totalMs.median <= TARGETS.scanMs,
        measured: `${scan.cold.totalMs.median.toFixed(0)} ms`,
      },
      {
        name: "every planted secret found",
        pass: scan.findings >= scan.push.planted,
        measured: `${scan.findings}/${scan.push.planted}`,
      },
    ],
  };
}

await runBench({ main, report, json: flags.json, workspace: ws });
