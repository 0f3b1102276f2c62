/**
 * A bottle on local upstreams for the CLI's end-to-end tests: an HTTP git upstream that demands
 * a token only the gate holds, an API upstream behind a proxy route, and the `bottle` command
 * with its own state, cache and home directories. With `githubApp`, the git upstream takes only
 * live installation tokens of a GitHub App on the GitHub fake, and a second route `/gh/` injects
 * one: the bottle's own tokman mints them.
 */
import { readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { dirname, join } from "node:path";
import {
  createBaseEnv,
  createGitEnv,
  createWorkRepo,
  FIXTURE_APP_ID,
  git,
  makeCanary,
  runProcess,
  serveGitHubAppFixture,
  startHttpGitUpstream,
  startUpstream,
  testdir,
} from "@bottle/test-utils";
import { onTestFinished } from "vitest";

export const BIN = join(import.meta.dirname, "../dist/cli.js");

/** Sets up the upstreams and writes `bottle.yaml`, with `routesYaml` appended to its routes. */
export async function setupBottle(
  options: {
    routesYaml?: string;
    env?: NodeJS.ProcessEnv;
    githubApp?: boolean;
    agentImage?: string;
  } = {},
) {
  const dir = await testdir();
  const app = options.githubApp ? await serveGitHubAppFixture({ realTime: true }) : undefined;
  if (app) onTestFinished(() => app.close());
  /** Whether `token` is a live installation token the fake issued for acme/api. */
  const liveToken = (token: string) =>
    app?.fake
      .tokens()
      .some(
        (t) =>
          t.token === token &&
          t.revokedAt === null &&
          Date.parse(t.expiresAt) > Date.now() &&
          (t.repositories === "all" || t.repositories.some((r) => r.name === "api")),
      ) ?? false;
  const upstreamToken = makeCanary("upstream");
  const apiKey = makeCanary("apikey");
  const root = join(dir, "upstreams");
  const gitEnv = await createGitEnv();
  const bare = join(root, "acme", "api.git");
  await mkdir(dirname(bare), { recursive: true });
  await git(["init", "--quiet", "--bare", "-b", "main", bare], { cwd: dir, env: gitEnv.env });
  const work = await createWorkRepo(gitEnv, { remote: bare });
  await git(["push", "--quiet", "origin", "main"], { cwd: work, env: gitEnv.env });
  const gitUpstream = await startHttpGitUpstream({
    root,
    username: "x-access-token",
    password: upstreamToken,
    ...(app
      ? {
          authorize: (user: string, password: string, path: string) =>
            user === "x-access-token" && path.startsWith("/acme/api.git/") && liveToken(password),
        }
      : {}),
  });
  const api = await startUpstream();
  const manifest = join(dir, "bottle.yaml");
  const upstreamUrl = gitUpstream.url("acme/api.git");
  await writeFile(
    manifest,
    `version: 1
name: acme
agent: { command: [sh]${options.agentImage ? `, image: "${options.agentImage}"` : ""} }
git_gate:
  user: { name: Bottle Agent, email: agent@acme.example }
  repos:
    api: { url: "${upstreamUrl}", key: ${app ? "{ provider: github-app, app: acme }" : "{ provider: token, token_ref: UPSTREAM_TOKEN }"} }
  scan: { scanner: builtin }
cred_proxy:
  routes:
    - { path: /api/, upstream: "${api.url}", auth: { scheme: Bearer }, token_ref: API_KEY }
${options.routesYaml ?? ""}${
  app
    ? `    - path: /gh/
      upstream: "${api.url}"
      auth: { scheme: Bearer }
      github_app: { app: acme, repository: acme/api, permissions: { issues: write } }
github_apps:
  acme: { app_id: ${FIXTURE_APP_ID}, private_key: "${app.keyFile}", api: "${app.fake.url}" }
`
    : ""
}`,
  );
  const workspace = join(dir, "workspace");
  await mkdir(workspace);
  const env = createBaseEnv({
    HOME: dir,
    XDG_STATE_HOME: join(dir, "state"),
    XDG_CACHE_HOME: join(dir, "cache"),
    UPSTREAM_TOKEN: upstreamToken,
    API_KEY: apiKey,
    ...options.env,
  });
  /** The `bottle` command with this bottle's environment; `input` is its stdin. */
  const bottle = (args: string[], extraEnv: NodeJS.ProcessEnv = {}, input?: string) =>
    runProcess(process.execPath, [BIN, ...args], {
      env: { ...env, ...extraEnv },
      cwd: dir,
      timeoutMs: 90_000,
      ...(input === undefined ? {} : { input }),
    });
  /** `bottle run` of this manifest in the workspace, without asking; `args` follow. */
  /** `COMMAND FILE --yes --workspace W ARGS…`: `up` or `run` of this bottle, without asking. */
  const argsOf = (command: "up" | "run", ...args: string[]) => [
    command,
    manifest,
    "--yes",
    "--workspace",
    workspace,
    ...args,
  ];
  const run = (...args: string[]) => bottle(argsOf("run", ...args));
  /** `bottle run ARGS…` of an agent that upper-cases what `bottle run` reads from a pipe. */
  const runPiped = (...args: string[]) =>
    bottle(
      argsOf("run", ...args, "--", "sh", "-c", "tr a-z A-Z; echo END"),
      {},
      "two lines\nfrom a pipe\n",
    );
  const stateOf = (name: string) => join(dir, "state", "bottle", name);
  /** Writes an agent script into the workspace; returns its path inside the bottle. */
  const script = async (name: string, body: string) => {
    await writeFile(join(workspace, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    return `/workspace/${name}`;
  };
  return {
    run,
    runPiped,
    argsOf,
    dir,
    manifest,
    workspace,
    env,
    gitEnv,
    bottle,
    stateOf,
    script,
    api,
    upstreamUrl,
    upstreamToken,
    apiKey,
    bare,
    app,
    liveToken,
  };
}

/** A GET on a unix socket (a sidecar's); resolves with the status. */
export function getOnSocket(socket: string, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    request({ socketPath: socket, path, method: "GET" }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    })
      .on("error", reject)
      .end();
  });
}

/** Whether `pid` runs (a zombie has exited: it waits for whichever process adopted it). */
export function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}
