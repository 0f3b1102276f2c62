/** Planning and initialising a stage directory: `plan`, `init` and `entrypoint`. */
import { existsSync } from "node:fs";
import { createInterface } from "node:readline/promises";
import type { Logger } from "@bottle/log";
import { loadManifest, type Manifest } from "@bottle/manifest";
import { checkTokmanSettings, TOKMAN_KEY_ENV, TOKMAN_URL_ENV } from "@bottle/tokman/client";
import {
  type DeployKeyRequest,
  deployKeyTitle,
  formatDeployKeyPreflight,
  provisionDeployKeys,
} from "./deploy-keys.ts";
import { GitGateError } from "./errors.ts";
import { initMirror } from "./mirror.ts";
import { type GitGatePlan, prepareGitGate } from "./plan.ts";
import { writeFileSafely } from "./private-file.ts";
import { shellQuote } from "./render.ts";
import { tokmanSettingsFile, writePlan } from "./state.ts";

/** The options of `plan`, `init` and `entrypoint`. */
export interface StageFlags {
  manifest: string;
  stage: string;
  gateUrl?: string;
  yes?: boolean;
  json?: boolean;
}

/** What init needs of its process. */
export interface StageIo {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
  readonly stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  readonly stderr: NodeJS.WritableStream;
  /** A progress line for the operator (stderr). */
  readonly say: (text: string) => void;
  readonly logger: Logger;
}

/** The plan of `flags.manifest` in `flags.stage` (no side effects). */
export async function planStage(flags: StageFlags, io: StageIo): Promise<GitGatePlan> {
  const bottle = await loadManifest(flags.manifest);
  return prepareGitGate(
    bottle,
    absolute(flags.stage, io),
    flags.gateUrl ? { gateUrl: flags.gateUrl } : {},
  );
}

/**
 * Writes the plan, stores HTTPS tokens from their variables, provisions Gitea deploy keys after
 * the preflight, then creates and fetches every mirror. Throws GitGateError (any code of init).
 */
export async function initStage(flags: StageFlags, io: StageIo): Promise<GitGatePlan> {
  const bottle = await loadManifest(flags.manifest);
  const plan = prepareGitGate(
    bottle,
    absolute(flags.stage, io),
    flags.gateUrl ? { gateUrl: flags.gateUrl } : {},
  );
  await writeStage(bottle, plan, flags.yes === true, io);
  await fetchMirrors(plan, io);
  return plan;
}

/**
 * The first half of init, for a launcher that holds the manifest and its plan already: writes
 * the plan, stores HTTPS tokens from their variables, provisions Gitea deploy keys after the
 * preflight (`yes`: without asking). A gate can serve the stage from then on (each fetch
 * refreshes its mirror first). Throws GitGateError.
 */
export async function writeStage(
  bottle: Manifest,
  plan: GitGatePlan,
  yes: boolean,
  io: StageIo,
): Promise<void> {
  writePlan(plan);
  storeTokens(plan, io);
  await provisionKeys(bottle, plan, yes, io);
}

/** The second half of init: creates and fetches every mirror. Throws GitGateError. */
export async function fetchMirrors(plan: GitGatePlan, io: StageIo): Promise<void> {
  for (const repo of plan.repos) {
    const started = Date.now();
    io.say(`mirror ${repo.name}: fetching ${repo.upstream} …`);
    const { head } = await initMirror(plan, repo, io.env);
    io.say(`mirror ${repo.name}: ready (${head ?? "empty"}) in ${Date.now() - started} ms`);
  }
}

function storeTokens(plan: GitGatePlan, io: StageIo): void {
  const url = io.env[TOKMAN_URL_ENV];
  const key = io.env[TOKMAN_KEY_ENV];
  const broker = url !== undefined && url !== "" && key !== undefined && key !== "";
  const tokmanFile = tokmanSettingsFile(plan.stateDir);
  if (broker) {
    const names = { url: `$${TOKMAN_URL_ENV}`, key: `$${TOKMAN_KEY_ENV}` };
    const problems = checkTokmanSettings({ url, key }, names);
    if (problems.url || problems.key) {
      const found = [problems.url, problems.key].filter((problem) => problem !== undefined);
      throw new GitGateError("BTL_GITGATE_CONFIG", found.join("; "));
    }
    writeFileSafely(tokmanFile, `${JSON.stringify({ url, key })}\n`, 0o600);
  }
  for (const repo of plan.repos) {
    const credential = repo.credential;
    if (credential.kind !== "token") continue;
    if (credential.source === "github-app") {
      if (!broker && !existsSync(tokmanFile) && !existsSync(credential.tokenFile)) {
        throw new GitGateError(
          "BTL_GITGATE_CREDENTIAL",
          `repository ${repo.name} uses GitHub App ${credential.app}: set $BOTTLE_TOKMAN_URL and $BOTTLE_TOKMAN_KEY (tokman), or write an installation token to ${credential.tokenFile} (mode 0600)`,
        );
      }
      continue;
    }
    const value = io.env[credential.tokenEnv];
    if (value === undefined || value.trim() === "") {
      throw new GitGateError(
        "BTL_GITGATE_CREDENTIAL",
        `repository ${repo.name} needs its token in $${credential.tokenEnv}, which is unset or empty`,
      );
    }
    writeFileSafely(credential.tokenFile, `${value.trim()}\n`, 0o600);
  }
}

async function provisionKeys(
  bottle: Manifest,
  plan: GitGatePlan,
  yes: boolean,
  io: StageIo,
): Promise<void> {
  const requests: DeployKeyRequest[] = [];
  for (const repo of plan.repos) {
    const c = repo.credential;
    if (c.kind === "ssh-key" && c.source === "gitea-deploy-key" && !existsSync(c.identity)) {
      requests.push({
        repo: repo.name,
        api: c.api,
        owner: c.owner,
        name: c.name,
        tokenEnv: c.tokenEnv,
      });
    }
  }
  if (requests.length === 0) return;
  const now = new Date();
  io.say("Deploy keys to create (write access, revoked by `bottle-git-gate revoke-keys`):");
  io.say(formatDeployKeyPreflight(requests, (r) => deployKeyTitle(bottle.name, r.repo, now)));
  if (!yes) {
    if (io.stdin.isTTY !== true) {
      throw new GitGateError(
        "BTL_GITGATE_NOT_CONFIRMED",
        "no terminal to confirm the deploy keys above: pass --yes to create them",
      );
    }
    const rl = createInterface({ input: io.stdin, output: io.stderr });
    const answer = await rl.question("Create these keys? [y/N] ");
    rl.close();
    if (!/^y(?:es)?$/i.test(answer.trim())) {
      throw new GitGateError(
        "BTL_GITGATE_NOT_CONFIRMED",
        "deploy keys not confirmed; nothing was created",
      );
    }
  }
  const records = await provisionDeployKeys({
    requests,
    bottleName: bottle.name,
    stateDir: plan.stateDir,
    env: io.env,
    logger: io.logger,
    now: () => now,
  });
  for (const record of records) io.say(`deploy key ${record.title}: registered as id ${record.id}`);
}

function absolute(dir: string, io: StageIo): string {
  return dir.startsWith("/") ? dir : `${io.cwd}/${dir}`;
}

/** The plan for people: one line per repository, then the paths. */
export function describePlan(plan: GitGatePlan): string {
  const lines = [
    `project ${plan.project}: ${plan.repos.length} repositor${plan.repos.length === 1 ? "y" : "ies"}`,
    ...plan.repos.map(
      (r) =>
        `  ${r.name}: ${r.gateUrl} ← ${r.upstream} (${r.credential.kind === "ssh-key" ? `ssh key, ${r.credential.source}` : `token, ${r.credential.source === "env" ? `$${r.credential.tokenEnv}` : `GitHub App ${r.credential.app}`}`}; force-push ${r.push.force_push}, deletes ${r.push.deletes})`,
    ),
    `gate base path: ${plan.basePath}`,
    `hooks directory: ${plan.hooksDir}`,
    `access hook: ${plan.accessHook.map((word) => shellQuote(word, "a hook command word")).join(" ")}`,
    `agent gitconfig: ${plan.stageDir}/agent/gitconfig`,
    `scanner: ${plan.scan.scanner} (${plan.scan.rules.length} extra rule(s), ${plan.scan.allowlist.length} allowlisted fingerprint(s))`,
  ];
  return `${lines.join("\n")}\n`;
}
