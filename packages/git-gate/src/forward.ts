/**
 * Forwarding a clean push: the manifest's push policy first, then the same ref updates pushed to
 * the upstream with the gate-held credential: atomically where the upstream supports it, and
 * with a lease on every non-fast-forward update and delete, so a concurrent upstream change is
 * never clobbered. The mirror's refs move only after this succeeds (receive-pack updates them
 * once the hook exits 0).
 */
import type { RefUpdate } from "@bottle/secret-scan";
import { git, oneLine } from "@bottle/secret-scan/git";
import { GitGateError } from "./errors.ts";
import type { GateConfig, PlannedRepo, PushAccess } from "./gate-config.ts";
import { defaultBranch } from "./mirror.ts";
import { upstreamEnv, withMirrorLock } from "./upstream.ts";

type Env = Readonly<Record<string, string>>;

/** An update with what it does. */
export interface ClassifiedUpdate extends RefUpdate {
  readonly kind: "create" | "fast-forward" | "force" | "delete";
}

const isZero = (oid: string) => /^0+$/.test(oid);

/** Classifies each update: creates, fast-forwards, forced (non-fast-forward, moved tags), deletes. */
export async function classifyUpdates(
  updates: readonly RefUpdate[],
  env: Env,
): Promise<ClassifiedUpdate[]> {
  const out: ClassifiedUpdate[] = [];
  for (const update of updates) {
    let kind: ClassifiedUpdate["kind"];
    if (isZero(update.newOid)) kind = "delete";
    else if (isZero(update.oldOid)) kind = "create";
    else if (!update.ref.startsWith("refs/heads/")) kind = "force";
    else {
      const ancestor = await git(["merge-base", "--is-ancestor", update.oldOid, update.newOid], {
        env,
        allowFailure: true,
      });
      kind = ancestor.code === 0 ? "fast-forward" : "force";
    }
    out.push({ ...update, kind });
  }
  return out;
}

/**
 * Throws BTL_GITGATE_POLICY when an update is a force-push or delete the repository's policy
 * forbids (`except-default`: allowed everywhere but the upstream's default branch).
 */
export function checkPolicy(
  repo: PlannedRepo,
  updates: readonly ClassifiedUpdate[],
  head: string | undefined,
): void {
  const allowed = (access: PushAccess, ref: string) =>
    access === "always" || (access === "except-default" && ref !== head);
  for (const update of updates) {
    if (update.kind === "force" && !allowed(repo.push.force_push, update.ref)) {
      throw new GitGateError(
        "BTL_GITGATE_POLICY",
        `force-pushing ${update.ref} is not allowed for ${repo.name} (push.force_push: ${repo.push.force_push}${update.ref === head ? "; it is the default branch" : ""})`,
      );
    }
    if (update.kind === "delete" && !allowed(repo.push.deletes, update.ref)) {
      throw new GitGateError(
        "BTL_GITGATE_POLICY",
        `deleting ${update.ref} is not allowed for ${repo.name} (push.deletes: ${repo.push.deletes}${update.ref === head ? "; it is the default branch" : ""})`,
      );
    }
  }
}

/**
 * Policy check and push to the upstream, holding the mirror's lock. `hookEnv` is the hook's
 * environment (its quarantine variables make the pushed objects visible). Throws
 * BTL_GITGATE_POLICY, BTL_GITGATE_UPSTREAM_REJECTED, BTL_GITGATE_UPSTREAM_UNREACHABLE,
 * BTL_GITGATE_CREDENTIAL.
 */
export async function forwardPush(
  config: GateConfig,
  repo: PlannedRepo,
  updates: readonly RefUpdate[],
  hookEnv: Env,
): Promise<ClassifiedUpdate[]> {
  const classified = await classifyUpdates(updates, hookEnv);
  checkPolicy(repo, classified, await defaultBranch(repo, hookEnv));
  const env = { ...(await upstreamEnv(config, repo, hookEnv)), ...quarantine(hookEnv) };
  const leases = classified
    .filter((u) => u.kind === "force" || u.kind === "delete")
    .map((u) => `--force-with-lease=${u.ref}:${u.oldOid}`);
  const refspecs = classified.map((u) =>
    u.kind === "delete" ? `:${u.ref}` : `${u.newOid}:${u.ref}`,
  );
  const push = (atomic: boolean) =>
    git(
      [
        "push",
        "--porcelain",
        "--no-verify",
        ...(atomic ? ["--atomic"] : []),
        ...leases,
        // A URL, not a remote name: git updates no remote-tracking refs (forbidden in the
        // push quarantine anyway).
        repo.upstream,
        ...refspecs,
      ],
      { env, timeoutMs: config.timeouts.push * 1000, allowFailure: true },
    );
  return withMirrorLock(config, repo, async () => {
    let result = await push(true);
    if (result.code !== 0 && /does not support --atomic/.test(result.stderr))
      result = await push(false);
    if (result.code === 0 && !result.timedOut) return classified;
    const porcelain = result.stdout.toString("utf8");
    const rejected = porcelain
      .split("\n")
      .filter((line) => line.startsWith("!\t"))
      .map((line) => line.split("\t").slice(1).join(" "));
    if (rejected.length > 0) {
      throw new GitGateError(
        "BTL_GITGATE_UPSTREAM_REJECTED",
        `the upstream refused the push: ${oneLine(rejected.join("\n"))}${stderrReason(result.stderr)}`,
      );
    }
    throw new GitGateError(
      "BTL_GITGATE_UPSTREAM_UNREACHABLE",
      `cannot push ${repo.name} to its upstream${result.timedOut ? ` (timed out after ${config.timeouts.push} s)` : ""}: ${oneLine(result.stderr) || "no reason given"}`,
    );
  });
}

function stderrReason(stderr: string): string {
  const lines = stderr
    .split("\n")
    .filter((line) => /^(?:remote: |error: |hint: )/.test(line) && !/^hint: /.test(line));
  return lines.length > 0 ? ` (${oneLine(lines.join("\n"), 600)})` : "";
}

function quarantine(env: Env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of [
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_QUARANTINE_PATH",
  ]) {
    const value = env[name];
    if (value !== undefined) out[name] = value;
  }
  return out;
}
