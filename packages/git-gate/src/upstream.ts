/**
 * Reaching the upstream with the gate-held credential. SECURITY: the credential is handed to git
 * through the child's environment only (never argv, never the mirror's config); the machine's
 * ssh and git configuration are never read; SSH checks the pinned host key strictly.
 */
import { closeSync, openSync, statSync } from "node:fs";
import { join } from "node:path";
import { CREDENTIAL_SHAPE, isCredentialValue } from "@bottle/manifest/policy";
import { gitEnv } from "@bottle/secret-scan/git";
import { createTokmanClient } from "@bottle/tokman/client";
import lockfile from "proper-lockfile";
import { GitGateError } from "./errors.ts";
import type { GateConfig, PlannedRepo } from "./gate-config.ts";
import { readPrivateFile } from "./private-file.ts";
import { shellQuote } from "./render.ts";
import { readTokmanSettings } from "./state.ts";

/**
 * The environment of a git command that talks to `repo`'s upstream: `base` (see `gitEnv`) plus
 * the SSH command or the HTTP credential (for a GitHub App: a token from tokman when the state
 * directory names one). Throws BTL_GITGATE_CREDENTIAL (missing or too open key or token file,
 * malformed token, tokman refusing), BTL_GITGATE_NO_HOST_KEY.
 */
export async function upstreamEnv(
  config: GateConfig,
  repo: PlannedRepo,
  from: Readonly<Record<string, string | undefined>>,
): Promise<Record<string, string>> {
  const home = join(config.stateDir, "home");
  const env = gitEnv(from, { HOME: home });
  const { connect } = config.timeouts;
  if (repo.credential.kind === "ssh-key") {
    if (repo.knownHosts === undefined) {
      throw new GitGateError("BTL_GITGATE_NO_HOST_KEY", `repository ${repo.name} pins no host key`);
    }
    checkKeyFile(repo.credential.identity, repo.name);
    const options = [
      "-F",
      "/dev/null",
      "-o",
      `UserKnownHostsFile=${repo.knownHosts.file}`,
      "-o",
      "GlobalKnownHostsFile=/dev/null",
      "-o",
      "StrictHostKeyChecking=yes",
      "-o",
      "UpdateHostKeys=no",
      "-o",
      "BatchMode=yes",
      "-o",
      "IdentitiesOnly=yes",
      "-o",
      "IdentityAgent=none",
      "-o",
      `IdentityFile=${repo.credential.identity}`,
      "-o",
      "PasswordAuthentication=no",
      "-o",
      "KbdInteractiveAuthentication=no",
      "-o",
      `ConnectTimeout=${connect}`,
      "-o",
      "ServerAliveInterval=15",
      "-o",
      "ServerAliveCountMax=4",
    ];
    // git runs GIT_SSH_COMMAND through the shell: every word is validated and quoted.
    env.GIT_SSH_COMMAND = ["ssh", ...options].map((w) => shellQuote(w, "an ssh option")).join(" ");
    env.GIT_SSH_VARIANT = "ssh";
    return env;
  }
  const token =
    (repo.credential.source === "github-app"
      ? await brokerToken(config, repo, repo.credential.repository)
      : undefined) ??
    readPrivateFile(
      repo.credential.tokenFile,
      `the token of ${repo.name}`,
      "BTL_GITGATE_CREDENTIAL",
    ).trim();
  if (!isCredentialValue(token)) {
    throw new GitGateError(
      "BTL_GITGATE_CREDENTIAL",
      `the token of ${repo.name} is not ${CREDENTIAL_SHAPE}`,
    );
  }
  const basic = Buffer.from(`${repo.credential.username}:${token}`).toString("base64");
  const origin = new URL(repo.upstream).origin;
  const config_: Array<[string, string]> = [
    // Scoped to the upstream's origin, and redirects are not followed: the header goes nowhere else.
    [`http.${origin}/.extraHeader`, `Authorization: Basic ${basic}`],
    ["http.followRedirects", "false"],
    ["credential.helper", ""],
    ["http.lowSpeedLimit", "1"],
    ["http.lowSpeedTime", String(config.timeouts.fetch)],
  ];
  env.GIT_CONFIG_COUNT = String(config_.length);
  config_.forEach(([key, value], i) => {
    env[`GIT_CONFIG_KEY_${i}`] = key;
    env[`GIT_CONFIG_VALUE_${i}`] = value;
  });
  env.GIT_ASKPASS = "/bin/false";
  return env;
}

function checkKeyFile(path: string, repo: string): void {
  let mode: number;
  try {
    mode = statSync(path).mode;
  } catch (error) {
    throw new GitGateError(
      "BTL_GITGATE_CREDENTIAL",
      `the SSH key of ${repo} cannot be read (${path}); for a Gitea deploy key run bottle-git-gate init`,
      { cause: error },
    );
  }
  if ((mode & 0o077) !== 0) {
    throw new GitGateError(
      "BTL_GITGATE_CREDENTIAL",
      `the SSH key of ${repo} (${path}) is accessible to group or others; run chmod 600 ${path}`,
    );
  }
}

/**
 * Runs `fn` holding the mirror's lock, so fetches and pushes on one mirror never overlap.
 * Waits up to `timeouts.lock` seconds; a holder that died is taken over after 30 s. Throws
 * BTL_GITGATE_LOCKED when the wait ends.
 */
export async function withMirrorLock<T>(
  config: GateConfig,
  repo: PlannedRepo,
  fn: () => Promise<T>,
): Promise<T> {
  const file = join(config.stateDir, "locks", repo.name);
  closeSync(openSync(file, "a", 0o600));
  let compromised: Error | undefined;
  let release: () => Promise<void>;
  try {
    release = await lockfile.lock(file, {
      stale: 30_000,
      update: 5_000,
      realpath: false,
      retries: {
        retries: Math.ceil(config.timeouts.lock * 10),
        factor: 1,
        minTimeout: 100,
        maxTimeout: 100,
      },
      onCompromised: (error) => {
        compromised = error;
      },
    });
  } catch (error) {
    throw new GitGateError(
      "BTL_GITGATE_LOCKED",
      `another fetch or push held ${repo.name} for more than ${config.timeouts.lock} s`,
      { cause: error },
    );
  }
  try {
    const result = await fn();
    if (compromised) {
      throw new GitGateError("BTL_GITGATE_LOCKED", `lost the lock of ${repo.name}`, {
        cause: compromised,
      });
    }
    return result;
  } finally {
    await release().catch(() => {});
  }
}

/** Seconds a broker token must still be valid: longer than the slowest fetch or push. */
const BROKER_MIN_TTL = 900;

/**
 * A GitHub App installation token for `repo` from tokman, through `@bottle/tokman/client`, or
 * undefined when the state directory names no tokman. Throws BTL_GITGATE_CREDENTIAL with
 * tokman's code and reason when it refuses or cannot be reached.
 */
async function brokerToken(
  config: GateConfig,
  repo: PlannedRepo,
  repository: string,
): Promise<string | undefined> {
  const settings = readTokmanSettings(config.stateDir);
  if (settings === undefined) return undefined;
  const client = createTokmanClient({
    ...settings,
    timeoutMs: config.timeouts.connect * 1000 + 15_000,
    wrapError: (error) =>
      new GitGateError("BTL_GITGATE_CREDENTIAL", `no token for ${repo.name}: ${error.message}`, {
        cause: error,
      }),
  });
  try {
    return await client.token({
      repository,
      minTtlSeconds: BROKER_MIN_TTL,
    });
  } finally {
    client.close();
  }
}
