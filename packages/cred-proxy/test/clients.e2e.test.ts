// Real clients through the proxy, each against a local upstream that checks the injected
// credential and refuses a request without it. The client never holds the token (its config
// and environment carry a placeholder or nothing), and the token, a canary, shows up in no
// client output and no proxy log line.
import { randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import Anthropic from "@anthropic-ai/sdk";
import { parseManifest } from "@bottle/manifest";
import {
  createGitEnv,
  createWorkRepo,
  expectNoCanary,
  git,
  makeCanary,
  packageClientEnv,
  readTree,
  runProcess,
  startHttpGitUpstream,
  startRegistry,
  startUpstream,
  streamedEventTypes,
  testdir,
} from "@bottle/test-utils";
import { Octokit } from "@octokit/rest";
import { describe, expect, it, vi } from "vitest";
import { prepareCredProxy, proxyTokenEnv } from "../src/plan.ts";
import { eventGates, route, startProxy, type TestProxy } from "./fixture.ts";
import { frontDoor } from "./front-door.ts";

const SLOT = "BOTTLE_PROXY_TOKEN_0";

/**
 * After an install through the proxy: the package works, the client's config is still the
 * registry line alone (the client never held the token), and neither the registry's token nor
 * its password appears in anything the client or the proxy wrote.
 */
async function expectCleanInstall(
  client: { dir: string; env: NodeJS.ProcessEnv; home: string; npmrc: string; proxy: TestProxy },
  secrets: readonly string[],
  install: { stdout: string; stderr: string },
  lock: string,
): Promise<void> {
  const { dir, env } = client;
  const used = await runProcess(process.execPath, ["-p", 'require("bottle-hello")'], {
    cwd: dir,
    env,
  });
  expect(used.stdout.trim()).toBe("hello from the registry");
  expect(await readFile(join(dir, ".npmrc"), "utf8")).toBe(client.npmrc);
  const files = await readTree(client.home);
  const outputs = [install.stdout, install.stderr, lock, files, client.proxy.logText()];
  for (const secret of secrets) expectNoCanary(secret, JSON.stringify(env), ...outputs);
}

/**
 * The upstream side of the git tests: a bare repository `repo.git` with one commit, served by
 * git http-backend that demands `x-access-token:<token>` (a fresh canary).
 */
async function seededUpstream() {
  const token = makeCanary("ghs");
  const host = await createGitEnv();
  const root = await testdir();
  const bare = join(root, "repo.git");
  await git(["init", "--quiet", "--bare", "-b", "main", bare], { cwd: root, env: host.env });
  const seed = await createWorkRepo(host, { files: { "README.md": "# seeded\n" }, remote: bare });
  await git(["push", "--quiet", "origin", "main"], { cwd: seed, env: host.env });
  const upstream = await startHttpGitUpstream({
    root,
    username: "x-access-token",
    password: token,
  });
  return { token, host, root, bare, upstream };
}

describe("git through the proxy", { tags: ["slow"] }, () => {
  it("clones and pushes 6 MiB (chunked) through a git_push route; only the proxy holds the token", async () => {
    const { token, host, root, bare, upstream } = await seededUpstream();
    const proxy = await startProxy({
      routes: [
        {
          ...route("/git/", new URL(upstream.url("repo.git")).origin, {
            scheme: "Basic",
            username: "x-access-token",
          }),
          git_push: true,
        },
      ],
      tokens: { [SLOT]: token },
    });

    // The agent side: an isolated git environment without any credential.
    const agent = await createGitEnv();
    const work = await testdir();
    const url = `${proxy.url}/git/repo.git`;
    const outputs: string[] = [];
    const run = async (args: string[], cwd: string, env = agent.env) => {
      const result = await git(args, { cwd, env });
      outputs.push(result.stdout, result.stderr);
      return result;
    };

    // Without the proxy the upstream refuses the agent.
    const direct = await git(["ls-remote", upstream.url("repo.git")], {
      cwd: work,
      env: agent.env,
      allowFailure: true,
    });
    expect(direct.code).not.toBe(0);
    expect(upstream.unauthorized).toBeGreaterThan(0);
    const refusedBefore = upstream.unauthorized;

    await run(["clone", "--quiet", url, "clone"], work);
    const clone = join(work, "clone");
    expect(await readFile(join(clone, "README.md"), "utf8")).toBe("# seeded\n");

    const big = randomBytes(6 * 1024 * 1024);
    await writeFile(join(clone, "big.bin"), big);
    await run(["add", "big.bin"], clone);
    await run(["commit", "--quiet", "-m", "add 6 MiB of random bytes"], clone);
    const sha = (await run(["rev-parse", "HEAD"], clone)).stdout.trim();
    const push = await run(["push", "origin", "main"], clone, {
      ...agent.env,
      GIT_TRACE_CURL: "1",
      GIT_TRACE_CURL_NO_DATA: "1",
    });
    // More than http.postBuffer (1 MiB): a 4-byte probe, then the pack with chunked framing.
    expect(push.stderr).toMatch(/Send header: Content-Length: 4\r?\n/);
    expect(push.stderr).toMatch(/Send header: Transfer-Encoding: chunked/);

    // The commit and its blob are in the upstream repository.
    const inBare = { cwd: root, env: host.env };
    expect((await git(["--git-dir", bare, "rev-parse", "main"], inBare)).stdout.trim()).toBe(sha);
    const size = await git(["--git-dir", bare, "cat-file", "-s", `${sha}:big.bin`], inBare);
    expect(Number(size.stdout.trim())).toBe(big.length);
    expect(upstream.unauthorized).toBe(refusedBefore);

    // The proxy streamed the pack: one receive-pack POST carried all of it.
    const posts = proxy.records().filter((r) => r.msg === "request" && r.method === "POST");
    expect(posts.some((r) => Number(r.bytesIn) > big.length)).toBe(true);
    expect(posts.every((r) => r.status === 200)).toBe(true);

    // The agent never held the token: no credential in its config, its remote or its env.
    const config = await run(["config", "--list", "--show-origin"], clone);
    expect(config.stdout).not.toMatch(/credential\.helper=.|extraheader|password|token/i);
    expect((await run(["remote", "get-url", "origin"], clone)).stdout.trim()).toBe(url);
    expectNoCanary(token, JSON.stringify(agent.env), ...outputs, proxy.logText());
  });
});

describe("git push through a route without git_push", { tags: ["slow"] }, () => {
  it("clones and fetches, but the push is refused before anything reaches the upstream", async () => {
    const { token, host, root, bare, upstream } = await seededUpstream();
    const before = (
      await git(["--git-dir", bare, "rev-parse", "main"], { cwd: root, env: host.env })
    ).stdout;
    const proxy = await startProxy({
      routes: [
        route("/git/", new URL(upstream.url("repo.git")).origin, {
          scheme: "Basic",
          username: "x-access-token",
        }),
      ],
      tokens: { [SLOT]: token },
    });
    const agent = await createGitEnv();
    const work = await testdir();
    await git(["clone", "--quiet", `${proxy.url}/git/repo.git`, "clone"], {
      cwd: work,
      env: agent.env,
    });
    const clone = join(work, "clone");
    await writeFile(join(clone, "notes.md"), "unscanned\n");
    await git(["add", "notes.md"], { cwd: clone, env: agent.env });
    await git(["commit", "--quiet", "-m", "try to push past the gate"], {
      cwd: clone,
      env: agent.env,
    });
    await git(["fetch", "--quiet", "origin"], { cwd: clone, env: agent.env });
    const seen = upstream.requests;

    const push = await git(["push", "origin", "main"], {
      cwd: clone,
      env: agent.env,
      allowFailure: true,
    });
    expect(push.code).not.toBe(0);
    expect(push.stderr).toMatch(/403/);
    // Nothing of the push reached the upstream, and its branch did not move.
    expect(upstream.requests).toBe(seen);
    expect(
      (await git(["--git-dir", bare, "rev-parse", "main"], { cwd: root, env: host.env })).stdout,
    ).toBe(before);
    const refused = proxy.records().filter((r) => r.code === "BTL_PROXY_PUSH_REFUSED");
    expect(refused.length).toBeGreaterThan(0);
    expect(
      refused.every((r) => r.level === "warn" && r.status === 403 && r.route === "/git/"),
    ).toBe(true);
    expectNoCanary(token, push.stdout, push.stderr, proxy.logText());
  });
});

const TARBALL = "bottle-hello/-/bottle-hello-1.0.0.tgz";

/**
 * A registry with `bottle-hello@1.0.0`, published by `npm publish` with the registry's token
 * straight to the registry (not through the proxy). `publicUrl` as in {@link startRegistry}.
 */
async function publishedRegistry(publicUrl?: string) {
  const registry = await startRegistry(publicUrl === undefined ? {} : { publicUrl });
  await registry.publish({ name: "bottle-hello", text: "hello from the registry" });
  return { registry, token: registry.token, password: registry.password };
}

/** A fresh project whose `.npmrc` names the registry and nothing else: no token. */
async function consumerProject(registryUrl: string, dependencies?: Record<string, string>) {
  const npmrc = `registry=${registryUrl}\n`;
  const manifest = { name: "consumer", version: "1.0.0", private: true, dependencies };
  const dir = await testdir({ "package.json": JSON.stringify(manifest), ".npmrc": npmrc });
  return { dir, npmrc };
}

describe("npm and pnpm through the proxy", { tags: ["slow"] }, () => {
  /**
   * The registry (which demands the token), the proxy's `/npm/` route holding the token, and the
   * port clients reach the proxy on; the registry's packuments name tarballs on that port.
   */
  async function registryBehindProxy() {
    const door = await frontDoor();
    const published = await publishedRegistry(`${door.url}/npm/`);
    const proxy = await startProxy({
      routes: [route("/npm/", published.registry.url, { scheme: "Bearer" })],
      tokens: { [SLOT]: published.token },
    });
    door.open(proxy.proxy.server);
    // Without the token the registry refuses.
    expect((await fetch(`${published.registry.url}/bottle-hello`)).status).toBe(401);
    return { ...published, proxy, proxyUrl: door.url };
  }

  it("npm install: packument and tarball come through /npm/ with the proxy's token", async () => {
    const { token, password, proxy, proxyUrl } = await registryBehindProxy();
    const packument = (await (await fetch(`${proxyUrl}/npm/bottle-hello`)).json()) as {
      versions: Record<string, { dist: { tarball: string } }>;
    };
    expect(packument.versions["1.0.0"]?.dist.tarball).toBe(`${proxyUrl}/npm/${TARBALL}`);

    const home = await testdir();
    const env = packageClientEnv("npm", home);
    const { dir, npmrc } = await consumerProject(`${proxyUrl}/npm/`);
    const install = await runProcess("npm", ["install", "bottle-hello"], { cwd: dir, env });
    expect(install.code, install.stderr).toBe(0);
    const lock = await readFile(join(dir, "package-lock.json"), "utf8");
    const locked = JSON.parse(lock) as { packages: Record<string, { resolved?: string }> };
    expect(locked.packages["node_modules/bottle-hello"]?.resolved).toBe(
      `${proxyUrl}/npm/${TARBALL}`,
    );
    const answered = proxy.records().filter((r) => r.msg === "request" && r.status === 200);
    // This test's packument GET, then npm's packument and tarball GETs.
    expect(answered.length).toBeGreaterThanOrEqual(3);
    await expectCleanInstall({ dir, env, home, npmrc, proxy }, [token, password], install, lock);
  });

  it("pnpm install: packument and tarball come through /npm/ with the proxy's token", async () => {
    const { token, password, proxy, proxyUrl } = await registryBehindProxy();
    const home = await testdir();
    const env = packageClientEnv("pnpm", home);
    const { dir, npmrc } = await consumerProject(`${proxyUrl}/npm/`, { "bottle-hello": "^1.0.0" });
    // The pnpm on PATH, with its home, store and caches in `home`.
    const install = await runProcess("pnpm", ["install"], { cwd: dir, env });
    expect(install.code, install.stdout + install.stderr).toBe(0);
    const lock = await readFile(join(dir, "pnpm-lock.yaml"), "utf8");
    expect(lock).toMatch(/bottle-hello@1\.0\.0/);
    const answered = proxy.records().filter((r) => r.msg === "request" && r.status === 200);
    // pnpm's packument and tarball GETs.
    expect(answered.length).toBeGreaterThanOrEqual(2);
    await expectCleanInstall({ dir, env, home, npmrc, proxy }, [token, password], install, lock);
  });

  it("a registry that does not know the proxy's URL: clients fetch its tarball URL directly, without the token, and are refused", async () => {
    // Without a public URL, verdaccio writes tarball URLs on the origin a request named in
    // `Host`; the proxy sends the upstream's own host, and rewrites no body.
    const { registry, token, password } = await publishedRegistry();
    const proxy = await startProxy({
      routes: [route("/npm/", registry.url, { scheme: "Bearer" })],
      tokens: { [SLOT]: token },
    });
    const packument = (await (await fetch(`${proxy.url}/npm/bottle-hello`)).json()) as {
      versions: Record<string, { dist: { tarball: string } }>;
    };
    expect(packument.versions["1.0.0"]?.dist.tarball).toBe(`${registry.url}/${TARBALL}`);

    const outputs: string[] = [];
    const npm = await consumerProject(`${proxy.url}/npm/`);
    const npmRun = await runProcess("npm", ["install", "bottle-hello"], {
      cwd: npm.dir,
      env: packageClientEnv("npm", await testdir()),
    });
    expect(npmRun.code).not.toBe(0);
    expect(npmRun.stderr).toMatch(/E401/);
    const pnpm = await consumerProject(`${proxy.url}/npm/`, { "bottle-hello": "^1.0.0" });
    const pnpmRun = await runProcess("pnpm", ["install"], {
      cwd: pnpm.dir,
      env: packageClientEnv("pnpm", await testdir()),
    });
    expect(pnpmRun.code).not.toBe(0);
    expect(pnpmRun.stdout).toContain(`GET ${registry.url}/${TARBALL}: Unauthorized - 401`);
    outputs.push(npmRun.stdout, npmRun.stderr, pnpmRun.stdout, pnpmRun.stderr);
    // The proxy answered the packuments only; the tarball requests went past it, bare.
    const viaProxy = proxy.records().filter((r) => r.msg === "request");
    expect(viaProxy.every((r) => r.status === 200)).toBe(true);
    for (const secret of [token, password]) expectNoCanary(secret, ...outputs, proxy.logText());
  });
});

/** An Anthropic Messages stream as the API sends it: one SSE event per `event:`/`data:` pair. */
function sse(type: string, data: Record<string, unknown>): string {
  return `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
}

describe("@anthropic-ai/sdk through the proxy", { tags: ["slow"] }, () => {
  const WORDS = ["Hello", " from", " the", " upstream", "!"];

  /**
   * An upstream for `POST /v1/messages` that answers 401 unless `authorized` says yes, else a
   * streamed message whose text deltas go out one at a time: delta n+1 only once the client
   * has read delta n (`received[n]` resolved).
   */
  async function messagesUpstream(
    authorized: (headers: Record<string, string | string[] | undefined>) => boolean,
    received: Array<{ promise: Promise<void> }>,
  ) {
    return startUpstream(async (req, res) => {
      if (!authorized(req.headers)) {
        res.writeHead(401, { "content-type": "application/json" });
        res.end(
          JSON.stringify({
            type: "error",
            error: { type: "authentication_error", message: "invalid x-api-key" },
          }),
        );
        return;
      }
      const body = JSON.parse(req.body.toString()) as { stream?: boolean; model?: string };
      if (req.method !== "POST" || req.url !== "/v1/messages" || body.stream !== true) {
        res.writeHead(400, { "content-type": "application/json" }).end("{}");
        return;
      }
      res.writeHead(200, {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-cache",
        "request-id": "req_011CTestRequest",
      });
      const usage = { input_tokens: 12, output_tokens: 1 };
      res.write(
        sse("message_start", {
          message: {
            id: "msg_01TestMessage",
            type: "message",
            role: "assistant",
            content: [],
            model: body.model,
            stop_reason: null,
            stop_sequence: null,
            usage,
          },
        }),
      );
      res.write(
        sse("content_block_start", { index: 0, content_block: { type: "text", text: "" } }),
      );
      res.write(sse("ping", {}));
      for (const [n, text] of WORDS.entries()) {
        res.write(sse("content_block_delta", { index: 0, delta: { type: "text_delta", text } }));
        await received[n]?.promise;
      }
      res.write(sse("content_block_stop", { index: 0 }));
      res.write(
        sse("message_delta", {
          delta: { stop_reason: "end_turn", stop_sequence: null },
          usage: { output_tokens: WORDS.length },
        }),
      );
      res.end(sse("message_stop", {}));
    });
  }

  /** A logger that keeps every line the SDK logs, for the leak check. */
  function captureLogger() {
    const lines: string[] = [];
    const keep = (...args: unknown[]) => {
      lines.push(args.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(" "));
    };
    return { logger: { debug: keep, info: keep, warn: keep, error: keep }, text: () => lines };
  }

  function hermeticSdkEnv(): void {
    for (const name of [
      "ANTHROPIC_API_KEY",
      "ANTHROPIC_AUTH_TOKEN",
      "ANTHROPIC_BASE_URL",
      "ANTHROPIC_CUSTOM_HEADERS",
      "ANTHROPIC_LOG",
    ])
      vi.stubEnv(name, undefined);
  }

  it("messages.stream with an API-key placeholder: x-api-key injected, events arrive one by one", async () => {
    hermeticSdkEnv();
    const token = makeCanary("sk-ant-api03");
    const { gates: received, stalled } = eventGates(WORDS.length, 10_000);
    const upstream = await messagesUpstream(
      (h) => h["x-api-key"] === token && h.authorization === undefined,
      received,
    );
    const proxy = await startProxy({
      routes: [route("/anthropic/", upstream.url, { header: "x-api-key" })],
      tokens: { [SLOT]: token },
    });
    // Without the proxy the upstream refuses.
    const direct = await fetch(`${upstream.url}/v1/messages`, { method: "POST", body: "{}" });
    expect(direct.status).toBe(401);

    const log = captureLogger();
    const client = new Anthropic({
      apiKey: "placeholder",
      baseURL: `${proxy.url}/anthropic`,
      maxRetries: 0,
      logger: log.logger,
      logLevel: "debug",
    });
    const stream = client.messages.stream({
      model: "claude-sonnet-4-6",
      max_tokens: 64,
      messages: [{ role: "user", content: "Say hello." }],
    });
    const types: string[] = [];
    const texts: string[] = [];
    for await (const event of stream) {
      types.push(event.type);
      if (event.type === "content_block_delta" && event.delta.type === "text_delta") {
        texts.push(event.delta.text);
        // Only now may the upstream send the next delta.
        received[texts.length - 1]?.resolve();
      }
    }
    expect(stalled()).toBe(false);
    expect(texts).toEqual(WORDS);
    expect(await stream.finalText()).toBe(WORDS.join(""));
    expect(types).toEqual(streamedEventTypes(WORDS.length));

    // The upstream got the real key and nothing of the placeholder.
    const [seen] = upstream.requests.slice(-1);
    expect(seen?.headers["x-api-key"]).toBe(token);
    expect(seen?.rawHeaders.join("\n")).not.toContain("placeholder");
    expect(client.apiKey).toBe("placeholder");
    expectNoCanary(token, JSON.stringify(types), texts.join(""), ...log.text(), proxy.logText());
  });

  it("create({ stream: true }) with an OAuth-token placeholder: Bearer injected", async () => {
    hermeticSdkEnv();
    const token = makeCanary("sk-ant-oat01");
    const { gates: received, stalled } = eventGates(WORDS.length, 10_000);
    const upstream = await messagesUpstream(
      (h) => h.authorization === `Bearer ${token}` && h["x-api-key"] === undefined,
      received,
    );
    const proxy = await startProxy({
      routes: [route("/anthropic/", upstream.url, { scheme: "Bearer" })],
      tokens: { [SLOT]: token },
    });
    const log = captureLogger();
    const client = new Anthropic({
      authToken: "placeholder",
      apiKey: null,
      baseURL: `${proxy.url}/anthropic`,
      maxRetries: 0,
      logger: log.logger,
      logLevel: "debug",
    });
    const stream = await client.messages.create({
      model: "claude-sonnet-4-6",
      max_tokens: 64,
      messages: [{ role: "user", content: "Say hello." }],
      stream: true,
    });
    const texts: string[] = [];
    let stop = "";
    for await (const event of stream) {
      if (event.type === "content_block_delta" && event.delta.type === "text_delta") {
        texts.push(event.delta.text);
        received[texts.length - 1]?.resolve();
      }
      if (event.type === "message_delta") stop = event.delta.stop_reason ?? "";
    }
    expect(stalled()).toBe(false);
    expect(texts).toEqual(WORDS);
    expect(stop).toBe("end_turn");
    const [seen] = upstream.requests.slice(-1);
    expect(seen?.headers.authorization).toBe(`Bearer ${token}`);
    expect(seen?.rawHeaders.join("\n")).not.toContain("placeholder");
    expect(client.authToken).toBe("placeholder");
    expectNoCanary(token, texts.join(""), ...log.text(), proxy.logText());
  });
});

describe("@octokit/rest through the proxy", { tags: ["slow"] }, () => {
  const REPOS = ["alpha", "beta", "gamma", "delta", "epsilon"].map((name, i) => ({
    id: 1000 + i,
    name,
    full_name: `acme/${name}`,
    private: true,
    owner: { login: "acme", id: 1, type: "Organization" },
  }));

  /**
   * A GitHub REST upstream that answers 401 without `Authorization: Bearer <token>`. Lists are
   * paginated as GitHub does it: `Link` headers with absolute URLs on the API's own origin.
   */
  async function githubUpstream(token: string) {
    const upstream = await startUpstream((req, res) => {
      const json = { "content-type": "application/json; charset=utf-8" };
      if (req.headers.authorization !== `Bearer ${token}`) {
        res.writeHead(401, json);
        res.end(
          JSON.stringify({
            message: "Requires authentication",
            documentation_url: "https://docs.github.com/rest",
            status: "401",
          }),
        );
        return;
      }
      const url = new URL(req.url, upstream.url);
      if (url.pathname === "/repos/acme/alpha") {
        res.writeHead(200, json).end(JSON.stringify(REPOS[0]));
        return;
      }
      if (url.pathname === "/orgs/acme/repos" || url.pathname === "/organizations/1/repos") {
        const perPage = Number(url.searchParams.get("per_page") ?? "30");
        const page = Number(url.searchParams.get("page") ?? "1");
        const last = Math.ceil(REPOS.length / perPage);
        const at = (n: number) =>
          `<${upstream.url}/organizations/1/repos?per_page=${perPage}&page=${n}>`;
        const links = [];
        if (page < last) links.push(`${at(page + 1)}; rel="next"`, `${at(last)}; rel="last"`);
        if (page > 1) links.push(`${at(1)}; rel="first"`, `${at(page - 1)}; rel="prev"`);
        res.writeHead(200, links.length > 0 ? { ...json, link: links.join(", ") } : json);
        res.end(JSON.stringify(REPOS.slice((page - 1) * perPage, page * perPage)));
        return;
      }
      res.writeHead(404, json).end(JSON.stringify({ message: "Not Found" }));
    });
    return upstream;
  }

  it("repos.get and paginate() with no client auth: Link URLs are mapped onto the proxy", async () => {
    const token = makeCanary("ghs");
    const upstream = await githubUpstream(token);
    const proxy = await startProxy({
      routes: [route("/gh-api/", upstream.url, { scheme: "Bearer" })],
      tokens: { [SLOT]: token },
    });
    const lines: string[] = [];
    const keep = (message: string, extra?: unknown) => {
      lines.push(`${message} ${extra === undefined ? "" : JSON.stringify(extra)}`);
    };
    const octokit = new Octokit({
      baseUrl: `${proxy.url}/gh-api`,
      auth: undefined,
      log: { debug: keep, info: keep, warn: keep, error: keep },
    });

    const repo = await octokit.rest.repos.get({ owner: "acme", repo: "alpha" });
    expect(repo.data.full_name).toBe("acme/alpha");
    expect(upstream.requests.at(-1)?.headers.authorization).toBe(`Bearer ${token}`);

    // Pages asked for by number go through the proxy.
    const first = await octokit.rest.repos.listForOrg({ org: "acme", per_page: 2 });
    const second = await octokit.rest.repos.listForOrg({ org: "acme", per_page: 2, page: 2 });
    expect([...first.data, ...second.data].map((r) => r.name)).toEqual(
      REPOS.slice(0, 4).map((r) => r.name),
    );
    // The upstream's absolute Link URLs reach the client mapped onto the proxy's route.
    expect(first.headers.link).toContain(
      `<${proxy.url}/gh-api/organizations/1/repos?per_page=2&page=2>`,
    );
    expect(first.headers.link).not.toContain(upstream.url);

    // So paginate() follows every page through the proxy, and every request carries the token.
    const before = upstream.requests.length;
    const all = await octokit.paginate(octokit.rest.repos.listForOrg, { org: "acme", per_page: 2 });
    expect(all.map((r) => r.name)).toEqual(REPOS.map((r) => r.name));
    const sent = upstream.requests.slice(before);
    expect(sent.length).toBeGreaterThan(1);
    for (const request of sent) expect(request.headers.authorization).toBe(`Bearer ${token}`);

    expectNoCanary(token, ...lines, JSON.stringify([repo, first, second]), proxy.logText());
  });
});

describe("@octokit/rest through a restricted route", { tags: ["slow"] }, () => {
  const README = {
    type: "file",
    path: "README.md",
    sha: "3f4e",
    content: "IyBhcGkK",
    encoding: "base64",
  };

  /** A GitHub REST upstream for acme/api: pulls, and contents to read and write. */
  async function githubRepoUpstream(token: string) {
    return startUpstream((req, res) => {
      const json = { "content-type": "application/json; charset=utf-8" };
      if (req.headers.authorization !== `Bearer ${token}`) {
        res.writeHead(401, json).end(JSON.stringify({ message: "Requires authentication" }));
        return;
      }
      const path = req.url.split("?")[0];
      const answer = (status: number, body: unknown): void => {
        res.writeHead(status, json).end(JSON.stringify(body));
      };
      if (req.method === "GET" && path === "/repos/acme/api/pulls")
        return answer(200, [{ number: 1, title: "Fix the build" }]);
      if (req.method === "GET" && path === "/repos/acme/api/pulls/1")
        return answer(200, { number: 1, title: "Fix the build" });
      if (req.method === "GET" && path === "/repos/acme/api/contents/README.md")
        return answer(200, README);
      if (req.method === "PUT" && path === "/repos/acme/api/contents/README.md")
        return answer(201, { content: README, commit: { sha: "9a0b" } });
      return answer(404, { message: "Not Found" });
    });
  }

  function octokit(base: string) {
    const quiet = () => {};
    return new Octokit({
      baseUrl: base,
      log: { debug: quiet, info: quiet, warn: quiet, error: quiet },
    });
  }

  const write = {
    owner: "acme",
    repo: "api",
    path: "README.md",
    message: "rewrite the README, unscanned",
    content: Buffer.from("# owned\n").toString("base64"),
    sha: "3f4e",
  };
  const refused = {
    status: 403,
    response: {
      data: { code: "BTL_PROXY_NOT_ALLOWED" },
      headers: { "x-bottle-code": "BTL_PROXY_NOT_ALLOWED" },
    },
  };

  it("read_only (from the manifest): pulls.list passes, createOrUpdateFileContents is refused before the upstream", async () => {
    const token = makeCanary("ghs");
    const upstream = await githubRepoUpstream(token);
    const plan = prepareCredProxy(
      parseManifest(
        `version: 1\nname: acme\nagent: { command: [agent] }\ncred_proxy:\n  routes:\n    - { path: /gh-api/, upstream: '${upstream.url}', auth: { scheme: Bearer }, token_ref: GH_TOKEN, read_only: true }\n`,
        { checkFiles: false },
      ),
    );
    const proxy = await startProxy({
      routes: [...plan.routesFile.routes],
      tokens: proxyTokenEnv(plan, { GH_TOKEN: token }),
    });
    const client = octokit(`${proxy.url}/gh-api`);

    const pulls = await client.rest.pulls.list({ owner: "acme", repo: "api" });
    expect(pulls.data.map((p) => p.number)).toEqual([1]);
    await expect(client.rest.repos.createOrUpdateFileContents(write)).rejects.toMatchObject(
      refused,
    );

    expect(upstream.requests.map((r) => `${r.method} ${r.url.split("?")[0]}`)).toEqual([
      "GET /repos/acme/api/pulls",
    ]);
    expect(proxy.records()).toContainEqual(
      expect.objectContaining({ level: "warn", method: "PUT", code: "BTL_PROXY_NOT_ALLOWED" }),
    );
    expectNoCanary(token, proxy.logText(), JSON.stringify(pulls));
  });

  it("an allow rule for pulls only: pulls.list and pulls.get pass, getContent and createOrUpdateFileContents are refused", async () => {
    const token = makeCanary("ghs");
    const upstream = await githubRepoUpstream(token);
    const proxy = await startProxy({
      routes: [
        {
          ...route("/gh-api/", upstream.url, { scheme: "Bearer" }),
          allow: [{ methods: ["GET", "HEAD"], paths: ["/repos/acme/*/pulls/**"] }],
        },
      ],
      tokens: { [SLOT]: token },
    });
    const client = octokit(`${proxy.url}/gh-api`);

    expect((await client.rest.pulls.list({ owner: "acme", repo: "api" })).data).toHaveLength(1);
    expect(
      (await client.rest.pulls.get({ owner: "acme", repo: "api", pull_number: 1 })).data.number,
    ).toBe(1);
    await expect(
      client.rest.repos.getContent({ owner: "acme", repo: "api", path: "README.md" }),
    ).rejects.toMatchObject(refused);
    await expect(client.rest.repos.createOrUpdateFileContents(write)).rejects.toMatchObject(
      refused,
    );

    expect(upstream.requests.map((r) => `${r.method} ${r.url.split("?")[0]}`)).toEqual([
      "GET /repos/acme/api/pulls",
      "GET /repos/acme/api/pulls/1",
    ]);
    expectNoCanary(token, proxy.logText());
  });
});
