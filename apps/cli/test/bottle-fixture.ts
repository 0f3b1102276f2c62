/**
 * A bottle on local upstreams for the CLI's end-to-end tests: an HTTP git upstream that demands
 * a token only the gate holds, an API upstream behind a proxy route, and the `bottle` command
 * with its own state, cache and home directories.
 */
import { readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import {
  createBaseEnv,
  createGitEnv,
  createWorkRepo,
  git,
  makeCanary,
  runProcess,
  startHttpGitUpstream,
  startUpstream,
  testdir,
} from "@bottle/test-utils";

export const BIN = join(import.meta.dirname, "../dist/cli.js");

/** Sets up the upstreams and writes `bottle.yaml`, with `routesYaml` appended to its routes. */
export async function setupBottle(
  options: { routesYaml?: string; env?: NodeJS.ProcessEnv; agentImage?: string } = {},
) {
  const dir = await testdir();
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
    api: { url: "${upstreamUrl}", key: { provider: token, token_ref: UPSTREAM_TOKEN } }
  scan: { scanner: builtin }
cred_proxy:
  routes:
    - { path: /api/, upstream: "${api.url}", auth: { scheme: Bearer }, token_ref: API_KEY }
${options.routesYaml ?? ""}`,
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
  const bottle = (args: string[], extraEnv: NodeJS.ProcessEnv = {}) =>
    runProcess(process.execPath, [BIN, ...args], {
      env: { ...env, ...extraEnv },
      cwd: dir,
      timeoutMs: 90_000,
    });
  /** `bottle run` of this manifest in the workspace, without asking; `args` follow. */
  const run = (...args: string[]) =>
    bottle(["run", manifest, "--yes", "--workspace", workspace, ...args]);
  const stateOf = (name: string) => join(dir, "state", "bottle", name);
  return {
    run,
    dir,
    manifest,
    workspace,
    env,
    gitEnv,
    bottle,
    stateOf,
    api,
    upstreamUrl,
    upstreamToken,
    apiKey,
    bare,
  };
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
