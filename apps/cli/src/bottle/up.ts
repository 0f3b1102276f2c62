/**
 * Bringing a bottle up and tearing it down, whatever runs the agent afterwards: the plans, the
 * preflight, the state directory, the git gate's stage and mirrors, the task's gate token, the
 * sidecars started and ready; and the teardown that undoes every one of those steps.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { type CredProxyPlan, proxyTokenEnv } from "@bottle/cred-proxy/plan";
import { createTokenStore } from "@bottle/gate-tokens";
import {
  fetchMirrors,
  type GitGatePlan,
  readDeployKeys,
  revokeDeployKeys,
  writeStage,
} from "@bottle/git-gate/stage";
import { silentLogger } from "@bottle/log";
import { loadManifest, type Manifest } from "@bottle/manifest";
import { DEFAULT_PORTS } from "@bottle/sidecar";
import { newCallerKey, TOKMAN_KEY_ENV, TOKMAN_URL_ENV } from "@bottle/tokman/client";
import { type AgentSide, renderAgentSide } from "../agent-side.ts";
import { engineOf, pingEngine, removeBottleContainers } from "../docker/engine.ts";
import {
  agentImageOf,
  CONTAINER_GIT_GATE_COMMAND,
  type DockerBottle,
  startSidecarContainer,
} from "../docker/sidecars.ts";
import { CliError } from "../errors.ts";
import { formatPlan } from "../format.ts";
import { planBottle, prepareSidecars } from "../plan.ts";
import { inStep, type Progress } from "../progress.ts";
import { planTokman, type TokmanCallerPlan, type TokmanPlan, tokmanConfig } from "../tokman.ts";
import { type SidecarLaunch, type StartedSidecar, startSidecar, stopProcess } from "./sidecars.ts";
import {
  type BottlePaths,
  type BottleRecord,
  bottlePaths,
  cacheRoot,
  createBottleDirs,
  isAlive,
  listBottles,
  NAME_PATTERN,
  processRef,
  readRecord,
  removeBottleDir,
  stateRoot,
  writeRecord,
} from "./state.ts";

type Env = Readonly<Record<string, string | undefined>>;

/** Where the agent reaches the sidecars, inside the bottle. */
export const AGENT_URLS = {
  gate: `http://127.0.0.1:${DEFAULT_PORTS.gate}`,
  proxy: `http://127.0.0.1:${DEFAULT_PORTS.proxy}`,
} as const;

/** The sockets of the agent-facing sidecars, in the sockets directory. */
export const SOCKETS = { gate: "gate.sock", proxy: "proxy.sock" } as const;

/** The order of the sidecars in the record (and in `bottle ps`), whichever listened first. */
const SIDECAR_ORDER = ["tokman", "gate", "proxy"];

/** How long a sidecar may take to drain on SIGTERM before it is killed. */
const SIDECAR_GRACE_MS = 5_000;

export interface UpOptions {
  readonly file: string;
  readonly name?: string;
  readonly workspace?: string;
  readonly yes: boolean;
  readonly env: Env;
  readonly cwd: string;
  readonly progress: Progress;
  /** Asks the operator; null when there is no terminal to ask on. */
  readonly confirm: ((question: string) => Promise<boolean>) | null;
  /** Prints the preflight (stderr). */
  readonly say: (text: string) => void;
  /** `run`: this process owns the bottle and tears it down; `up`: it runs until `bottle down`. */
  readonly mode: "run" | "up";
  /** Where the sidecars and the agent run (default sandbox). */
  readonly backend?: BottleRecord["backend"];
}

/** A bottle whose sidecars listen. */
export interface Bottle {
  readonly paths: BottlePaths;
  record: BottleRecord;
  readonly manifest: Manifest;
  readonly workspace: string;
  readonly gate: GitGatePlan | null;
  readonly proxy: CredProxyPlan | null;
  /** The task's gate token (a secret: it goes into the agent's gitconfig only). */
  readonly gateToken: string | null;
  readonly sidecars: readonly StartedSidecar[];
}

/**
 * Brings the bottle up: orphans cleaned, plans, preflight and confirmation, state directory,
 * stage and mirrors, gate token, sidecars. On any failure what was done is undone before the
 * error is rethrown.
 */
export async function bringUp(options: UpOptions): Promise<Bottle> {
  const { progress, env } = options;
  const root = stateRoot(env);
  await cleanOrphans(root, env, progress);
  const file = resolve(options.cwd, options.file);
  const manifest = await inStep(progress, `manifest ${options.file}`, () =>
    loadManifest(file, { checkFiles: true }),
  );
  const name = pickName(root, manifest.name, options.name);
  const workspace = resolve(options.cwd, options.workspace ?? ".");
  if (!existsSync(workspace) || !statSync(workspace).isDirectory()) {
    throw new CliError("BTL_CLI_USAGE", `the workspace ${workspace} is not a directory`);
  }
  if (!relative(workspace, root).startsWith("..")) {
    throw new CliError(
      "BTL_CLI_USAGE",
      `the workspace ${workspace} holds bottle's state directory ${root}: pass a narrower --workspace`,
    );
  }
  const paths = bottlePaths(root, name);
  const backend = options.backend ?? "sandbox";
  if (backend === "docker") {
    if (options.mode === "run") agentImageOf(manifest);
    const engine = engineOf(env);
    await inStep(progress, `container engine on ${engine.socket}`, () => pingEngine(engine));
  }
  const plans = prepareSidecars(
    manifest,
    paths.stage,
    AGENT_URLS.gate,
    backend === "docker" ? CONTAINER_GIT_GATE_COMMAND : undefined,
  );
  const { gate, proxy } = plans;
  const tokman = planTokman(plans, env);

  options.say(formatPlan(planBottle(manifest, env, plans), options.file));
  options.say(preflight({ name, manifest, workspace, gate, backend }));
  if (!options.yes) {
    if (options.confirm === null) {
      throw new CliError(
        "BTL_CLI_NOT_CONFIRMED",
        "no terminal to confirm the preflight above: pass --yes to bring the bottle up",
      );
    }
    if (!(await options.confirm("Bring this bottle up? [y/N] "))) {
      throw new CliError("BTL_CLI_NOT_CONFIRMED", "not confirmed; nothing was started");
    }
  }

  // A stopped bottle of this name (pickName found it free) gives way, logs and all.
  if (readRecord(paths)?.state === "stopped") removeBottleDir(paths);
  try {
    createBottleDirs(paths);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") {
      throw new CliError("BTL_CLI_NAME_TAKEN", `bottle ${name} was created at the same moment`);
    }
    throw new CliError("BTL_CLI_STATE", `cannot create ${paths.root}: ${String(error)}`, {
      cause: error,
    });
  }
  const mirrors = (gate?.repos ?? []).map((repo) => ({
    path: repo.mirror,
    upstream: repo.upstream,
  }));
  const record: BottleRecord = {
    version: 1,
    name,
    manifest: file,
    project: manifest.name,
    backend,
    state: "starting",
    createdAt: new Date().toISOString(),
    owner: processRef(process.pid),
    sidecars: [],
    mirrors,
  };
  writeRecord(paths, record);
  const bottle: Bottle = {
    paths,
    record,
    manifest,
    workspace,
    gate,
    proxy,
    gateToken: null,
    sidecars: [],
  };
  try {
    return await start(bottle, options, tokman);
  } catch (error) {
    await teardown(paths, env, progress).catch(() => {});
    throw error;
  }
}

async function start(
  bottle: Bottle,
  options: UpOptions,
  tokman: TokmanPlan | null,
): Promise<Bottle> {
  const { paths, gate, proxy } = bottle;
  const { progress, env } = options;
  const base = sidecarEnv(env);
  let gateToken: string | null = null;
  const own =
    tokman?.source === "bottle" ? await startTokman(bottle, tokman.callers, base, progress) : null;
  /** How `caller` reaches tokman: the operator's (its variables) or the bottle's own. */
  const tokmanOf = (caller: "gate" | "proxy"): TokmanSettings | undefined => {
    if (tokman?.source === "operator") {
      return { url: env[TOKMAN_URL_ENV] as string, key: env[TOKMAN_KEY_ENV] as string };
    }
    const key = own?.keys[caller];
    return own && key ? { url: own.url, key } : undefined;
  };
  const gateTokman = tokmanOf("gate");
  const tokmanEnv = gateTokman
    ? { [TOKMAN_URL_ENV]: gateTokman.url, [TOKMAN_KEY_ENV]: gateTokman.key }
    : {};

  // The docker backend runs the gate and the proxy as containers; the bottle's own tokman stays
  // a host process.
  const docker =
    bottle.record.backend === "docker"
      ? { engine: engineOf(env), paths, name: bottle.record.name, env }
      : null;
  const launch = (sidecar: SidecarLaunch) =>
    launchSidecar(bottle, progress, sidecar, undefined, docker);
  // Checked before the gate and the proxy start: a variable the proxy needs is missing
  // (BTL_PROXY_TOKEN).
  const slots = proxy === null ? {} : proxyTokenEnv(proxy, env, tokmanOf("proxy"));
  // The proxy starts while the gate's stage and mirrors are made: neither waits for the other.
  const pending: Array<Promise<StartedSidecar>> = [];
  if (gate !== null) {
    pending.push(
      (async () => {
        const taken = takeCachedMirrors(bottle.record.mirrors, cacheRoot(env));
        const stageIo = {
          env: { ...env, ...tokmanEnv },
          cwd: options.cwd,
          stdin: process.stdin,
          stderr: process.stderr,
          say: (text: string) => progress.note(text),
          logger: silentLogger,
        };
        await inStep(progress, "git gate: stage and credentials", () =>
          writeStage(bottle.manifest, gate, true, stageIo),
        );
        const tokens = join(paths.private, "gate-tokens.json");
        gateToken = await inStep(
          progress,
          "gate token for this task",
          async () =>
            (
              await createTokenStore({ file: tokens }).create({
                project: bottle.manifest.name,
                task: bottle.record.name,
              })
            ).token,
        );
        const listening = launch({
          name: "gate",
          pkg: "@bottle/gate-server",
          bin: "bottle-gate",
          args: [
            "--socket",
            join(paths.sockets, SOCKETS.gate),
            "--base-path",
            gate.basePath,
            "--token-file",
            tokens,
            "--access-hook",
            JSON.stringify(gate.accessHook),
            "--hooks-dir",
            gate.hooksDir,
          ],
          env: { ...base, ...tokmanEnv },
          socket: join(paths.sockets, SOCKETS.gate),
          log: join(paths.logs, "gate.log"),
        });
        // The gate starts while the mirrors are fetched: every fetch through it refreshes first.
        const [started, fetched] = await Promise.allSettled([
          listening,
          inStep(
            progress,
            "git gate: mirrors",
            () => fetchMirrors(gate, stageIo),
            () => `${gate.repos.length} fetched (${taken} from the cache)`,
          ),
        ]);
        if (started.status === "rejected") throw started.reason;
        if (fetched.status === "rejected") throw fetched.reason;
        return started.value;
      })(),
    );
  }
  if (proxy !== null) {
    pending.push(
      (async () => {
        const routes = join(paths.private, "routes.json");
        writeFileSync(routes, `${JSON.stringify(proxy.routesFile, null, 2)}\n`, { mode: 0o600 });
        return launch({
          name: "proxy",
          pkg: "@bottle/cred-proxy",
          bin: "bottle-cred-proxy",
          args: ["--routes", routes, "--socket", join(paths.sockets, SOCKETS.proxy)],
          env: { ...base, ...slots },
          socket: join(paths.sockets, SOCKETS.proxy),
          log: join(paths.logs, "proxy.log"),
        });
      })(),
    );
  }
  // Every start settles before a failure is thrown, so that the teardown finds each sidecar
  // that started in the record.
  const results = await Promise.allSettled(pending);
  const failed = results.find((r) => r.status === "rejected");
  if (failed) throw (failed as PromiseRejectedResult).reason;
  const started = results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  bottle.record = {
    ...bottle.record,
    state: "running",
    owner: options.mode === "run" ? bottle.record.owner : null,
  };
  writeRecord(paths, bottle.record);
  const all = own ? [own.sidecar, ...started] : started;
  if (options.mode === "up") for (const s of all) s.child.unref();
  return { ...bottle, gateToken, sidecars: all };
}

/** The agent's side of a bottle that is up: its home files and environment. */
export function agentSideOf(bottle: Bottle): AgentSide {
  return renderAgentSide({
    manifest: bottle.manifest,
    gitGate: bottle.gate,
    credProxy: bottle.proxy,
    gateToken: bottle.gateToken,
    gateUrl: AGENT_URLS.gate,
    proxyUrl: AGENT_URLS.proxy,
  });
}

/** Starts a sidecar as a step, and records it in the bottle as soon as it listens. */
async function launchSidecar(
  bottle: Bottle,
  progress: Progress,
  sidecar: SidecarLaunch,
  title = `${sidecar.name}: listening`,
  /** The docker backend's engine: the sidecar runs as a container. */
  docker: DockerBottle | null = null,
): Promise<StartedSidecar> {
  const started = await inStep(
    progress,
    title,
    () => (docker ? startSidecarContainer(docker, sidecar) : startSidecar(sidecar)),
    (s) => `pid ${s.record.pid}${sidecar.socket === undefined ? ` on ${s.url}` : ""}`,
  );
  const sidecars = [...bottle.record.sidecars, started.record].sort(
    (a, b) => SIDECAR_ORDER.indexOf(a.name) - SIDECAR_ORDER.indexOf(b.name),
  );
  bottle.record = { ...bottle.record, sidecars };
  writeRecord(bottle.paths, bottle.record);
  return started;
}

/**
 * Starts the bottle's own tokman on a free port of 127.0.0.1, configured from the manifest's
 * apps with one caller key per sidecar (the keys go to the sidecars only; tokman's
 * configuration holds their SHA-256). It is recorded before anything else can fail.
 */
async function startTokman(
  bottle: Bottle,
  callers: readonly TokmanCallerPlan[],
  env: Record<string, string>,
  progress: Progress,
): Promise<{ url: string; keys: Record<string, string>; sidecar: StartedSidecar }> {
  const { paths } = bottle;
  const keys = Object.fromEntries(callers.map((c) => [c.name, newCallerKey()]));
  const config = join(paths.private, "tokman.json");
  writeFileSync(config, tokmanConfig(bottle.manifest, callers, keys), { mode: 0o600 });
  const sidecar = await launchSidecar(
    bottle,
    progress,
    {
      name: "tokman",
      pkg: "@bottle/tokman",
      bin: "bottle-tokman",
      // Its tokens die with the bottle: revoked at GitHub when it stops.
      args: ["serve", "--config", config, "--port", "0", "--revoke-on-stop"],
      env,
      log: join(paths.logs, "tokman.log"),
    },
    `tokman: GitHub App ${[...new Set(callers.map((c) => c.app))].join(", ")}`,
  );
  return { url: sidecar.url, keys, sidecar };
}

/** What the sidecars inherit: enough to run git and ssh, nothing of the host's secrets. */
function sidecarEnv(env: Env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "BOTTLE_DEBUG"]) {
    const value = env[name];
    if (value !== undefined) out[name] = value;
  }
  return out;
}

interface TokmanSettings {
  readonly url: string;
  readonly key: string;
}

/** The bottle's name: `--name`, or the manifest's name with the first free suffix. */
function pickName(root: string, project: string, asked: string | undefined): string {
  if (asked !== undefined) {
    if (!NAME_PATTERN.test(asked)) {
      throw new CliError(
        "BTL_CLI_USAGE",
        `--name ${JSON.stringify(asked)}: expected lowercase letters, digits, ".", "_" and "-" (at most 63)`,
      );
    }
    claimName(root, asked, true);
    return asked;
  }
  const base = project
    .toLowerCase()
    .replace(/[^a-z0-9._-]/g, "-")
    .slice(0, 56);
  for (let n = 1; ; n++) {
    const candidate = n === 1 ? base : `${base}-${n}`;
    if (claimName(root, candidate, false)) return candidate;
  }
}

/**
 * Whether `name` is free: no directory, or a stopped bottle (whose directory the new bottle
 * replaces once the preflight is confirmed, so that a declined one keeps its logs).
 */
function claimName(root: string, name: string, mustBeFree: boolean): boolean {
  const paths = bottlePaths(root, name);
  if (!existsSync(paths.root)) return true;
  if (readRecord(paths)?.state === "stopped") return true;
  if (mustBeFree) {
    throw new CliError(
      "BTL_CLI_NAME_TAKEN",
      `bottle ${name} is running: stop it with \`bottle down ${name}\`, or pick another --name`,
    );
  }
  return false;
}

/** What `bottle plan` does not show: the bottle's name, workspace and deploy keys to create. */
function preflight(input: {
  name: string;
  manifest: Manifest;
  workspace: string;
  gate: GitGatePlan | null;
  backend: BottleRecord["backend"];
}): string {
  const keys: string[] = [];
  for (const repo of input.gate?.repos ?? []) {
    const c = repo.credential;
    if (c.kind === "ssh-key" && c.source === "gitea-deploy-key" && !existsSync(c.identity)) {
      keys.push(`${repo.name} (${c.owner}/${c.name} at ${c.api})`);
    }
  }
  const lines = [
    "",
    `bottle ${input.name}, ${input.backend} backend`,
    `  workspace  ${input.workspace} → ${input.manifest.agent.workdir}`,
  ];
  if (keys.length > 0) {
    lines.push(`  deploy keys to create now and revoke at teardown: ${keys.join(", ")}`);
  }
  return `${lines.join("\n")}\n`;
}

/** Moves cached mirrors of these upstreams into the stage; returns how many were there. */
function takeCachedMirrors(mirrors: BottleRecord["mirrors"], cache: string): number {
  let taken = 0;
  for (const mirror of mirrors) {
    const cached = cachedMirror(cache, mirror.upstream);
    if (!existsSync(cached) || existsSync(mirror.path)) continue;
    mkdirSync(dirname(mirror.path), { recursive: true, mode: 0o700 });
    try {
      renameSync(cached, mirror.path);
      taken++;
    } catch {
      // Another bottle took it first, or the cache is on another file system: fetch afresh.
    }
  }
  return taken;
}

/** Gives the mirrors back to the cache (one per upstream; a bottle never shares one). */
function returnMirrors(mirrors: BottleRecord["mirrors"], cache: string): void {
  for (const mirror of mirrors) {
    if (!existsSync(mirror.path)) continue;
    const cached = cachedMirror(cache, mirror.upstream);
    if (existsSync(cached)) continue;
    try {
      mkdirSync(dirname(cached), { recursive: true, mode: 0o700 });
      renameSync(mirror.path, cached);
    } catch {
      // The stage is removed below; the next bottle fetches afresh.
    }
  }
}

function cachedMirror(cache: string, upstream: string): string {
  const digest = createHash("sha256").update(upstream).digest("hex").slice(0, 24);
  return join(cache, "mirrors", `${digest}.git`);
}

/**
 * Tears bottle `paths` down: sidecars stopped, the task's gate tokens revoked, deploy keys
 * revoked after the sidecars stopped, mirrors given back to the cache, sockets, stage and
 * private files removed. Logs and the record (state `stopped`) stay until `bottle down`.
 * Throws CliError BTL_CLI_TEARDOWN when a deploy key could not be revoked (the stage is kept
 * so that `bottle down` can retry).
 */
export async function teardown(paths: BottlePaths, env: Env, progress: Progress): Promise<void> {
  const record = readRecord(paths);
  if (record === null) {
    removeBottleDir(paths);
    return;
  }
  await inStep(progress, `stop ${record.name}'s sidecars`, async () => {
    if (record.backend === "docker") {
      await removeBottleContainers(engineOf(env), paths, record.name, SIDECAR_GRACE_MS / 1000);
    } else if (record.agent) {
      await stopProcess(record.agent, SIDECAR_GRACE_MS);
    }
    // Host processes (all of the sandbox backend's; the bottle's own tokman with docker).
    const processes = record.sidecars.filter((s) => s.container === undefined);
    await Promise.all(processes.map((s) => stopProcess(s, SIDECAR_GRACE_MS)));
  });
  const tokens = join(paths.private, "gate-tokens.json");
  if (existsSync(tokens)) {
    await createTokenStore({ file: tokens }).revoke({ task: record.name, project: record.project });
  }
  const stateDir = join(paths.stage, "git-gate");
  if (existsSync(stateDir) && readDeployKeys(stateDir).length > 0) {
    await inStep(progress, "revoke deploy keys", async () => {
      try {
        await revokeDeployKeys({ stateDir, env });
      } catch (error) {
        writeRecord(paths, { ...record, state: "stopped", owner: null, sidecars: [] });
        throw new CliError(
          "BTL_CLI_TEARDOWN",
          `bottle ${record.name}: ${(error as Error).message}; the stage is kept: run \`bottle down ${record.name}\` again`,
          { cause: error },
        );
      }
    });
  }
  returnMirrors(record.mirrors, cacheRoot(env));
  for (const dir of [paths.sockets, paths.stage, paths.private, paths.sandbox]) {
    rmSync(dir, { recursive: true, force: true });
  }
  const { agent: _agent, ...rest } = record;
  writeRecord(paths, {
    ...rest,
    state: "stopped",
    owner: null,
    sidecars: [],
    stoppedAt: new Date().toISOString(),
  });
}

/** Whether the bottle's owner died without tearing it down (a SIGKILLed `bottle run`). */
export function isOrphan(record: BottleRecord): boolean {
  return record.state !== "stopped" && record.owner !== null && !isAlive(record.owner);
}

/** Tears down every orphaned bottle under `root`. */
export async function cleanOrphans(root: string, env: Env, progress: Progress): Promise<void> {
  for (const name of listBottles(root)) {
    const paths = bottlePaths(root, name);
    let record: BottleRecord | null;
    try {
      record = readRecord(paths);
    } catch {
      continue;
    }
    if (record === null || !isOrphan(record)) continue;
    progress.note(`bottle ${name}: its owner (pid ${record.owner?.pid}) is gone; cleaning up`);
    await teardown(paths, env, progress).catch((error: unknown) =>
      progress.note(`bottle ${name}: ${(error as Error).message}`),
    );
  }
}
