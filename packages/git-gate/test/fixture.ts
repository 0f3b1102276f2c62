/**
 * A whole gate for end-to-end tests: an upstream (real git over a local SSH server or an HTTP
 * server that demands a credential), a manifest, and `bottle-git-gate entrypoint` running the
 * real gate server with the access hook and the pre-receive hook.
 */
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createTokenStore } from "@bottle/gate-tokens";
import {
  commitFiles,
  createBaseEnv,
  createGitEnv,
  createWorkRepo,
  FIXTURE_APP_ID,
  type GitEnv,
  type GitHubFake,
  generateSshKey,
  git,
  type StartedProcess,
  startGiteaFake,
  startHttpGitUpstream,
  startProcess,
  startSshGitServer,
  startTokmanWithGitHubFake,
  testdir,
} from "@bottle/test-utils";
import { createTokman, parseConfig } from "@bottle/tokman";

export const BIN = join(import.meta.dirname, "../dist/cli.js");
export const PROJECT = "acme";

export interface BottleGateOptions {
  /** ssh: a static key; gitea: a deploy key registered on a Gitea fake; https: a token. */
  readonly transport?: "ssh" | "https" | "gitea" | "github-app";
  /** Options of `entrypoint` before `--` (e.g. `--yes`). */
  readonly initArgs?: readonly string[];
  /** Extra YAML under the repository (indented 6 spaces), e.g. a push policy. */
  readonly repoYaml?: string;
  /** Extra YAML under git_gate.scan (indented 4 spaces). */
  readonly scanYaml?: string;
  /** Files of the upstream's first commit. */
  readonly seed?: Record<string, string>;
  /** Environment of the gate (e.g. the HTTPS upstream token). */
  readonly env?: Record<string, string>;
}

export interface BottleGate {
  readonly gate: StartedProcess;
  readonly url: string;
  readonly stage: string;
  readonly stateDir: string;
  readonly mirror: string;
  /** The upstream's bare repository on disk. */
  readonly upstream: string;
  readonly gitEnv: GitEnv;
  readonly token: string;
  /** The clone URL the agent uses (`http://<token>:x@gate/acme/api.git`). */
  readonly agentUrl: string;
  readonly ssh?: Awaited<ReturnType<typeof startSshGitServer>>;
  readonly http?: Awaited<ReturnType<typeof startHttpGitUpstream>>;
  readonly gitea?: Awaited<ReturnType<typeof startGiteaFake>>;
  readonly github?: GitHubFake;
  readonly manifest: string;
  /** The gate's environment. */
  readonly env: Record<string, string>;
  /** Every output of the processes so far (for canary scans). */
  outputs(): string[];
  /** A fresh clone through the gate. */
  clone(): Promise<string>;
  /** A ref's commit in the upstream (undefined when absent). */
  upstreamRef(ref: string): Promise<string | undefined>;
  mirrorRef(ref: string): Promise<string | undefined>;
  /** Commits `files` directly in the upstream, as another developer would; returns the commit. */
  upstreamCommit(files: Record<string, string>, message?: string, branch?: string): Promise<string>;
}

/** Starts an upstream, writes a manifest, and runs `bottle-git-gate entrypoint` on port 0. */
export async function startBottleGate(options: BottleGateOptions = {}): Promise<BottleGate> {
  const transport = options.transport ?? "ssh";
  const gitEnv = await createGitEnv();
  const root = await testdir();
  const upstream = join(root, "acme", "api.git");
  await mkdir(upstream, { recursive: true });
  await git(["init", "--bare", "-q", "-b", "main", upstream], { cwd: root, env: gitEnv.env });
  const seed = await createWorkRepo(gitEnv, {
    files: options.seed ?? { "README.md": "# api\n", "src/app.js": "export const x = 1;\n" },
  });
  await git(["push", "-q", upstream, "main"], { cwd: seed, env: gitEnv.env });

  const config = await testdir();
  const stage = join(await testdir(), "stage");
  await mkdir(join(config, "tokens"), { mode: 0o700 });
  const tokenFile = join(config, "tokens", "tokens.json");
  const { token } = await createTokenStore({ file: tokenFile }).create({
    project: PROJECT,
    task: "t1",
  });

  let ssh: BottleGate["ssh"];
  let http: BottleGate["http"];
  let gitea: BottleGate["gitea"];
  let github: GitHubFake | undefined;
  let topYaml: string[] = [];
  let repoYaml: string;
  const env: Record<string, string> = { ...options.env };
  if (transport === "ssh") {
    const key = await generateSshKey(config);
    ssh = await startSshGitServer({ root, authorizedKeys: [key.publicKeyLine] });
    repoYaml = [
      `      url: ${ssh.url(upstream)}`,
      `      host_key: ${ssh.hostKeyLine}`,
      `      key: { provider: static, identity: ${key.privateKeyPath} }`,
    ].join("\n");
  } else if (transport === "github-app") {
    const app = await startGitHubApp();
    github = app.github;
    const fake = app.github;
    // The upstream accepts exactly the live installation tokens GitHub issued for acme/api.
    http = await startHttpGitUpstream({
      root,
      username: "x-access-token",
      password: "unused",
      authorize: (user, password, path) =>
        user === "x-access-token" &&
        path.startsWith("/acme/api.git/") &&
        fake
          .tokens()
          .some(
            (t) =>
              t.token === password &&
              t.revokedAt === null &&
              Date.parse(t.expiresAt) > Date.now() &&
              (t.repositories === "all" || t.repositories.some((r) => r.name === "api")),
          ),
    });
    env.BOTTLE_TOKMAN_URL = app.tokmanUrl;
    env.BOTTLE_TOKMAN_KEY = app.callerKey;
    repoYaml = [
      `      url: ${http.url("acme/api.git")}`,
      "      key: { provider: github-app, app: acme }",
    ].join("\n");
    topYaml = [
      "github_apps:",
      `  acme: { app_id: ${FIXTURE_APP_ID}, private_key: ${app.keyFile}, api: "${fake.url}" }`,
    ];
  } else if (transport === "gitea") {
    ssh = await startSshGitServer({ root, authorizedKeys: [] });
    const server = ssh;
    env.GITEA_ADMIN = env.GITEA_ADMIN ?? "gitea-admin-token-0123456789";
    // As on a real forge, a deploy key opens SSH access the moment it is added.
    gitea = await startGiteaFake({
      token: env.GITEA_ADMIN,
      onEvent: (event) =>
        event.type === "key-added" ? server.authorize(event.key) : server.revoke(event.key),
    });
    gitea.addRepo("acme", "api");
    repoYaml = [
      `      url: ssh://git@127.0.0.1:${ssh.port}/acme/api.git`,
      `      host_key: ${ssh.hostKeyLine}`,
      `      key: { provider: gitea, api: ${gitea.url}, token_ref: GITEA_ADMIN }`,
    ].join("\n");
  } else {
    const secret = env.UPSTREAM_TOKEN ?? "upstream-token-0123456789";
    env.UPSTREAM_TOKEN = secret;
    http = await startHttpGitUpstream({ root, username: "x-access-token", password: secret });
    repoYaml = [
      `      url: ${http.url("acme/api.git")}`,
      "      key: { provider: token, token_ref: UPSTREAM_TOKEN }",
    ].join("\n");
  }
  const manifest = join(config, "bottle.yaml");
  await writeFile(
    manifest,
    [
      "version: 1",
      `name: ${PROJECT}`,
      "agent: { command: [agent] }",
      "git_gate:",
      "  repos:",
      "    api:",
      repoYaml,
      ...(options.repoYaml ? [options.repoYaml] : []),
      "  scan:",
      "    scanner: builtin",
      ...(options.scanYaml ? [options.scanYaml] : []),
      ...topYaml,
      "",
    ].join("\n"),
  );
  await chmod(manifest, 0o600);

  const gate = await startProcess(
    process.execPath,
    [
      BIN,
      "entrypoint",
      "--manifest",
      manifest,
      "--stage",
      stage,
      ...(options.initArgs ?? []),
      "--",
      "--token-file",
      tokenFile,
      "--port",
      "0",
    ],
    { env: createBaseEnv(env), readyTimeoutMs: 30_000 },
  );
  const url = gate.url as string;
  const host = new URL(url).host;
  const stateDir = join(stage, "git-gate");
  const mirror = join(stage, "repos", PROJECT, "api.git");
  const agentUrl = `http://${token}:x@${host}/${PROJECT}/api.git`;
  const refOf = async (dir: string, ref: string) => {
    const result = await git(["rev-parse", "--verify", "--quiet", ref], {
      cwd: dir,
      env: gitEnv.env,
      allowFailure: true,
    });
    return result.code === 0 ? result.stdout.trim() : undefined;
  };
  let upstreamWork: string | undefined;
  return {
    gate,
    url,
    stage,
    stateDir,
    mirror,
    upstream,
    gitEnv,
    token,
    agentUrl,
    ...(ssh ? { ssh } : {}),
    ...(http ? { http } : {}),
    ...(gitea ? { gitea } : {}),
    ...(github ? { github } : {}),
    manifest,
    env,
    outputs: () => [gate.stdout(), gate.stderr()],
    async clone() {
      const dir = join(await testdir(), "work");
      await git(["clone", "-q", agentUrl, dir], { cwd: join(dir, ".."), env: gitEnv.env });
      return dir;
    },
    upstreamRef: (ref) => refOf(upstream, ref),
    mirrorRef: (ref) => refOf(mirror, ref),
    async upstreamCommit(files, message = "upstream change", branch = "main") {
      if (upstreamWork === undefined) {
        upstreamWork = join(await testdir(), "dev");
        await git(["clone", "-q", upstream, upstreamWork], { cwd: root, env: gitEnv.env });
      }
      await git(["fetch", "-q", "origin"], { cwd: upstreamWork, env: gitEnv.env });
      await git(["checkout", "-q", "-B", branch, `origin/${branch}`], {
        cwd: upstreamWork,
        env: gitEnv.env,
      });
      await commitFiles(upstreamWork, gitEnv, files, message);
      await git(["push", "-q", "origin", branch], { cwd: upstreamWork, env: gitEnv.env });
      return (
        await git(["rev-parse", "HEAD"], { cwd: upstreamWork, env: gitEnv.env })
      ).stdout.trim();
    },
  };
}

/** Reads the gate's hook log (`<state>/gate.log`). */
export async function hookLog(stateDir: string): Promise<string> {
  return readFile(join(stateDir, "gate.log"), "utf8").catch(() => "");
}

/** Test secrets, assembled at run time so no file of this repository holds one. */
export const fakeSecrets = {
  github: () => `ghp_${"R8k2".repeat(9)}`,
  anthropic: () => `sk-ant-api03-${"Xq7_Lm2-Pz9".repeat(8)}AA`,
};

/** A fake GitHub with app 42 installed on acme, and tokman brokering its tokens. */
async function startGitHubApp() {
  const app = await startTokmanWithGitHubFake(
    { createTokman, parseConfig },
    {
      realTime: true,
      callers: {
        "git-gate": {
          repositories: ["acme/*"],
          permissions: { contents: "write", metadata: "read" },
        },
      },
    },
  );
  return { github: app.fake, tokmanUrl: app.url, callerKey: app.key, keyFile: app.keyFile };
}
