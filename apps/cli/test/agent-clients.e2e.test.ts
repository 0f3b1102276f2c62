// Real agent clients with nothing but what renderAgentSide gives them, against the real
// sidecars on this host: Claude Code and npm through the `bottle-cred-proxy` binary (to a fake
// of the Anthropic API and a real registry, both demanding the real credential), git through
// the `bottle-gate` binary. The proxy listens on a unix socket and a small TCP forwarder puts
// it on 127.0.0.1, as the sandbox's forwarder will. Planted canaries (the key, the registry
// token) must show up nowhere the agent can see.
import { readFileSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { createServer as createHttpServer } from "node:http";
import { createRequire } from "node:module";
import { connect, createServer, type Socket } from "node:net";
import { dirname, join } from "node:path";
import { renderAgentSide } from "@bottle/cli";
import { prepareCredProxy, proxyTokenEnv } from "@bottle/cred-proxy";
import { createTokenStore } from "@bottle/gate-tokens";
import { prepareGitGate } from "@bottle/git-gate";
import { type Manifest, parseManifest } from "@bottle/manifest";
import {
  createBaseEnv,
  createGitEnv,
  createWorkRepo,
  expectNoCanary,
  git,
  makeCanary,
  runProcess,
  startAnthropicFake,
  startProcess,
  startRegistry,
  testdir,
} from "@bottle/test-utils";
import { describe, expect, it, onTestFinished } from "vitest";
import { claudeBinary, screenText, watchScreen } from "./claude-code.ts";

const require = createRequire(import.meta.url);
const ANSWER = "Hi from the Anthropic fake.";
/** How long one agent run may take before it counts as hanging. */
const RUN_TIMEOUT_MS = 60_000;

/** The file a package's `bin` names, resolved from this package's dependencies. */
function binOf(pkg: string, name: string): string {
  const manifest = require.resolve(`${pkg}/package.json`);
  const { bin } = JSON.parse(readFileSync(manifest, "utf8")) as {
    bin: Record<string, string>;
  };
  return join(dirname(manifest), bin[name] ?? "");
}

/** The text of every file under `dir`, for leak checks over what a client left behind. */
async function readTree(dir: string): Promise<string> {
  const texts: string[] = [];
  for (const entry of await readdir(dir, { recursive: true })) {
    try {
      texts.push(await readFile(join(dir, entry), "latin1"));
    } catch {
      // A directory.
    }
  }
  return texts.join("\n");
}

/**
 * A TCP port on 127.0.0.1 whose connections are relayed to the unix socket `path` (refused
 * until something listens there). Closed when the test finishes.
 */
async function forwardToSocket(path: string): Promise<string> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect({ path });
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
      socket.on("close", () => sockets.delete(socket));
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen({ host: "127.0.0.1", port: 0 }, resolve));
  onTestFinished(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no TCP address");
  return `http://127.0.0.1:${address.port}`;
}

/**
 * An HTTP proxy that refuses everything and records what a client tried to reach through it:
 * set as HTTPS_PROXY/HTTP_PROXY (with NO_PROXY for loopback), it shows every connection a
 * client attempts to anything but the bottle's own sidecars.
 */
async function startEgressObserver() {
  const attempts: string[] = [];
  const http = createHttpServer((req, res) => {
    attempts.push(`${req.method} ${req.url}`);
    res.writeHead(403).end();
  });
  http.on("connect", (req, socket: Socket) => {
    attempts.push(`CONNECT ${req.url}`);
    socket.on("error", () => {});
    socket.end("HTTP/1.1 403 Forbidden\r\n\r\n");
  });
  await new Promise<void>((resolve) => http.listen({ host: "127.0.0.1", port: 0 }, resolve));
  onTestFinished(async () => {
    http.closeAllConnections();
    await new Promise<void>((resolve) => http.close(() => resolve()));
  });
  const address = http.address();
  if (address === null || typeof address === "string") throw new Error("no TCP address");
  const url = `http://127.0.0.1:${address.port}`;
  return { attempts, env: { HTTPS_PROXY: url, HTTP_PROXY: url, NO_PROXY: "127.0.0.1" } };
}

function manifestOf(text: string): Manifest {
  return parseManifest(text, { filename: "bottle.yaml", checkFiles: false });
}

/**
 * A bottle's host side: the Anthropic fake and a registry holding `bottle-tiny`, each demanding
 * its credential, and the real `bottle-cred-proxy` started from the manifest's plan with the
 * credentials in its own environment only. The agent reaches the proxy at `proxyUrl`.
 */
async function startHostSide() {
  const key = makeCanary("sk-ant-api03");
  const anthropic = await startAnthropicFake({ key, answer: ANSWER });
  const sockets = await testdir();
  const socket = join(sockets, "proxy.sock");
  const proxyUrl = await forwardToSocket(socket);
  // The registry writes tarball URLs on the proxy's route, as the agent reaches it.
  const registry = await startRegistry({ publicUrl: `${proxyUrl}/npm/` });
  await registry.publish({ name: "bottle-tiny", text: "tiny, through the proxy" });
  const manifest = manifestOf(
    [
      "version: 1",
      "name: acme",
      "agent: { command: [claude] }",
      "cred_proxy:",
      "  tokens:",
      `    - { kind: anthropic, token_ref: ANTHROPIC_API_KEY, auth: api-key, upstream: '${anthropic.url}' }`,
      `    - { kind: npm, token_ref: NPM_TOKEN, registry: '${registry.url}' }`,
      "",
    ].join("\n"),
  );
  const plan = prepareCredProxy(manifest);
  const state = await testdir({ "routes.json": JSON.stringify(plan.routesFile) });
  const tokens = proxyTokenEnv(plan, { ANTHROPIC_API_KEY: key, NPM_TOKEN: registry.token });
  const proxy = await startProcess(
    process.execPath,
    [
      binOf("@bottle/cred-proxy", "bottle-cred-proxy"),
      "--routes",
      join(state, "routes.json"),
      "--socket",
      socket,
    ],
    { env: createBaseEnv({ ...tokens }) },
  );
  const side = renderAgentSide({ manifest, gitGate: null, credProxy: plan, proxyUrl });
  const home = await testdir({ ...side.homeFiles });
  /** The agent's environment: what renderAgentSide gives it, its home, and a PATH. */
  const agentEnv = (extra: Record<string, string> = {}): NodeJS.ProcessEnv => ({
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: home,
    ...side.env,
    ...extra,
  });
  const proxyOutput = () => proxy.stdout() + proxy.stderr();
  return { key, anthropic, registry, proxy, proxyUrl, side, home, agentEnv, proxyOutput };
}

describe("Claude Code through the real proxy", { tags: ["slow"], timeout: 180_000 }, () => {
  it("claude -p answers with only the rendered environment; the fake saw the real key, the agent never held it", async () => {
    const host = await startHostSide();
    const work = await testdir();
    const env = host.agentEnv();
    const run = await runProcess(claudeBinary(), ["-p", "say hi"], {
      cwd: work,
      env,
      timeoutMs: RUN_TIMEOUT_MS,
    });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout.trim()).toBe(ANSWER);

    // Every request reached the fake through the proxy, with the injected key only.
    const requests = host.anthropic.requests;
    expect(requests.length).toBeGreaterThan(0);
    for (const request of requests) {
      expect(request.headers["x-api-key"]).toBe(host.key);
      expect(request.headers.authorization).toBeUndefined();
      expect(request.status).toBe(200);
    }
    expect(requests.map((r) => `${r.method} ${r.path}`)).toContain("POST /v1/messages");
    expect(requests.find((r) => r.path === "/v1/messages")?.json).toMatchObject({ stream: true });
    // The agent sent the placeholder; the proxy replaced it.
    expect(env.ANTHROPIC_API_KEY).toBe("bottle-placeholder");
    expect(JSON.stringify(requests.map((r) => r.headers))).not.toContain("bottle-placeholder");

    const files = await readTree(host.home);
    expectNoCanary(
      host.key,
      JSON.stringify(env),
      files,
      run.stdout,
      run.stderr,
      await readTree(work),
    );
    expectNoCanary(host.key, host.proxyOutput());
  });

  it("claude -p opens no connection but to the proxy; without CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC it tries api.anthropic.com", async () => {
    const host = await startHostSide();
    const quiet = await startEgressObserver();
    const run = await runProcess(claudeBinary(), ["-p", "say hi"], {
      cwd: await testdir(),
      env: host.agentEnv(quiet.env),
      timeoutMs: RUN_TIMEOUT_MS,
    });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout.trim()).toBe(ANSWER);
    expect(quiet.attempts).toEqual([]);

    // The observer sees what leaves: the same run without the switch reaches for the internet.
    const loud = await startEgressObserver();
    const env = host.agentEnv(loud.env);
    delete env.CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC;
    const noisy = await runProcess(claudeBinary(), ["-p", "say hi"], {
      cwd: await testdir(),
      env,
      timeoutMs: RUN_TIMEOUT_MS,
    });
    expect(noisy.stdout.trim()).toBe(ANSWER);
    expect(loud.attempts.length).toBeGreaterThan(0);
    expect(new Set(loud.attempts)).toEqual(new Set(["CONNECT api.anthropic.com:443"]));
    expectNoCanary(host.key, noisy.stdout, noisy.stderr, run.stdout, run.stderr);
  });
});

describe("Claude Code in a terminal through the real proxy", {
  tags: ["slow"],
  timeout: 180_000,
}, () => {
  it("starts past onboarding and the key question with the rendered .claude.json, answers, and reaches nothing else", async () => {
    const host = await startHostSide();
    const observer = await startEgressObserver();
    const pty = await import("node-pty");
    const term = pty.spawn(claudeBinary(), [], {
      name: "xterm-256color",
      cols: 120,
      rows: 40,
      cwd: await testdir(),
      env: host.agentEnv({ TERM: "xterm-256color", ...observer.env }),
    });
    const exited = new Promise<void>((resolve) => term.onExit(() => resolve()));
    onTestFinished(async () => {
      term.kill("SIGKILL");
      await exited;
    });
    const screen = watchScreen(term);

    // The workspace's trust question is the user's: answer it as a user would.
    const trusted = await screen.waitFor("Yes, I trust this folder");
    await screen.type("\x1b[B");
    await screen.type("\r");
    const ready = await screen.waitFor("Claude Code v", trusted.at);
    await screen.type("say hi");
    await screen.type("\r");
    await screen.waitFor(ANSWER, ready.at);

    const text = screenText(screen.raw());
    for (const question of ["Detected a custom API key", "Unable to connect to Anthropic services"])
      expect(text).not.toContain(question.replace(/\s+/g, ""));
    expect(host.anthropic.requests.length).toBeGreaterThan(0);
    for (const request of host.anthropic.requests)
      expect(request.headers["x-api-key"]).toBe(host.key);
    expect(observer.attempts).toEqual([]);
    expectNoCanary(host.key, screen.raw(), await readTree(host.home), host.proxyOutput());
  });
});

describe("npm through the real proxy", { tags: ["slow"], timeout: 180_000 }, () => {
  it("npm install with only the rendered .npmrc and environment; the registry got the real token, the agent never held it", async () => {
    const host = await startHostSide();
    const work = await testdir({
      "package.json": JSON.stringify({ name: "agent-work", version: "1.0.0", private: true }),
    });
    const env = host.agentEnv();
    const install = await runProcess("npm", ["install", "bottle-tiny"], {
      cwd: work,
      env,
      timeoutMs: RUN_TIMEOUT_MS,
    });
    expect(install.code, install.stderr).toBe(0);
    const used = await runProcess(process.execPath, ["-p", 'require("bottle-tiny")'], {
      cwd: work,
      env,
    });
    expect(used.stdout.trim()).toBe("tiny, through the proxy");
    const lock = await readFile(join(work, "package-lock.json"), "utf8");
    expect(
      (JSON.parse(lock) as { packages: Record<string, { resolved?: string }> }).packages[
        "node_modules/bottle-tiny"
      ]?.resolved,
    ).toBe(`${host.proxyUrl}/npm/bottle-tiny/-/bottle-tiny-1.0.0.tgz`);
    // The proxy answered the packument and the tarball on its npm route.
    const answered = host.proxy
      .logs()
      .filter((r) => r.msg === "request" && r.route === "/npm/" && r.status === 200);
    expect(answered.length).toBeGreaterThanOrEqual(2);

    // The same client straight at the registry, with the agent's files, is refused: the
    // token the proxy holds is what let the install through.
    const direct = await runProcess("npm", ["install", "bottle-tiny"], {
      cwd: await testdir({ "package.json": "{}" }),
      env: host.agentEnv({ npm_config_registry: `${host.registry.url}/` }),
      timeoutMs: RUN_TIMEOUT_MS,
    });
    expect(direct.code).not.toBe(0);
    expect(direct.stderr).toMatch(/E401/);

    expect(await readFile(join(host.home, ".npmrc"), "utf8")).toBe(
      `registry=${host.proxyUrl}/npm/\n`,
    );
    const leftBehind = [await readTree(host.home), await readTree(work)];
    for (const secret of [host.registry.token, host.key])
      expectNoCanary(
        secret,
        JSON.stringify(env),
        install.stdout,
        install.stderr,
        direct.stderr,
        ...leftBehind,
        host.proxyOutput(),
      );
  });
});

describe("git through the real gate", { tags: ["slow"], timeout: 180_000 }, () => {
  it("clones a declared upstream under two spellings with only the rendered .gitconfig; the token stays out of the repository", async () => {
    const manifest = manifestOf(
      [
        "version: 1",
        "name: acme",
        "agent: { command: [claude] }",
        "git_gate:",
        "  user: { name: Acme Agent, email: agent@acme.example }",
        "  repos:",
        "    api: { url: 'https://github.com/acme/api.git', key: { provider: token, token_ref: UPSTREAM_TOKEN } }",
        "",
      ].join("\n"),
    );
    // The gate's base path does not depend on its URL: seed the mirror, then start the gate.
    const stage = await testdir();
    const seeded = prepareGitGate(manifest, stage, { gateUrl: "http://127.0.0.1:1" });
    const mirror = seeded.repos[0]?.mirror ?? "";
    const host = await createGitEnv();
    await git(["init", "--quiet", "--bare", "-b", "main", mirror], { cwd: stage, env: host.env });
    const seed = await createWorkRepo(host, {
      files: { "README.md": "# acme api\n" },
      remote: mirror,
    });
    await git(["push", "--quiet", "origin", "main"], { cwd: seed, env: host.env });
    const tokens = await testdir();
    const store = createTokenStore({ file: join(tokens, "tokens.json") });
    const { token } = await store.create({ project: "acme", task: "t1" });
    const gate = await startProcess(
      process.execPath,
      [
        binOf("@bottle/gate-server", "bottle-gate"),
        "--base-path",
        seeded.basePath,
        "--token-file",
        join(tokens, "tokens.json"),
        "--port",
        "0",
      ],
      { env: createBaseEnv() },
    );
    const gateUrl = gate.url ?? "";
    const gitGate = prepareGitGate(manifest, stage, { gateUrl });

    const render = (gateToken: string) =>
      renderAgentSide({
        manifest,
        gitGate,
        credProxy: prepareCredProxy(manifest),
        gateToken,
        gateUrl,
        proxyUrl: "http://127.0.0.1:9",
      });
    const side = render(token);
    const home = await testdir({ ...side.homeFiles });
    // SECURITY: this machine's /etc/gitconfig names a credential helper (the sandbox has no
    // /etc/gitconfig); with it, git would store the gate token. Prompts off: a refusal fails.
    const env = {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: home,
      GIT_CONFIG_NOSYSTEM: "1",
      GIT_TERMINAL_PROMPT: "0",
      ...side.env,
    };
    const work = await testdir();
    const outputs: string[] = [];
    for (const [upstream, dir] of [
      ["https://github.com/acme/api.git", "one"],
      ["https://github.com/acme/api", "two"],
    ] as const) {
      const clone = await git(["clone", upstream, dir], { cwd: work, env });
      outputs.push(clone.stdout, clone.stderr);
      expect(await readFile(join(work, dir, "README.md"), "utf8")).toBe("# acme api\n");
      // The repository remembers the upstream's own URL, never the gate's with the token.
      const origin = await git(["remote", "get-url", "--push", "origin"], {
        cwd: join(work, dir),
        env,
      });
      expect(origin.stdout.trim()).toBe(
        `${gateUrl}/acme/api.git`.replace("http://", `http://${token}:x@`),
      );
      expect(await readFile(join(work, dir, ".git/config"), "utf8")).toContain(
        `url = ${upstream}\n`,
      );
    }
    // Commits carry the manifest's identity.
    await git(["commit", "--quiet", "--allow-empty", "-m", "work"], {
      cwd: join(work, "one"),
      env,
    });
    const author = await git(["log", "-1", "--format=%an <%ae>"], { cwd: join(work, "one"), env });
    expect(author.stdout.trim()).toBe("Acme Agent <agent@acme.example>");

    // Another token is refused by the gate: the one in the URLs is what authenticates.
    const other = await testdir({ ...render(makeCanary("bottle_gt")).homeFiles });
    const refused = await git(["clone", "https://github.com/acme/api.git", "three"], {
      cwd: work,
      env: { ...env, HOME: other },
      allowFailure: true,
    });
    expect(refused.code).not.toBe(0);

    expectNoCanary(token, JSON.stringify(env), ...outputs, refused.stderr);
    for (const dir of ["one", "two"])
      expectNoCanary(token, await readTree(join(work, dir, ".git")));
  });
});
