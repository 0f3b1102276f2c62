/**
 * The access hook: an operator command run before upload-pack (fetch, clone), e.g. git-gate's
 * "refresh the mirror from upstream". Run without a shell, with an allowlisted environment,
 * a timeout and an output cap; concurrent requests for one repository share one run.
 */
import { spawn } from "node:child_process";

/** The result of one hook run. */
export type HookResult = { ok: true } | { ok: false; reason: string };

/** Options of `createAccessHook`. */
export interface AccessHookOptions {
  /** The command as an argument array, run without a shell. */
  readonly argv: readonly string[];
  /** Base environment of the hook (PATH, HOME, …); the repository variables are added. */
  readonly env: Readonly<Record<string, string>>;
  /** Longest a run may take before it is killed and the request refused (default 120 s). */
  readonly timeoutMs?: number;
}

const MAX_REASON = 4096;

/**
 * Returns `run(repoDir, project, repoName)`. A request arriving while a run for the same
 * repository is in flight waits for that run and gets its result.
 */
export function createAccessHook(options: AccessHookOptions) {
  const inFlight = new Map<string, Promise<HookResult>>();
  const [command, ...args] = options.argv;
  if (command === undefined) throw new TypeError("the access hook needs a command");
  const timeoutMs = options.timeoutMs ?? 120_000;

  function start(repoDir: string, project: string, repo: string): Promise<HookResult> {
    return new Promise((resolve) => {
      const child = spawn(command as string, args, {
        env: {
          ...options.env,
          GIT_DIR: repoDir,
          BOTTLE_GATE_REPO: repoDir,
          BOTTLE_GATE_PROJECT: project,
          BOTTLE_GATE_REPO_NAME: repo,
        },
        stdio: ["ignore", "pipe", "pipe"],
        detached: true,
      });
      let output = "";
      const collect = (chunk: Buffer) => {
        if (output.length < MAX_REASON) output += chunk.toString("utf8");
      };
      child.stdout.on("data", collect);
      child.stderr.on("data", collect);
      const timer = setTimeout(() => {
        output = `access hook timed out after ${Math.round(timeoutMs / 1000)} s\n${output}`;
        if (child.pid !== undefined) {
          try {
            process.kill(-child.pid, "SIGKILL");
          } catch {}
        }
      }, timeoutMs);
      child.on("error", (error) => {
        clearTimeout(timer);
        resolve({ ok: false, reason: `access hook could not start: ${error.message}` });
      });
      child.on("close", (code) => {
        clearTimeout(timer);
        resolve(
          code === 0
            ? { ok: true }
            : { ok: false, reason: cleanReason(output) || `access hook failed (exit ${code})` },
        );
      });
    });
  }

  return function run(repoDir: string, project: string, repo: string): Promise<HookResult> {
    let pending = inFlight.get(repoDir);
    if (pending === undefined) {
      pending = start(repoDir, project, repo).finally(() => inFlight.delete(repoDir));
      inFlight.set(repoDir, pending);
    }
    return pending;
  };
}

/** Printable lines only, capped: the reason is shown to the git client. */
function cleanReason(text: string): string {
  return text
    .slice(0, MAX_REASON)
    .replace(/\r\n?/g, "\n")
    .replace(/[^\n\x20-\x7e\u00a0-\uffff]/g, "")
    .trim();
}
