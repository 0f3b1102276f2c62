/** Helpers shared by the unit tests: a work repository with the gate's git environment. */
import { randomBytes } from "node:crypto";
import {
  commitFiles,
  createBareRepo,
  createGitEnv,
  createWorkRepo,
  type GitEnv,
  git,
} from "@bottle/test-utils";
import { gitEnv } from "../src/run.ts";

export const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
export const B64URL = `${ALNUM}-_`;

/** Random text from `alphabet`: test secrets are built at run time, never stored in the repo. */
export function random(alphabet: string, length: number): string {
  return Array.from(randomBytes(length), (byte) => alphabet[byte % alphabet.length]).join("");
}

/** A work repository: its directory, the test's git environment and the gate's. */
export interface Repo {
  readonly dir: string;
  readonly testEnv: GitEnv;
  readonly env: Record<string, string>;
}

/** A fresh work repository with one commit of `files` (default a README). */
export async function setup(files?: Record<string, string>): Promise<Repo> {
  const testEnv = await createGitEnv();
  const dir = await createWorkRepo(testEnv, files === undefined ? {} : { files });
  return { dir, testEnv, env: gitEnv(testEnv.env) };
}

/** {@link setup} with a bare `remote` as origin, main pushed to it. */
export async function setupWithRemote(): Promise<Repo & { readonly remote: string }> {
  const testEnv = await createGitEnv();
  const remote = await createBareRepo(testEnv);
  const dir = await createWorkRepo(testEnv, { remote });
  await git(["push", "-q", "origin", "main"], { cwd: dir, env: testEnv.env });
  return { dir, testEnv, env: gitEnv(testEnv.env), remote };
}

/** Runs git in the repository; resolves with its trimmed stdout. */
export async function run(repo: Repo, args: string[]): Promise<string> {
  return (await git(args, { cwd: repo.dir, env: repo.testEnv.env })).stdout.trim();
}

/** The gate's git options in the repository, as the scanner's functions take them. */
export function inRepo(repo: Repo): { env: Record<string, string>; cwd: string } {
  return { env: repo.env, cwd: repo.dir };
}

/** Commits `files` in the repository; resolves with the new commit's sha. */
export function commitIn(
  repo: Repo,
  files: Record<string, string>,
  message: string,
): Promise<string> {
  return commitFiles(repo.dir, repo.testEnv, files, message);
}
