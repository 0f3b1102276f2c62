import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createBaseEnv } from "./env.ts";
import { runProcess } from "./process.ts";
import { testdir, writeFiles } from "./temp-dir.ts";

const GIT_TIMEOUT_MS = 30_000;
const GIT_MAX_OUTPUT_BYTES = 64 * 1024 * 1024;
const TEST_NAME = "Bottle Test";
const TEST_EMAIL = "test@bottle.invalid";

// SECURITY: the machine's /etc/gitconfig carries a credential helper. GIT_CONFIG_NOSYSTEM keeps
// it out; the empty `credential.helper` also resets any helper list a later layer might add.
const GLOBAL_CONFIG = `[init]
\tdefaultBranch = main
[user]
\tname = ${TEST_NAME}
\temail = ${TEST_EMAIL}
[commit]
\tgpgsign = false
[tag]
\tgpgsign = false
[maintenance]
\tauto = false
[gc]
\tauto = 0
[core]
\tautocrlf = false
[protocol "file"]
\tallow = always
[advice]
\tdetachedHead = false
[credential]
\thelper =
`;

/** An isolated git environment: a temp `HOME` with its own global config, and the child env. */
export interface GitEnv {
  home: string;
  env: NodeJS.ProcessEnv;
}

/** Options of {@link git}. */
export interface GitOptions {
  cwd: string;
  env: NodeJS.ProcessEnv;
  input?: string | Buffer;
  /** Resolve with the exit code instead of rejecting when git exits non-zero. */
  allowFailure?: boolean;
}

/** What a finished git command wrote, and its exit code. */
export interface GitResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** Options of {@link createWorkRepo}. */
export interface WorkRepoOptions {
  /** Files of the first commit (default a `README.md`). */
  files?: Record<string, string>;
  message?: string;
  /** Added as `origin` when given (a path or URL). */
  remote?: string;
}

/**
 * Creates an isolated git environment in `home` (default a new {@link testdir}): a global
 * config with a fixed identity, branch `main`, no signing, no maintenance, and no system config.
 */
export async function createGitEnv(home?: string): Promise<GitEnv> {
  const dir = home ?? (await testdir());
  const globalConfig = join(dir, ".gitconfig");
  await writeFile(globalConfig, GLOBAL_CONFIG);
  // SECURITY: built from an allowlist; GIT_AUTHOR_DATE and GIT_COMMITTER_DATE stay unset.
  const env = createBaseEnv({
    HOME: dir,
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_ATTR_NOSYSTEM: "1",
    GIT_CONFIG_GLOBAL: globalConfig,
    GIT_TERMINAL_PROMPT: "0",
    GIT_AUTHOR_NAME: TEST_NAME,
    GIT_AUTHOR_EMAIL: TEST_EMAIL,
    GIT_COMMITTER_NAME: TEST_NAME,
    GIT_COMMITTER_EMAIL: TEST_EMAIL,
  });
  return Object.freeze({ home: dir, env: Object.freeze(env) });
}

/**
 * Runs the real `git` with `args` (no shell, 30 s timeout, 64 MiB output cap). Rejects with the
 * args, exit code and stderr on a non-zero exit unless `allowFailure`; always on a signal.
 */
export async function git(args: readonly string[], options: GitOptions): Promise<GitResult> {
  const result = await runProcess("git", args, {
    cwd: options.cwd,
    env: options.env,
    timeoutMs: GIT_TIMEOUT_MS,
    maxOutputBytes: GIT_MAX_OUTPUT_BYTES,
    ...(options.input === undefined ? {} : { input: options.input }),
  });
  const { code, signal, stdout, stderr } = result;
  if (code === null || (code !== 0 && options.allowFailure !== true)) {
    const how = code === null ? `was killed by ${signal}` : `exited with code ${code}`;
    throw new Error(`git ${JSON.stringify(args)} ${how}: ${stderr.trim()}`);
  }
  return { stdout, stderr, code };
}

/** Creates a bare repository (`git init --bare -b main`) named `name` in a new testdir. */
export async function createBareRepo(gitEnv: GitEnv, name = "remote.git"): Promise<string> {
  const dir = await testdir();
  const repo = join(dir, name);
  await git(["init", "--quiet", "--bare", "-b", "main", repo], { cwd: dir, env: gitEnv.env });
  return repo;
}

/**
 * Commits `files` (written relative to `repo`, then `git add -A`) with `message` and returns
 * the new commit's sha. Rejects when there is nothing to commit.
 */
export async function commitFiles(
  repo: string,
  gitEnv: GitEnv,
  files: Record<string, string>,
  message: string,
): Promise<string> {
  const options = { cwd: repo, env: gitEnv.env };
  await writeFiles(repo, files);
  await git(["add", "-A"], options);
  await git(["commit", "--quiet", "-m", message], options);
  return (await git(["rev-parse", "HEAD"], options)).stdout.trim();
}

/**
 * Creates a work repository (`git init -b main`) in a new testdir with one commit of `files`,
 * and `origin` set to `remote` when given. Returns its path.
 */
export async function createWorkRepo(
  gitEnv: GitEnv,
  options: WorkRepoOptions = {},
): Promise<string> {
  const repo = await testdir();
  await git(["init", "--quiet", "-b", "main"], { cwd: repo, env: gitEnv.env });
  const files = options.files ?? { "README.md": "# test repository\n" };
  await commitFiles(repo, gitEnv, files, options.message ?? "initial commit");
  if (options.remote !== undefined) {
    await git(["remote", "add", "origin", options.remote], { cwd: repo, env: gitEnv.env });
  }
  return repo;
}
