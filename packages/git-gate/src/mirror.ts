/**
 * The bare mirrors: created with `origin` pointing at the upstream, and refreshed from it before
 * every fetch the agent makes (the access hook), failing closed when the upstream is away.
 */
import { existsSync } from "node:fs";
import { git, oneLine } from "@bottle/secret-scan/git";
import { GitGateError } from "./errors.ts";
import type { GateConfig, PlannedRepo } from "./gate-config.ts";
import { upstreamEnv, withMirrorLock } from "./upstream.ts";

type Env = Readonly<Record<string, string | undefined>>;

/** What a refresh found upstream. */
export interface RefreshResult {
  /** The upstream's default branch (`refs/heads/…`), when it has one. */
  readonly head: string | undefined;
}

/**
 * Creates (or re-points) the bare mirror of `repo` and fetches it once. Throws
 * BTL_GITGATE_UPSTREAM_UNREACHABLE, BTL_GITGATE_CREDENTIAL, BTL_GITGATE_GIT.
 */
export async function initMirror(
  config: GateConfig,
  repo: PlannedRepo,
  from: Env,
): Promise<RefreshResult> {
  const env = { ...(await upstreamEnv(config, repo, from)), GIT_DIR: repo.mirror };
  if (!existsSync(repo.mirror)) {
    await git(["init", "--bare", "--quiet", repo.mirror], { env: withoutGitDir(env) });
  }
  const settings: Array<[string, string]> = [
    ["remote.origin.url", repo.upstream],
    ["receive.denyNonFastForwards", "false"],
    ["receive.denyDeletes", "false"],
    ["core.logAllRefUpdates", "false"],
    ["gc.autoDetach", "false"],
  ];
  for (const [key, value] of settings) await git(["config", key, value], { env });
  await git(["config", "--replace-all", "remote.origin.fetch", "+refs/heads/*:refs/heads/*"], {
    env,
  });
  await git(["config", "--add", "remote.origin.fetch", "+refs/tags/*:refs/tags/*"], { env });
  return refreshMirror(config, repo, from);
}

/**
 * Fetches the upstream into the mirror (prune, tags, HEAD from the upstream's symref) under the
 * mirror's lock. Throws BTL_GITGATE_UPSTREAM_UNREACHABLE with git's reason when it fails.
 */
export async function refreshMirror(
  config: GateConfig,
  repo: PlannedRepo,
  from: Env,
): Promise<RefreshResult> {
  const env = { ...(await upstreamEnv(config, repo, from)), GIT_DIR: repo.mirror };
  const timeoutMs = config.timeouts.fetch * 1000;
  return withMirrorLock(config, repo, async () => {
    const [fetch, symref] = await Promise.all([
      git(["fetch", "--prune", "--quiet", "--no-write-fetch-head", "--no-auto-gc", "origin"], {
        env,
        timeoutMs,
        allowFailure: true,
      }),
      git(["ls-remote", "--symref", "origin", "HEAD"], { env, timeoutMs, allowFailure: true }),
    ]);
    if (fetch.timedOut || fetch.code !== 0) {
      throw new GitGateError(
        "BTL_GITGATE_UPSTREAM_UNREACHABLE",
        `cannot fetch ${repo.name} from its upstream${fetch.timedOut ? ` (timed out after ${config.timeouts.fetch} s)` : ""}: ${oneLine(fetch.stderr) || "no reason given"}`,
      );
    }
    const head = /^ref: (refs\/heads\/[^\t\n]+)\tHEAD$/m.exec(symref.stdout.toString("utf8"))?.[1];
    if (head !== undefined) {
      const current = await git(["symbolic-ref", "--quiet", "HEAD"], { env, allowFailure: true });
      if (current.stdout.toString("utf8").trim() !== head) {
        await git(["symbolic-ref", "HEAD", head], { env });
      }
    }
    return { head };
  });
}

/** The mirror's default branch (`refs/heads/…`), as last synced from the upstream. */
export async function defaultBranch(
  repo: PlannedRepo,
  env: Readonly<Record<string, string>>,
): Promise<string | undefined> {
  const result = await git(["symbolic-ref", "--quiet", "HEAD"], {
    env: { ...env, GIT_DIR: repo.mirror },
    allowFailure: true,
  });
  const ref = result.stdout.toString("utf8").trim();
  return ref === "" ? undefined : ref;
}

function withoutGitDir(env: Readonly<Record<string, string>>): Record<string, string> {
  const { GIT_DIR: _, ...rest } = env;
  return rest;
}
