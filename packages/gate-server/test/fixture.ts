import { mkdir } from "node:fs/promises";
import { request } from "node:http";
import { join } from "node:path";
import { createTokenStore, type Scope } from "@bottle/gate-tokens";
import {
  commitFiles,
  createBaseEnv,
  createGitEnv,
  createWorkRepo,
  type GitEnv,
  git,
  type StartedProcess,
  startProcess,
  testdir,
} from "@bottle/test-utils";

export const BIN = join(import.meta.dirname, "../dist/cli.js");

/** A gate over a base path holding `alpha.git`, `alpha/docs.git` and `beta.git`. */
export interface Gate {
  readonly proc: StartedProcess;
  readonly url: string;
  readonly base: string;
  readonly tokenFile: string;
  readonly gitEnv: GitEnv;
  /** A token for `project` with `scopes` (default read+write). */
  token(project: string, options?: { task?: string; scopes?: Scope[] }): Promise<string>;
  /** `http://<token>:x@host:port/<path>` (git sends the password, which the gate ignores). */
  repoUrl(token: string, path: string): string;
}

let taskCounter = 0;

/** Seeds repositories, writes a token file, and starts the real `bottle-gate` on port 0. */
export async function startGate(
  options: { args?: string[]; env?: Record<string, string> } = {},
): Promise<Gate> {
  const gitEnv = await createGitEnv();
  const base = await testdir();
  const state = await testdir();
  await mkdir(join(state, "tokens"), { mode: 0o700 });
  const tokenFile = join(state, "tokens", "tokens.json");
  const store = createTokenStore({ file: tokenFile });
  const seed = await createWorkRepo(gitEnv, { files: { "README.md": "# seed\n" } });
  await commitFiles(seed, gitEnv, { "src/a.txt": "a\n" }, "second");
  for (const path of ["alpha.git", "alpha/docs.git", "beta.git"]) {
    await mkdir(join(base, path), { recursive: true });
    await git(["init", "--bare", "-q", "-b", "main", join(base, path)], {
      cwd: base,
      env: gitEnv.env,
    });
    await git(["push", "-q", join(base, path), "main"], { cwd: seed, env: gitEnv.env });
  }
  // The first token exists before the gate starts, so the file is there from the start.
  const first = await store.create({ project: "alpha", task: "t0" });
  const proc = await startProcess(
    process.execPath,
    [BIN, "--base-path", base, "--token-file", tokenFile, "--port", "0", ...(options.args ?? [])],
    { env: createBaseEnv(options.env ?? {}) },
  );
  const url = proc.url ?? "";
  const tokens = new Map<string, string>([["alpha:read,write", first.token]]);
  return {
    proc,
    url,
    base,
    tokenFile,
    gitEnv,
    async token(project, opts = {}) {
      const scopes = opts.scopes ?? ["read", "write"];
      const key = `${project}:${scopes.join(",")}`;
      const known = tokens.get(key);
      if (known && opts.task === undefined) return known;
      const { token } = await store.create({
        project,
        task: opts.task ?? `t${++taskCounter}`,
        scopes,
      });
      if (opts.task === undefined) tokens.set(key, token);
      return token;
    },
    repoUrl: (token, path) => url.replace("http://", `http://${token}:x@`) + path,
  };
}

/** A raw HTTP/1.1 request with the target sent exactly as given (no normalisation). */
export function rawRequest(
  baseUrl: string,
  method: string,
  target: string,
  headers: Record<string, string> = {},
  body?: Buffer | string,
): Promise<{
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}> {
  const { hostname, port } = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: hostname, port, method, path: target, headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
          }),
        );
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

/** `Basic base64(token:x)`. */
export function basic(token: string): string {
  return `Basic ${Buffer.from(`${token}:x`).toString("base64")}`;
}

/** Writes `files` into a fresh clone of `url`, commits and returns the clone path. */
export async function cloneAndCommit(
  gate: Gate,
  url: string,
  files: Record<string, string>,
): Promise<string> {
  const dir = await testdir();
  await git(["clone", "-q", url, dir], { cwd: dir, env: gate.gitEnv.env });
  await commitFiles(dir, gate.gitEnv, files, "change");
  return dir;
}
