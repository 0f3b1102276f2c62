/**
 * What git and the gate run: the access hook (refresh the mirror before the agent fetches) and
 * the pre-receive hook (scan what the push adds, then forward it upstream). Each writes its
 * reason for the git client on `out` (shown as `remote:` lines) and logs on the gate.
 */
import { resolve } from "node:path";
import { isBottleError } from "@bottle/errors";
import { type Logger, silentLogger } from "@bottle/log";
import { gitEnv } from "@bottle/secret-scan/git";
import { asGitGateError } from "./errors.ts";
import { refreshMirror } from "./mirror.ts";
import { findRepo, readGateConfig } from "./state.ts";

/** What a hook gets from its process. */
export interface HookContext {
  readonly stateDir: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
  /** Lines for the git client. */
  readonly out: (line: string) => void;
  readonly logger?: Logger;
}

const PREFIX = "bottle-git-gate:";

/** Refreshes the mirror named by `GIT_DIR` from its upstream; returns the exit code (0 or 1). */
export async function runAccessHook(ctx: HookContext): Promise<number> {
  const log = ctx.logger ?? silentLogger;
  try {
    const config = readGateConfig(ctx.stateDir);
    const repo = findRepo(config, resolve(ctx.cwd, ctx.env.GIT_DIR ?? "."));
    const started = Date.now();
    const { head } = await refreshMirror(config, repo, ctx.env);
    log.info({ repo: repo.name, head, ms: Date.now() - started }, "mirror refreshed");
    return 0;
  } catch (error) {
    return fail(ctx, log, error, "fetch refused");
  }
}

/** Scans and forwards a push (stdin: git's ref updates); returns the exit code (0 accepts). */
export async function runPreReceive(
  ctx: HookContext & { readonly stdin: string },
): Promise<number> {
  const log = ctx.logger ?? silentLogger;
  try {
    // Loaded here, not at the top: the access hook (every fetch) never needs the scanner.
    const [
      { formatFindings, newCommits, newTagObjects, parseRefUpdates, scanCommits },
      { checkRefs },
      { forwardPush },
    ] = await Promise.all([
      import("@bottle/secret-scan"),
      import("./refs.ts"),
      import("./forward.ts"),
    ]);
    const config = readGateConfig(ctx.stateDir);
    const repo = findRepo(config, resolve(ctx.cwd, ctx.env.GIT_DIR ?? "."));
    const updates = parseRefUpdates(ctx.stdin);
    checkRefs(updates);
    const env = gitEnv(ctx.env);
    const [commits, tags] = await Promise.all([
      newCommits({ env, cwd: ctx.cwd, updates }),
      newTagObjects({ env, cwd: ctx.cwd, updates }),
    ]);
    const scan = await scanCommits({
      env,
      cwd: ctx.cwd,
      commits,
      tags,
      refs: updates,
      since: "refs",
      scanner: config.scan.scanner,
      rules: config.scan.rules,
      allowlist: config.scan.allowlist,
      maxObjectBytes: config.scan.maxBlobBytes,
      timeoutMs: config.timeouts.scan * 1000,
    });
    const summary = {
      repo: repo.name,
      refs: updates.map((u) => scan.mask(u.ref)),
      commits: scan.commits,
      objects: scan.objects,
      bytes: scan.bytes,
      scanner: scan.scanner,
      scanMs: scan.durationMs,
      allowed: scan.allowed.map((f) => f.fingerprint),
    };
    if (scan.findings.length > 0) {
      for (const line of formatFindings(scan.findings)) ctx.out(line);
      log.warn(
        {
          ...summary,
          code: "BTL_GITGATE_SECRETS_FOUND",
          findings: scan.findings.map((f) => ({
            commit: f.commit,
            file: f.file,
            line: f.line,
            rule: f.rule,
            match: f.redacted,
            fingerprint: f.fingerprint,
          })),
        },
        "push rejected: secrets found",
      );
      return 1;
    }
    const forwarded = await forwardPush(config, repo, updates, env);
    ctx.out(
      `${PREFIX} scanned ${scan.commits} new commit(s), no secrets; forwarded ${forwarded.length} ref update(s) upstream`,
    );
    log.info({ ...summary, updates: forwarded.map((u) => `${u.kind} ${u.ref}`) }, "push forwarded");
    return 0;
  } catch (error) {
    return fail(ctx, log, error, "push rejected");
  }
}

function fail(ctx: HookContext, log: Logger, raw: unknown, what: string): number {
  const error = asGitGateError(raw);
  if (isBottleError(error)) {
    ctx.out(`${PREFIX} ${what}: ${error.message} [${error.code}]`);
    log.warn({ code: error.code, reason: error.message }, what);
  } else {
    ctx.out(`${PREFIX} ${what}: internal error [BTL_INTERNAL]`);
    log.error({ err: error }, what);
  }
  return 1;
}
