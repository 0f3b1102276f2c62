import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { expectNoCanary, git, makeCanary, startRegistry, startUpstream } from "@bottle/test-utils";
import { describe, expect, it } from "vitest";
import { BIN, isRunning, setupBottle } from "./bottle-fixture.ts";

type Setup = Awaited<ReturnType<typeof setupBottle>>;

interface PsRow {
  name: string;
  state: string;
  sidecars: Array<{ name: string; pid: number; state: string }>;
  agent: { pid: number; state: string } | null;
  ended: { reason: string; exitCode?: number } | null;
}

async function ps(t: Setup): Promise<PsRow[]> {
  const result = await t.bottle(["ps", "--json"]);
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as PsRow[];
}

/** Starts `bottle run` in the background; its output is collected. */
function startRun(t: Setup, args: string[]) {
  const child: ChildProcess = spawn(process.execPath, [BIN, "run", ...args], {
    env: t.env,
    cwd: t.dir,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (chunk) => {
    stdout += chunk;
  });
  child.stderr?.on("data", (chunk) => {
    stderr += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, exited, output: () => ({ stdout, stderr }) };
}

/** Waits until bottle `name`'s agent runs; returns its ps row. */
async function agentRunning(t: Setup, name: string): Promise<PsRow> {
  for (let i = 0; i < 300; i++) {
    const row = (await ps(t)).find((r) => r.name === name);
    if (row?.agent?.state === "running") return row;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`bottle ${name}'s agent never ran`);
}

/** Every process of a ps row: sidecars and agent. */
const pidsOf = (row: PsRow) => [
  ...row.sidecars.map((s) => s.pid),
  ...(row.agent ? [row.agent.pid] : []),
];

describe("bottle run", { tags: ["slow"] }, () => {
  it("clones, commits and pushes through the gate; a planted secret is refused with the reason", async () => {
    const t = await setupBottle();
    const agent = await t.script(
      "agent.sh",
      `set -e
git clone -q "${t.upstreamUrl}" work && cd work
echo 'export const answer = 42;' > answer.js
git add answer.js && git commit -qm "add the answer" && git push -q origin HEAD:main
echo "const token = \\"ghp_$(head -c 300 /dev/urandom | tr -dc A-Za-z0-9 | head -c 36)\\";" > config.js
git add config.js && git commit -qm "add config"
if git push origin HEAD:main; then echo PUSHED-SECRET; exit 1; fi
echo REFUSED`,
    );
    const run = await t.run("--", agent);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain("REFUSED");
    expect(run.stderr).toMatch(/push rejected: 1 possible secret/);
    const head = await git(["--git-dir", t.bare, "log", "-1", "--format=%s", "main"], {
      cwd: t.dir,
      env: t.gitEnv.env,
    });
    expect(head.stdout.trim()).toBe("add the answer");
    const objects = await git(["--git-dir", t.bare, "cat-file", "--batch-all-objects", "--batch"], {
      cwd: t.dir,
      env: t.gitEnv.env,
    });
    expect(objects.stdout).not.toContain("ghp_");
    // The agent's clone is in the workspace, on the host.
    expect(readFileSync(join(t.workspace, "work", "answer.js"), "utf8")).toContain("42");
  });

  it("exits with the agent's exit code and tears the bottle down", async () => {
    const t = await setupBottle();
    const run = await t.run("--name", "seven", "--", "sh", "-c", "exit 7");
    expect(run.code, run.stderr).toBe(7);
    const [row] = await ps(t);
    expect(row).toMatchObject({ name: "seven", state: "stopped", sidecars: [] });
    expect(row?.ended).toEqual({ reason: "the agent exited", exitCode: 7 });
  });

  it("gives the agent only its sockets, no capability, seccomp, and no way to the host's loopback", async () => {
    const t = await setupBottle();
    const host = await startUpstream();
    const agent = await t.script(
      "probe.sh",
      `echo "run: $(ls /run/bottle | tr '\\n' ' ')"
grep -E '^(CapEff|CapPrm|Seccomp):' /proc/self/status
if curl -s --max-time 3 http://127.0.0.1:${host.port}/ >/dev/null; then echo HOST-REACHED; fi
if unshare -U true 2>/dev/null; then echo UNSHARED; fi
curl -s --max-time 5 -o /dev/null -w 'proxy %{http_code}\\n' http://127.0.0.1:9420/api/ping`,
    );
    const run = await t.run("--", agent);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain("run: gate.sock proxy.sock \n");
    expect(run.stdout).toMatch(/^CapEff:\s+0+$/m);
    expect(run.stdout).toMatch(/^CapPrm:\s+0+$/m);
    expect(run.stdout).toMatch(/^Seccomp:\s+2$/m);
    expect(run.stdout).not.toContain("HOST-REACHED");
    expect(run.stdout).not.toContain("UNSHARED");
    expect(host.requests).toHaveLength(0);
    // The proxy is the way out: the route's upstream got the request with the real key.
    expect(run.stdout).toContain("proxy 200");
    expect(t.api.requests.at(-1)?.headers.authorization).toBe(`Bearer ${t.apiKey}`);
  });

  it("leaves no host secret in the agent's environment, files, /proc, or any output", async () => {
    const extra = makeCanary("extra");
    const t = await setupBottle({
      routesYaml:
        "    - { path: /extra/, upstream: 'https://extra.example', auth: { header: x-key }, token_ref: EXTRA_KEY }\n",
      env: { EXTRA_KEY: extra },
    });
    const agent = await t.script(
      "look.sh",
      `env
cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' '\\n'
find "$HOME" /etc /workspace /tmp -type f 2>/dev/null | while read -r f; do echo "== $f"; cat "$f"; done`,
    );
    const run = await t.run("--name", "look", "--", agent);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^HOME=/m);
    expect(run.stdout).toContain("== /etc/passwd");
    const logs = await t.bottle(["logs", "look"]);
    const record = readFileSync(join(t.stateOf("look"), "bottle.json"), "utf8");
    for (const canary of [t.upstreamToken, t.apiKey, extra]) {
      expectNoCanary(canary, run.stdout, run.stderr, logs.stdout, record);
    }
  });

  it("installs from a registry through the proxy, with no registry token in the bottle", async () => {
    const registry = await startRegistry({ publicUrl: "http://127.0.0.1:9420/npm/" });
    await registry.publish({ name: "tiny-bottled", text: "hello from the registry" });
    const t = await setupBottle({
      routesYaml: `    - { path: /npm/, upstream: "${registry.url}", auth: { scheme: Bearer }, token_ref: NPM_TOKEN, roles: [npm-registry] }\n`,
      env: { NPM_TOKEN: registry.token },
    });
    const agent = await t.script(
      "npm.sh",
      `set -e
mkdir -p /tmp/p && cd /tmp/p && npm init -y >/dev/null
npm install --no-audit --no-fund tiny-bottled >/dev/null 2>&1 || { cat ~/.npm/_logs/*.log | tail -20; exit 1; }
node -e 'console.log(require("tiny-bottled"))'`,
    );
    const run = await t.run("--", agent);
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
    expect(run.stdout).toContain("hello from the registry");
    expectNoCanary(registry.token, run.stdout, run.stderr);
  });

  // A bottle whose agent sleeps, something happens to it, and then nothing of it runs.
  it.each([
    {
      what: "stops the agent and tears down on SIGINT",
      act: (run: ChildProcess) => run.kill("SIGINT"),
      code: 143,
      stderr: /stopping the agent: SIGINT received/,
    },
    {
      what: "stops the agent with the reason when a sidecar stops",
      act: (_run: ChildProcess, row: PsRow) =>
        process.kill(row.sidecars.find((s) => s.name === "gate")?.pid ?? 0, "SIGKILL"),
      code: 4,
      stderr: /^BTL_CLI_SIDECAR: the gate sidecar stopped \(SIGKILL\)/m,
    },
    {
      what: "cleans the bottle of a SIGKILLed bottle run on the next command",
      act: (run: ChildProcess) => run.kill("SIGKILL"),
      code: null,
      stderr: /^/,
    },
  ])("$what", async ({ act, code, stderr }) => {
    const t = await setupBottle();
    const args = [t.manifest, "--yes", "--workspace", t.workspace, "--name", "nap"];
    const run = startRun(t, [...args, "--", "sleep", "300"]);
    const row = await agentRunning(t, "nap");
    act(run.child, row);
    expect(await run.exited).toBe(code);
    expect(run.output().stderr).toMatch(stderr);
    // The next command (here ps) finds what a killed run left, and cleans it.
    const [after] = await ps(t);
    expect(after).toMatchObject({ name: "nap", state: "stopped", sidecars: [] });
    for (const pid of pidsOf(row)) expect(isRunning(pid)).toBe(false);
  });

  it("gives the agent bottle's stdin to its end when there is no terminal", async () => {
    const t = await setupBottle();
    const run = await t.runPiped();
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain("TWO LINES\nFROM A PIPE\nEND\n");
  });

  it("runs two bottles of one manifest at once without a collision", async () => {
    const t = await setupBottle();
    const pushes = await Promise.all(
      ["one", "two"].map(async (name) => {
        const agent = await t.script(
          `${name}.sh`,
          `set -e
git clone -q "${t.upstreamUrl}" /tmp/w && cd /tmp/w
echo ${name} > ${name}.txt && git add . && git commit -qm ${name}
sleep 1
git push -q origin HEAD:refs/heads/${name}
echo pushed-${name}`,
        );
        return t.run("--name", name, "--", agent);
      }),
    );
    for (const [i, run] of pushes.entries()) {
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).toContain(`pushed-${["one", "two"][i]}`);
    }
    const branches = await git(["--git-dir", t.bare, "branch", "--format=%(refname:short)"], {
      cwd: t.dir,
      env: t.gitEnv.env,
    });
    expect(branches.stdout.split("\n").filter(Boolean).sort()).toEqual(["main", "one", "two"]);
  });
});
