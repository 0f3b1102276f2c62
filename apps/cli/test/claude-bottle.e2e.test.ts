// Claude Code inside a bottle: the real `bottle run` brings up the real cred-proxy and runs the
// real Claude Code binary in the bubblewrap sandbox, on pipes and on a pseudo-terminal, against
// a fake of the Anthropic API that accepts only the real key. The key is a canary: the fake
// must see it, and nothing the agent or the operator sees may hold it.
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { PLACEHOLDER_KEY } from "@bottle/cli";
import {
  createBaseEnv,
  expectNoCanary,
  makeCanary,
  readTree,
  runProcess,
  startAnthropicFake,
  testdir,
} from "@bottle/test-utils";
import { describe, expect, it, onTestFinished } from "vitest";
import type { PsRow } from "../src/commands/ps.ts";
import { BIN, isRunning } from "./bottle-fixture.ts";
import { claudeBinary, screenText, watchScreen } from "./claude-code.ts";
import { pidnsMembers, stillRunning } from "./sandbox-helpers.ts";

const ANSWER = "Hi from the Anthropic fake, inside the bottle.";
/** The manifest's name, hence the bottle's. */
const NAME = "claude-inside";
/** How long one `bottle run` of Claude Code may take before it counts as hanging. */
const RUN_TIMEOUT_MS = 120_000;

/**
 * A bottle with only a proxy: its anthropic route leads to the fake and injects the key from
 * MODEL_API_KEY, and the directory of Claude Code's binary is bound read-only into the sandbox.
 * `bottle` runs the CLI with a minimal environment and this test's own state, cache and home.
 */
async function setup() {
  const key = makeCanary("sk-ant-api03");
  const anthropic = await startAnthropicFake({ key, answer: ANSWER });
  const dir = await testdir();
  const claude = claudeBinary();
  const manifest = join(dir, "bottle.yaml");
  await writeFile(
    manifest,
    `version: 1
name: ${NAME}
agent:
  command: ["${claude}"]
  binds: ["${dirname(claude)}"]
cred_proxy:
  routes:
    - path: /anthropic/
      upstream: "${anthropic.url}"
      auth: { header: x-api-key }
      token_ref: MODEL_API_KEY
      roles: [anthropic-base-url]
`,
  );
  const workspace = join(dir, "workspace");
  const home = join(dir, "home");
  for (const path of [workspace, home]) await mkdir(path);
  const env = createBaseEnv({
    HOME: home,
    XDG_STATE_HOME: join(dir, "state"),
    XDG_CACHE_HOME: join(dir, "cache"),
    MODEL_API_KEY: key,
  });
  const bottle = (args: string[], timeoutMs = 60_000) =>
    runProcess(process.execPath, [BIN, ...args], { env, cwd: dir, timeoutMs });
  /** `bottle run`'s arguments for `command` in this bottle. */
  const runArgs = (command: string[]) => [
    "run",
    manifest,
    "--yes",
    "--workspace",
    workspace,
    "--",
    ...command,
  ];
  const ps = async (): Promise<PsRow[]> => {
    const listed = await bottle(["ps", "--json"]);
    expect(listed.code, listed.stderr).toBe(0);
    return JSON.parse(listed.stdout) as PsRow[];
  };
  return { key, anthropic, dir, claude, env, workspace, bottle, runArgs, ps };
}

/** The fake answered every request, each with the key the proxy injected and no other. */
function expectKeyInjected(fake: Awaited<ReturnType<typeof setup>>["anthropic"], key: string) {
  const requests = fake.requests;
  expect(requests.map((r) => `${r.method} ${r.path}`)).toContain("POST /v1/messages");
  for (const request of requests) {
    expect(request.headers["x-api-key"]).toBe(key);
    expect(request.headers.authorization).toBeUndefined();
    expect(request.status).toBe(200);
  }
  // The agent sent the placeholder; the proxy replaced it.
  expect(JSON.stringify(requests.map((r) => r.headers))).not.toContain(PLACEHOLDER_KEY);
}

/** The host's running processes whose argv names `path`. */
function processesNaming(path: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(path)) found.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return found.filter(isRunning);
}

/** `promise`, or a failure saying `what` once `ms` have passed. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(what)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

describe("Claude Code inside a bottle", { tags: ["slow"], timeout: 300_000 }, () => {
  it("claude -p on pipes answers through the bottle's proxy, which injected the key the agent never held", async () => {
    const t = await setup();
    const run = await t.bottle(t.runArgs([t.claude, "-p", "say hi"]), RUN_TIMEOUT_MS);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout.trim()).toBe(ANSWER);
    expectKeyInjected(t.anthropic, t.key);
    const logs = await t.bottle(["logs", NAME]);
    expect(logs.code, logs.stderr).toBe(0);
    expect(
      logs.stdout
        .split("\n")
        .filter((line) => line.startsWith("{"))
        .map((line) => JSON.parse(line) as Record<string, unknown>)
        .filter((r) => r.msg === "request")
        .map((r) => [r.method, r.route, r.status]),
    ).toContainEqual(["POST", "/anthropic/", 200]);
    expect(await t.ps()).toEqual([
      expect.objectContaining({
        name: NAME,
        state: "stopped",
        sidecars: [],
        agent: null,
        ended: { reason: "the agent exited", exitCode: 0 },
      }),
    ]);

    // The same bottle, seen from inside: the environment of every process in the sandbox.
    const inside = await t.bottle(
      t.runArgs([
        "sh",
        "-c",
        'env; for f in /proc/[0-9]*/environ; do echo "== $f"; tr "\\0" "\\n" < "$f"; done',
      ]),
    );
    expect(inside.code, inside.stderr).toBe(0);
    expect(inside.stdout).toMatch(new RegExp(`^ANTHROPIC_API_KEY=${PLACEHOLDER_KEY}$`, "m"));
    expect(inside.stdout).toMatch(/^ANTHROPIC_BASE_URL=http:\/\/127\.0\.0\.1:9420\/anthropic$/m);
    // The shell and the sandbox's forwarder at least: the sweep read more than itself.
    expect(inside.stdout.match(/^== \/proc\/\d+\/environ$/gm)?.length).toBeGreaterThanOrEqual(2);
    const insideLogs = await t.bottle(["logs", NAME]);

    expectNoCanary(
      t.key,
      run.stdout,
      run.stderr,
      logs.stdout,
      logs.stderr,
      inside.stdout,
      inside.stderr,
      insideLogs.stdout,
      // What is left on disk: the bottle's state and logs, the workspace, the cache, the home.
      await readTree(t.dir),
    );
  });

  it("claude on a terminal: past the trust question, a message and its answer, /exit; bottle run exits 0 and the bottle is torn down with nothing left running", async () => {
    const t = await setup();
    const pty = await import("node-pty");
    const term = pty.spawn(process.execPath, [BIN, ...t.runArgs([t.claude])], {
      name: "xterm-256color",
      cols: 120,
      rows: 40,
      cwd: t.dir,
      env: { ...t.env, TERM: "xterm-256color" },
    });
    let exitCode: number | null = null;
    const exited = new Promise<number>((resolve) =>
      term.onExit((e) => {
        exitCode = e.exitCode;
        resolve(e.exitCode);
      }),
    );
    onTestFinished(async () => {
      if (exitCode !== null) return;
      // SIGTERM first: bottle run tears the bottle down on it.
      term.kill("SIGTERM");
      const timer = setTimeout(() => term.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(timer);
    });
    const screen = watchScreen(term);

    // A fresh home: the workspace's trust question is the user's to answer, as a user would.
    let ready = await screen.waitFor(["Yes, I trust this folder", "Claude Code v"]);
    if (ready.text !== "Claude Code v") {
      await screen.type("\x1b[B");
      await screen.type("\r");
      ready = await screen.waitFor("Claude Code v", ready.at);
    }
    await screen.type("say hi");
    await screen.type("\r");
    const answered = await screen.waitFor(ANSWER, ready.at);

    // While the agent runs: the bottle, its proxy and its agent.
    const [running] = await t.ps();
    expect(running).toMatchObject({
      name: NAME,
      state: "running",
      sidecars: [{ name: "proxy", state: "running" }],
      agent: { state: "running" },
    });
    const agent = running?.agent?.pid ?? 0;
    const pids = [term.pid, agent, ...(running?.sidecars.map((s) => s.pid) ?? [])];
    // The sandbox's processes (its own pid namespace) and the host's that name this bottle.
    expect(readlinkSync(`/proc/${agent}/ns/pid`)).not.toBe(readlinkSync("/proc/self/ns/pid"));
    const inSandbox = await pidnsMembers(agent);
    // bwrap's init, the forwarder and Claude Code; bottle run, bwrap and the proxy.
    expect(inSandbox.length).toBeGreaterThanOrEqual(3);
    expect(processesNaming(t.dir).length).toBeGreaterThanOrEqual(3);

    await screen.type("/exit");
    await screen.type("\r");
    const code = await within(exited, 30_000, "bottle run did not exit after /exit");
    expect(code, screenText(screen.raw().slice(answered.at))).toBe(0);

    // Torn down: stopped, no process of it left, only its record and logs kept.
    expect(await t.ps()).toEqual([
      expect.objectContaining({
        name: NAME,
        state: "stopped",
        sidecars: [],
        agent: null,
        ended: { reason: "the agent exited", exitCode: 0 },
      }),
    ]);
    for (const pid of pids) expect(isRunning(pid), `pid ${pid}`).toBe(false);
    expect(await stillRunning(inSandbox)).toEqual([]);
    expect(processesNaming(t.dir)).toEqual([]);
    expect(readdirSync(join(t.dir, "state", "bottle", NAME)).sort()).toEqual([
      "bottle.json",
      "logs",
    ]);

    // Past onboarding and the key question by the rendered .claude.json; the key was injected.
    const text = screenText(screen.raw());
    for (const question of ["Detected a custom API key", "Unable to connect to Anthropic services"])
      expect(text).not.toContain(question.replace(/\s+/g, ""));
    expectKeyInjected(t.anthropic, t.key);
    const logs = await t.bottle(["logs", NAME]);
    expect(logs.stdout).toContain('"route":"/anthropic/"');
    expectNoCanary(t.key, screen.raw(), logs.stdout, logs.stderr, await readTree(t.dir));
  });
});
