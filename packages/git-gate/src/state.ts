/**
 * The gate's private state directory: writing a plan into it, and what the hooks read back
 * (`gate.json`, the forwarding token). SECURITY: the directory is 0700 and its files 0600; a
 * file or directory that group or others can read or write is refused, never used.
 */
import { chmodSync, existsSync, mkdirSync, realpathSync } from "node:fs";
import { join } from "node:path";
import { formatIssues } from "@bottle/manifest/policy";
import { checkTokmanSettings } from "@bottle/tokman/client";
import * as v from "valibot";
import { GitGateError } from "./errors.ts";
import { type GateConfig, GateConfigSchema, type PlannedRepo } from "./gate-config.ts";
import type { GitGatePlan } from "./plan.ts";
import { readPrivateFile, writeFileSafely } from "./private-file.ts";

/** Creates the plan's directories (0700) and writes its files (0600, the hook 0700) atomically. */
export function writePlan(plan: GitGatePlan): void {
  for (const dir of plan.dirs) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
  }
  for (const file of plan.files) writeFileSafely(file.path, file.content, file.mode);
}

/** Reads and validates `<stateDir>/gate.json`. Throws BTL_GITGATE_STATE. */
export function readGateConfig(stateDir: string): GateConfig {
  const file = join(stateDir, "gate.json");
  const text = readPrivateFile(file, "the gate configuration");
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new GitGateError("BTL_GITGATE_STATE", `${file} is not valid JSON`, { cause: error });
  }
  const result = v.safeParse(GateConfigSchema, data);
  if (!result.success) {
    throw new GitGateError(
      "BTL_GITGATE_STATE",
      `${file} is not a gate configuration (${formatIssues(result.issues, { max: 1 })}); run bottle-git-gate init again`,
    );
  }
  return Object.freeze(result.output);
}

/**
 * The repository whose mirror is `gitDir` (compared by real path). Throws BTL_GITGATE_CONFIG
 * when the gate does not know it.
 */
export function findRepo(config: GateConfig, gitDir: string): PlannedRepo {
  let real: string;
  try {
    real = realpathSync(gitDir);
  } catch (error) {
    throw new GitGateError("BTL_GITGATE_CONFIG", `no repository at ${gitDir}`, { cause: error });
  }
  for (const repo of config.repos) {
    try {
      if (realpathSync(repo.mirror) === real) return repo;
    } catch {}
  }
  throw new GitGateError("BTL_GITGATE_CONFIG", "this repository is not one of the gate's mirrors");
}

/** Where tokman is and the gate's caller key there. */
export interface TokmanSettings {
  readonly url: string;
  readonly key: string;
}

/** The file init writes them to (`secrets/tokman.json`, 0600). */
export function tokmanSettingsFile(stateDir: string): string {
  return join(stateDir, "secrets", "tokman.json");
}

/**
 * tokman's settings from the state directory, checked as at init, or undefined when init was
 * given none. Throws BTL_GITGATE_CREDENTIAL when the file is too open or malformed.
 */
export function readTokmanSettings(stateDir: string): TokmanSettings | undefined {
  const file = tokmanSettingsFile(stateDir);
  if (!existsSync(file)) return undefined;
  const text = readPrivateFile(file, "the tokman settings", "BTL_GITGATE_CREDENTIAL");
  let data: { url?: unknown; key?: unknown } = {};
  try {
    data = JSON.parse(text) as typeof data;
  } catch {}
  const url = typeof data.url === "string" ? data.url : undefined;
  const key = typeof data.key === "string" ? data.key : undefined;
  const problems = checkTokmanSettings({ url, key });
  if (url === undefined || key === undefined || problems.url || problems.key)
    throw new GitGateError(
      "BTL_GITGATE_CREDENTIAL",
      `${file} holds no usable tokman settings; run bottle-git-gate init again`,
    );
  return { url, key };
}
