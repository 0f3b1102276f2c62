import { type ChildProcess, spawn } from "node:child_process";
import { chmod, chown, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expectNoCanary, git, startUpstream } from "@bottle/test-utils";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { BIN, setupBottle } from "./bottle-fixture.ts";
import { type Podman, podmanMissing, startPodman } from "./podman-fixture.ts";

// These tests run on their own (`pnpm test:docker`, after tooling/images.sh): without podman
// they fail, saying so.
const missing = podmanMissing();
if (missing !== null) throw new Error(`the docker backend's tests need podman: ${missing}`);

/** The images tooling/images.sh builds (or others named in the environment). */
const IMAGES = {
  BOTTLE_CLI_GATE_IMAGE: process.env.BOTTLE_CLI_GATE_IMAGE || "bottle-gate:dev",
  BOTTLE_CLI_PROXY_IMAGE: process.env.BOTTLE_CLI_PROXY_IMAGE || "bottle-cred-proxy:dev",
  BOTTLE_CLI_FORWARDER_IMAGE: process.env.BOTTLE_CLI_FORWARDER_IMAGE || "",
};
/** The agent's image: one with sh, git and node (the gate's has all three). */
const AGENT_IMAGE = process.env.BOTTLE_TEST_AGENT_IMAGE || IMAGES.BOTTLE_CLI_GATE_IMAGE;
/** The agent's user when the tests run as root: the workspace's owner. */
const AGENT_UID = 1000;

type Setup = Awaited<ReturnType<typeof setupBottle>>;

interface PsRow {
  name: string;
  backend: string;
  state: string;
  sidecars: Array<{ name: string; pid: number; state: string }>;
  agent: { pid: number; state: string } | null;
}

describe("the docker backend against podman", { tags: ["slow"], timeout: 180_000 }, () => {
  let engine: Podman;
  beforeAll(async () => {
    engine = await startPodman();
  }, 60_000);
  afterAll(async () => {
    // A test that failed half-way may have left a bottle running whose directory is gone.
    for (const row of lines(
      engine.podman(["ps", "-a", "--filter", "label=dev.bottle.root", "--format", ROW_FORMAT]),
    )) {
      const [name, root] = row.split(" ");
      if (name && root?.startsWith(join(tmpdir(), "bottle-test-"))) leftoverNames.push(name);
    }
    // The agents first: they live in their forwarder's network namespace.
    leftoverNames.sort((a, b) => Number(b.endsWith("-agent")) - Number(a.endsWith("-agent")));
    for (const name of leftoverNames) engine.podman(["rm", "-f", "-v", name]);
    await engine?.stop();
    expect(leftoverNames, "containers left behind by a failed test").toEqual([]);
  });
  const leftoverNames: string[] = [];
  const ROW_FORMAT = '{{.Names}} {{index .Labels "dev.bottle.root"}}';

  /** A bottle on local upstreams whose sidecars run in containers on the host's network. */
  async function dockerBottle(): Promise<Setup> {
    const t = await setupBottle({
      agentImage: AGENT_IMAGE,
      env: {
        DOCKER_HOST: engine.dockerHost,
        // The upstreams are the host's loopback fakes; production keeps the default bridge.
        BOTTLE_CLI_SIDECAR_NETWORK: "host",
        ...IMAGES,
      },
    });
    if (process.getuid?.() === 0) await chown(t.workspace, AGENT_UID, AGENT_UID);
    return t;
  }

  async function script(t: Setup, name: string, body: string): Promise<string> {
    const path = join(t.workspace, name);
    await writeFile(path, `#!/bin/sh\n${body}\n`);
    await chmod(path, 0o755);
    if (process.getuid?.() === 0) await chown(path, AGENT_UID, AGENT_UID);
    return `/workspace/${name}`;
  }

  /** What the engine still holds of bottle `name`: containers, networks, volumes. */
  function leftovers(name: string): string[] {
    const label = `label=dev.bottle.name=${name}`;
    return [
      ...lines(engine.podman(["ps", "-a", "--filter", label, "--format", "{{.Names}}"])),
      ...lines(engine.podman(["network", "ls", "--filter", label, "--format", "{{.Name}}"])),
      ...lines(engine.podman(["volume", "ls", "--filter", label, "--format", "{{.Name}}"])),
    ];
  }

  async function ps(t: Setup): Promise<PsRow[]> {
    const result = await t.bottle(["ps", "--json"]);
    expect(result.code, result.stderr).toBe(0);
    return JSON.parse(result.stdout) as PsRow[];
  }

  /** `bottle run --backend docker --name NAME -- CMD…` in the background. */
  function runInBackground(t: Setup, name: string, command: string[]) {
    const child: ChildProcess = spawn(
      process.execPath,
      [BIN, ...t.argsOf("run", "--backend", "docker", "--name", name, "--", ...command)],
      { env: t.env, cwd: t.dir, stdio: "ignore" },
    );
    // SIGTERM: bottle run tears its bottle down.
    const exited = new Promise<number | null>((resolve) =>
      child.once("exit", (code) => resolve(code)),
    );
    onTestFinished(async () => {
      child.kill("SIGTERM");
      await Promise.race([exited, sleep(30_000)]);
    });
    return { child, exited };
  }

  /** Waits until bottle `name`'s agent container runs. */
  async function agentRunning(t: Setup, name: string): Promise<void> {
    for (let i = 0; i < 600; i++) {
      const row = (await ps(t)).find((r) => r.name === name);
      if (row?.agent?.state === "running") return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`bottle ${name}'s agent never ran`);
  }

  it("clones, pushes through the gate and calls the proxy from the agent's container, which holds no credential and reaches nothing else", async () => {
    const t = await dockerBottle();
    const host = await startUpstream();
    const agent = await script(
      t,
      "agent.sh",
      `set -e
git clone -q "${t.upstreamUrl}" work && cd work
echo 'export const answer = 42;' > answer.js
git add answer.js && git commit -qm "add the answer" && git push -q origin HEAD:main
cd ..
echo "uid $(id -u)"
grep -E '^(CapEff|NoNewPrivs):' /proc/self/status
if touch /rootfs-write 2>/dev/null; then echo ROOT-WRITABLE; fi
node -e '
const net = require("node:net");
console.log("interfaces", Object.keys(require("node:os").networkInterfaces()).join(","));
fetch("http://127.0.0.1:9420/api/ping").then(async (r) => {
  console.log("proxy", r.status, await r.text());
  const probe = net.connect(${host.port}, "127.0.0.1");
  probe.once("connect", () => { console.log("HOST-REACHED"); probe.destroy(); });
  probe.once("error", (e) => console.log("host loopback", e.code));
});'
env
cat "$HOME/.gitconfig"`,
    );
    const run = await t.run("--backend", "docker", "--name", "dock", "--", agent);
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);

    // The push went through the gate to the upstream.
    const head = await git(["--git-dir", t.bare, "log", "-1", "--format=%s", "main"], {
      cwd: t.dir,
      env: t.gitEnv.env,
    });
    expect(head.stdout.trim()).toBe("add the answer");
    // The proxy injected the real key; the agent had none.
    expect(run.stdout).toContain('proxy 200 {"ok":true}');
    expect(t.api.requests.at(-1)?.headers.authorization).toBe(`Bearer ${t.apiKey}`);
    // Its own loopback only: the host's loopback service never saw a connection.
    expect(run.stdout).toContain("interfaces lo\n");
    expect(run.stdout).toContain("host loopback ECONNREFUSED");
    expect(run.stdout).not.toContain("HOST-REACHED");
    expect(host.requests).toHaveLength(0);
    // Not root, no capability, no privilege gain, a read-only root.
    expect(run.stdout).toContain(`uid ${AGENT_UID}\n`);
    expect(run.stdout).toMatch(/^CapEff:\s+0+$/m);
    expect(run.stdout).toMatch(/^NoNewPrivs:\s+1$/m);
    expect(run.stdout).not.toContain("ROOT-WRITABLE");
    for (const canary of [t.upstreamToken, t.apiKey]) {
      expectNoCanary(canary, run.stdout, run.stderr);
    }
    // The run tore everything down.
    expect(leftovers("dock")).toEqual([]);
    const [row] = await ps(t);
    expect(row).toMatchObject({ name: "dock", backend: "docker", state: "stopped" });
  });

  it("bottle up starts the sidecar containers; ps and logs show them; down leaves no container, network or volume", async () => {
    const t = await dockerBottle();
    const up = await t.bottle(t.argsOf("up", "--backend", "docker", "--name", "upd"));
    expect(up.code, up.stderr).toBe(0);
    const names = lines(
      engine.podman([
        "ps",
        "--filter",
        "label=dev.bottle.name=upd",
        "--format",
        "{{.Names}} {{.Labels}}",
      ]),
    );
    expect(names.map((n) => n.split(" ")[0]).sort()).toEqual([
      "bottle-upd-gate",
      "bottle-upd-proxy",
    ]);
    expect(names.join("\n")).toContain("dev.bottle.role:gate");
    // The images declare volumes (state on volumes): each container's anonymous ones.
    const ids = lines(engine.podman(["ps", "-a", "--filter", "label=dev.bottle.name=upd", "-q"]));
    const volumes = lines(
      engine.podman([
        "inspect",
        ...ids,
        "--format",
        '{{range .Mounts}}{{if eq .Type "volume"}}{{.Name}}\n{{end}}{{end}}',
      ]),
    );

    const [row] = await ps(t);
    expect(row).toMatchObject({ name: "upd", backend: "docker", state: "running" });
    expect(row?.sidecars.map((s) => [s.name, s.state])).toEqual([
      ["gate", "running"],
      ["proxy", "running"],
    ]);
    const logs = await t.bottle(["logs", "upd"]);
    expect(logs.code, logs.stderr).toBe(0);
    expect(logs.stdout).toMatch(/^gate {2}\| .*"listening"/m);
    expect(logs.stdout).toMatch(/^proxy \| .*"listening"/m);
    expectNoCanary(t.apiKey, logs.stdout);
    const proxyOnly = await t.bottle(["logs", "upd", "--sidecar", "proxy"]);
    expect(proxyOnly.stdout).toMatch(/^\{.*"listening"/m);

    const down = await t.bottle(["down", "upd"]);
    expect(down.code, down.stderr).toBe(0);
    expect(leftovers("upd")).toEqual([]);
    expect(volumes.length, "the images keep their state on volumes").toBeGreaterThan(0);
    const allVolumes = lines(engine.podman(["volume", "ls", "--format", "{{.Name}}"]));
    expect(allVolumes.filter((v) => volumes.includes(v))).toEqual([]);
    expect((await ps(t)).map((r) => r.name)).not.toContain("upd");
  });

  it("gives the agent a terminal of its own: its size, the user's keys, its exit code", async () => {
    const t = await dockerBottle();
    const pty = await import("node-pty");
    const term = pty.spawn(
      process.execPath,
      [
        BIN,
        ...t.argsOf("run", "--backend", "docker", "--name", "tty"),
        "--",
        "sh",
        "-c",
        'stty size; [ -t 0 ] && echo "on a tty"; read line; echo "got $line"; exit 3',
      ],
      { name: "xterm", cols: 91, rows: 27, cwd: t.dir, env: { ...t.env, TERM: "xterm" } },
    );
    let screen = "";
    term.onData((data) => {
      screen += data;
    });
    const exited = new Promise<number>((resolve) => term.onExit((e) => resolve(e.exitCode)));
    onTestFinished(async () => {
      term.kill("SIGTERM");
      await Promise.race([exited, sleep(30_000)]);
    });
    const waitFor = async (text: string) => {
      for (let i = 0; i < 1200 && !screen.includes(text); i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(screen).toContain(text);
    };
    await waitFor("on a tty");
    expect(screen).toContain("27 91");
    term.write("hello\r");
    await waitFor("got hello");
    expect(await exited).toBe(3);
    expect(leftovers("tty")).toEqual([]);
  });

  it("gives the agent bottle's stdin to its end when there is no terminal", async () => {
    const t = await dockerBottle();
    const run = await t.runPiped("--backend", "docker", "--name", "piped");
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain("TWO LINES\nFROM A PIPE\nEND\n");
    expect(leftovers("piped")).toEqual([]);
  });

  it("stops the agent's container and tears everything down when bottle run gets SIGTERM", async () => {
    const t = await dockerBottle();
    const run = runInBackground(t, "term", ["sleep", "300"]);
    await agentRunning(t, "term");
    run.child.kill("SIGTERM");
    expect(await run.exited).toBe(143);
    expect(leftovers("term")).toEqual([]);
    const [row] = await ps(t);
    expect(row).toMatchObject({ name: "term", state: "stopped" });
  });

  it("cleans up the containers of a bottle whose bottle run was SIGKILLed", async () => {
    const t = await dockerBottle();
    const run = runInBackground(t, "killed", ["sleep", "300"]);
    await agentRunning(t, "killed");
    expect(leftovers("killed").sort()).toEqual([
      "bottle-killed-agent",
      "bottle-killed-forwarder",
      "bottle-killed-gate",
      "bottle-killed-proxy",
    ]);
    run.child.kill("SIGKILL");
    await run.exited;
    // The next command finds the orphan and tears it down.
    const [after] = await ps(t);
    expect(after).toMatchObject({ name: "killed", state: "stopped" });
    expect(leftovers("killed")).toEqual([]);
  });
});

describe("the docker backend without an engine", { tags: ["slow"] }, () => {
  it("fails with BTL_CLI_DOCKER_UNREACHABLE and a hint, before starting anything", async () => {
    const t = await setupBottle({
      agentImage: AGENT_IMAGE,
      env: { DOCKER_HOST: "unix:///nonexistent/docker.sock" },
    });
    const run = await t.run("--backend", "docker", "--", "true");
    expect(run.code).toBe(3);
    expect(run.stderr).toMatch(
      /^BTL_CLI_DOCKER_UNREACHABLE: no container engine answers on \/nonexistent\/docker\.sock/m,
    );
    expect(run.stderr).toContain("podman system service");
  });
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function lines(text: string): string[] {
  return text.split("\n").filter((line) => line.trim() !== "");
}
