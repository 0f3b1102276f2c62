// The demo: a whole bottle on local upstreams. An SSH git upstream with a pinned host key, a
// fake of the Anthropic Messages API, and a scripted agent (agent.sh) inside the default
// sandbox that clones, pushes, tries a planted key, calls the model API, looks for a real token
// and probes the host's loopback. Prints a ✓/✗ report and leaves nothing running.
// Run through `tooling/setup.sh -- pnpm demo`, which provides Node and builds everything first.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { generateSshKey, startAnthropicFake, startSshGitServer } from "../test-utils/dist/index.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const cli = join(root, "apps", "cli", "dist", "cli.js");
const started = Date.now();
const scratch = mkdtempSync(join(tmpdir(), "bottle-demo-"));
const results = [];
const check = (ok, name, detail = "") => results.push({ ok, name, detail });
const bold = (text) => (process.stdout.isTTY ? `\x1b[1m${text}\x1b[0m` : text);
const section = (text) => process.stdout.write(`\n${bold(`━━ ${text}`)}\n`);

// git on the host, for the upstream: no system or user configuration.
const gitEnv = {
  PATH: process.env.PATH,
  HOME: scratch,
  GIT_CONFIG_NOSYSTEM: "1",
  GIT_CONFIG_GLOBAL: "/dev/null",
  GIT_AUTHOR_NAME: "Operator",
  GIT_AUTHOR_EMAIL: "op@acme.example",
  GIT_COMMITTER_NAME: "Operator",
  GIT_COMMITTER_EMAIL: "op@acme.example",
};
const git = (args, cwd = scratch) =>
  new Promise((resolve, reject) => {
    const child = spawn("git", args, { cwd, env: gitEnv, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    child.on("exit", (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(out))));
  });

const closers = [];
try {
  section("the upstreams, on this machine's loopback");
  const upstreams = join(scratch, "upstreams");
  const bare = join(upstreams, "acme", "api.git");
  mkdirSync(join(upstreams, "acme"), { recursive: true });
  await git(["init", "-q", "--bare", "-b", "main", bare]);
  const seed = join(scratch, "seed");
  await git(["init", "-q", "-b", "main", seed]);
  writeFileSync(join(seed, "README.md"), "# api\n");
  await git(["add", "-A"], seed);
  await git(["commit", "-qm", "first"], seed);
  await git(["push", "-q", bare, "main"], seed);

  const keys = join(scratch, "keys");
  mkdirSync(keys, { mode: 0o700 });
  const identity = await generateSshKey(keys, "gate_ed25519");
  const ssh = await startSshGitServer({
    root: upstreams,
    authorizedKeys: [identity.publicKeyLine],
    closeAfterTest: false,
  });
  closers.push(() => ssh.close());
  const upstream = ssh.url(bare);
  console.log(`git upstream   ${upstream} (host key pinned: ${ssh.hostKeyLine.slice(0, 40)}…)`);

  const apiKey = `sk-ant-demo-${randomBytes(18).toString("hex")}`;
  const model = await startAnthropicFake({
    key: apiKey,
    answer: "Hello from the model, via the proxy.",
    closeAfterTest: false,
  });
  closers.push(() => model.close());
  console.log(`model API fake ${model.url} (accepts only the key the proxy holds)`);

  const hostService = createServer((_req, res) => res.end("a host-only service\n"));
  await new Promise((resolve) => hostService.listen(0, "127.0.0.1", resolve));
  closers.push(() => new Promise((resolve) => hostService.close(resolve)));
  const hostPort = hostService.address().port;
  console.log(`host service   http://127.0.0.1:${hostPort}/ (not given to the bottle)`);

  const config = join(scratch, "config");
  mkdirSync(config, { mode: 0o700 });
  const manifest = join(config, "demo.yaml");
  writeFileSync(
    manifest,
    `version: 1
name: demo
agent: { command: [bash, /workspace/agent.sh] }
git_gate:
  user: { name: Demo Agent, email: agent@acme.example }
  repos:
    api:
      url: ${upstream}
      key: { provider: static, identity: ${identity.privateKeyPath} }
      host_key: ${ssh.hostKeyLine}
  scan: { scanner: builtin }
cred_proxy:
  routes:
    - path: /anthropic/
      upstream: ${model.url}
      auth: { header: x-api-key }
      token_ref: DEMO_ANTHROPIC_KEY
      roles: [anthropic-base-url]
`,
    { mode: 0o600 },
  );
  const workspace = join(scratch, "workspace");
  mkdirSync(workspace);
  cpSync(join(root, "tooling", "demo", "agent.sh"), join(workspace, "agent.sh"));
  chmodSync(join(workspace, "agent.sh"), 0o755);

  section(`bottle run demo.yaml --yes -- bash /workspace/agent.sh …`);
  const env = {
    PATH: process.env.PATH,
    HOME: join(scratch, "home"),
    XDG_STATE_HOME: join(scratch, "state"),
    XDG_CACHE_HOME: join(scratch, "cache"),
    DEMO_ANTHROPIC_KEY: apiKey,
    ...(process.env.TERM ? { TERM: process.env.TERM } : {}),
  };
  mkdirSync(env.HOME, { mode: 0o700 });
  const bottle = (args, stdio = ["ignore", "pipe", "inherit"]) =>
    spawn(process.execPath, [cli, ...args], { cwd: config, env, stdio });
  const run = bottle([
    "run",
    manifest,
    "--yes",
    "--workspace",
    workspace,
    "--",
    "bash",
    "/workspace/agent.sh",
    upstream,
    String(hostPort),
  ]);
  let output = "";
  run.stdout.on("data", (chunk) => {
    output += chunk;
    process.stdout.write(chunk);
  });
  const code = await new Promise((resolve) => run.on("exit", (c) => resolve(c ?? 1)));

  for (const line of output.split("\n")) {
    const match = /^STEP (ok|fail) ([^:]+): (.*)$/.exec(line);
    if (match) check(match[1] === "ok", `agent: ${match[2]}`, match[3]);
  }
  check(code === 0, "bottle run exits with the agent's code", `exit code ${code}`);
  check(!output.includes(apiKey), "the agent's output holds no real key");

  // What reached the upstream: the clean commit, never the planted key.
  const head = await git(["--git-dir", bare, "log", "-1", "--format=%s", "main"]);
  check(head === "add the answer", "the clean push reached the upstream", `upstream main: ${head}`);
  const objects = await git(["--git-dir", bare, "cat-file", "--batch-all-objects", "--batch"]);
  check(!/ghp_[A-Za-z0-9]{36}/.test(objects), "no object of the upstream holds the planted key");
  const keyed = model.requests.filter((r) => r.headers["x-api-key"] === apiKey);
  check(
    keyed.length > 0,
    "the model API saw the real key, injected by the proxy",
    `${keyed.length} request(s)`,
  );

  const ps = bottle(["ps", "--json"]);
  let psOut = "";
  ps.stdout.on("data", (d) => (psOut += d));
  await new Promise((resolve) => ps.on("exit", resolve));
  const rows = JSON.parse(psOut);
  const left = rows
    .flatMap((r) => [...r.sidecars, ...(r.agent ? [r.agent] : [])])
    .filter((p) => p.state === "running");
  check(
    rows.every((r) => r.state === "stopped") && left.length === 0,
    "nothing left running",
    `bottle ps: ${rows.map((r) => `${r.name} ${r.state}`).join(", ")}`,
  );
  const down = bottle(["down", "--all"], ["ignore", "ignore", "ignore"]);
  await new Promise((resolve) => down.on("exit", resolve));
} catch (error) {
  check(false, "the demo ran", String(error?.stack ?? error));
} finally {
  for (const close of closers.reverse()) await close().catch(() => {});
  rmSync(scratch, { recursive: true, force: true });
}

section("report");
for (const r of results)
  console.log(`${r.ok ? "✓" : "✗"} ${r.name}${r.detail ? ` — ${r.detail}` : ""}`);
const failed = results.filter((r) => !r.ok).length;
console.log(
  `\n${results.length - failed}/${results.length} checks passed in ${((Date.now() - started) / 1000).toFixed(1)} s`,
);
process.exitCode = failed === 0 && results.length > 0 ? 0 : 1;
