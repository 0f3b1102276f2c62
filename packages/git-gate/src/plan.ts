/**
 * The git gate's plan: from a validated manifest to the files and directories of a stage
 * directory. Pure (reads nothing, writes nothing) and free of secret values, so `plan --json`
 * shows exactly what `init` will write.
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Manifest, RepoSpec } from "@bottle/manifest";
import { checkHttpUrl, type GitUrl, parseGitUrl } from "@bottle/manifest/policy";
import { GitGateError } from "./errors.ts";
import type {
  GateConfig,
  PlannedCredential,
  PlannedRepo,
  PlannedScan,
  PlannedTimeouts,
} from "./gate-config.ts";
import { assertRenderable, knownHostsLine, renderConfigSection, shellQuote } from "./render.ts";

/** A file of the plan: mode 0600, or 0700 for the hook. */
export interface PlannedFile {
  readonly path: string;
  readonly mode: number;
  readonly content: string;
}

/** The whole plan. */
export interface GitGatePlan extends GateConfig {
  readonly stageDir: string;
  readonly hooksDir: string;
  /** The gitconfig for the agent: insteadOf rules and the commit identity. */
  readonly agentGitconfig: string;
  /** The access-hook command for gate-server, as an argument array (no shell). */
  readonly accessHook: readonly string[];
  /** Directories (mode 0700) in creation order, then files. */
  readonly dirs: readonly string[];
  readonly files: readonly PlannedFile[];
}

/** Options of {@link prepareGitGate}. */
export interface PrepareOptions {
  /** The gate as the agent reaches it (default `http://127.0.0.1:9419`). */
  readonly gateUrl?: string;
  /** How the hooks run `bottle-git-gate` (default this Node and this package's `dist/cli.js`). */
  readonly command?: readonly string[];
  readonly timeouts?: Partial<PlannedTimeouts>;
}

const DEFAULT_TIMEOUTS: PlannedTimeouts = {
  connect: 10,
  fetch: 120,
  push: 300,
  scan: 60,
  lock: 300,
};

/**
 * Plans the git gate of `bottle` in `stageDir`. Throws `GitGateError` BTL_GITGATE_CONFIG (no
 * repositories, bad gate URL), BTL_GITGATE_NO_HOST_KEY or BTL_GITGATE_UNSAFE_VALUE.
 */
export function prepareGitGate(
  bottle: Manifest,
  stageDir: string,
  options: PrepareOptions = {},
): GitGatePlan {
  const gate = bottle.git_gate;
  if (gate === undefined || Object.keys(gate.repos).length === 0) {
    throw new GitGateError("BTL_GITGATE_CONFIG", "The manifest declares no git_gate.repos");
  }
  const gateUrl = (options.gateUrl ?? "http://127.0.0.1:9419").replace(/\/$/, "");
  // The agent reaches the gate by plain http on its own network (a container alias, say).
  const problem = checkHttpUrl(gateUrl, { plainHttp: "anywhere" });
  if (problem) throw new GitGateError("BTL_GITGATE_CONFIG", `Expected the gate URL ${problem}`);
  assertRenderable(stageDir, "the stage directory");
  const stateDir = join(stageDir, "git-gate");
  const basePath = join(stageDir, "repos");
  const hooksDir = join(stateDir, "hooks");
  const project = bottle.name;

  const repos = Object.entries(gate.repos).map(([name, spec]): PlannedRepo => {
    const url = parseGitUrl(spec.url);
    if (typeof url === "string") {
      throw new GitGateError("BTL_GITGATE_CONFIG", `Expected repository ${name}'s url ${url}`);
    }
    let knownHosts: PlannedRepo["knownHosts"];
    if (url.transport === "ssh") {
      if (spec.host_key === undefined) {
        throw new GitGateError(
          "BTL_GITGATE_NO_HOST_KEY",
          `Repository ${name} uses SSH but pins no host_key: the gate refuses to connect unpinned`,
        );
      }
      knownHosts = {
        file: join(stateDir, "known_hosts", name),
        lines: [knownHostsLine(url.host, url.port, spec.host_key)],
      };
    }
    return {
      name,
      mirror: join(basePath, project, `${name}.git`),
      upstream: assertRenderable(spec.url, `repository ${name}'s url`),
      transport: url.transport,
      host: url.host,
      credential: planCredential(name, spec.key, url, stateDir),
      ...(knownHosts ? { knownHosts } : {}),
      push: { force_push: spec.push.force_push, deletes: spec.push.deletes },
      gateUrl: `${gateUrl}/${project}/${name}.git`,
      insteadOf: upstreamSpellings(url),
    };
  });

  const scan: PlannedScan = {
    scanner: gate.scan.scanner,
    rules: gate.scan.rules.map((rule) => ({
      id: rule.id,
      regex: rule.regex,
      ...(rule.description === undefined ? {} : { description: rule.description }),
      ...(rule.keywords === undefined ? {} : { keywords: rule.keywords }),
    })),
    allowlist: gate.scan.allowlist.map((entry) => entry.fingerprint),
    maxBlobBytes: gate.scan.max_blob_bytes,
  };
  const timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
  const config: GateConfig = { version: 1, project, basePath, stateDir, repos, scan, timeouts };
  const command = options.command ?? [
    process.execPath,
    fileURLToPath(new URL("../dist/cli.js", import.meta.url)),
  ];
  // The hooks run this package's CLI: the pre-receive hook as a shell script, the access hook
  // as an argument array (gate-server spawns it without a shell).
  const invoke = (sub: string) => Object.freeze([...command, sub, "--state", stateDir]);
  const preReceive = invoke("pre-receive").map((word) => shellQuote(word, "a hook command word"));
  const hook = `#!/bin/sh\n# generated by bottle-git-gate for ${project}, do not edit\nexec ${preReceive.join(" ")}\n`;
  const agentGitconfig = renderAgentGitconfig(project, repos, gate.user);

  const files: PlannedFile[] = [
    {
      path: join(stateDir, "gate.json"),
      mode: 0o600,
      content: `${JSON.stringify(config, null, 2)}\n`,
    },
    { path: join(hooksDir, "pre-receive"), mode: 0o700, content: hook },
    { path: join(stageDir, "agent", "gitconfig"), mode: 0o600, content: agentGitconfig },
  ];
  for (const repo of repos) {
    if (repo.knownHosts) {
      files.push({
        path: repo.knownHosts.file,
        mode: 0o600,
        content: `${repo.knownHosts.lines.join("\n")}\n`,
      });
    }
  }
  const dirs = [
    stageDir,
    stateDir,
    hooksDir,
    join(stateDir, "known_hosts"),
    join(stateDir, "secrets"),
    join(stateDir, "keys"),
    join(stateDir, "locks"),
    join(stateDir, "home"),
    join(stageDir, "agent"),
    basePath,
    join(basePath, project),
  ];
  return Object.freeze({
    ...config,
    stageDir,
    hooksDir,
    agentGitconfig,
    accessHook: invoke("access-hook"),
    dirs,
    files,
  });
}

function planCredential(
  name: string,
  key: RepoSpec["key"],
  url: GitUrl,
  stateDir: string,
): PlannedCredential {
  switch (key.provider) {
    case "static":
      return {
        kind: "ssh-key",
        identity: assertRenderable(key.identity, "the identity path"),
        source: "static",
      };
    case "gitea": {
      const [owner, repoName] = ownerAndName(name, url, "Gitea");
      return {
        kind: "ssh-key",
        identity: join(stateDir, "keys", name),
        source: "gitea-deploy-key",
        api: key.api.replace(/\/$/, ""),
        owner,
        name: repoName,
        tokenEnv: key.token_ref,
      };
    }
    case "token":
      return {
        kind: "token",
        tokenFile: join(stateDir, "secrets", `${name}.token`),
        username: assertRenderable(key.username, "the token user name"),
        source: "env",
        tokenEnv: key.token_ref,
      };
    case "github-app":
      return {
        kind: "token",
        tokenFile: join(stateDir, "secrets", `${name}.token`),
        username: "x-access-token",
        source: "github-app",
        app: key.app,
        repository: ownerAndName(name, url, "GitHub").join("/"),
      };
  }
}

/** `owner` and `name` of a forge repository's url (`…/<owner>/<name>.git`). */
function ownerAndName(name: string, url: GitUrl, forge: string): [string, string] {
  const segments = url.path
    .replace(/^\//, "")
    .replace(/\.git$/, "")
    .split("/");
  const [owner, repoName] = segments;
  if (segments.length !== 2 || !owner || !repoName) {
    throw new GitGateError(
      "BTL_GITGATE_CONFIG",
      `Expected repository ${name}'s ${forge} url to end in /<owner>/<repo>.git`,
    );
  }
  return [owner, repoName];
}

/**
 * Every spelling under which an agent may name the upstream: ssh:// (with and without the user
 * and default port), scp-style `user@host:path`, and https://, each with and without `.git`.
 * git's `insteadOf` matches prefixes and the longest wins, so both suffix forms are listed.
 */
export function upstreamSpellings(url: GitUrl): string[] {
  const base = url.path.replace(/\.git$/, "").replace(/\/$/, "");
  const rel = base.replace(/^\/+/, "");
  const paths = [`/${rel}`, `/${rel}.git`];
  const host = url.host;
  const user = url.user ?? "git";
  const out = new Set<string>();
  const sshPorts =
    url.transport === "ssh" && url.port !== undefined && url.port !== 22
      ? [`:${url.port}`]
      : ["", ":22"];
  for (const path of paths) {
    for (const scheme of ["ssh://", "git+ssh://", "ssh+git://"]) {
      for (const port of sshPorts) {
        out.add(`${scheme}${user}@${host}${port}${path}`);
        out.add(`${scheme}${host}${port}${path}`);
      }
    }
    if (sshPorts[0] === "") {
      out.add(`${user}@${host}:${path.slice(1)}`);
      out.add(`${user}@${host}:${path}`);
    }
    const webPort = url.transport !== "ssh" && url.port !== undefined ? `:${url.port}` : "";
    out.add(`https://${host}${url.transport === "https" ? webPort : ""}${path}`);
    if (url.transport === "http") out.add(`http://${host}${webPort}${path}`);
  }
  return [...out].map((s) => assertRenderable(s, "an upstream spelling")).sort();
}

function renderAgentGitconfig(
  project: string,
  repos: readonly PlannedRepo[],
  user: { readonly name: string; readonly email: string },
): string {
  const sections = [
    `# generated by bottle-git-gate for ${project}, do not edit`,
    renderConfigSection("user", undefined, [
      ["name", user.name],
      ["email", user.email],
    ]),
    ...repos.map((repo) =>
      renderConfigSection(
        "url",
        repo.gateUrl,
        repo.insteadOf.map((spelling) => ["insteadOf", spelling] as const),
      ),
    ),
  ];
  return `${sections.join("\n")}\n`;
}
