/**
 * The agent's side of a bottle: the environment and the files of its home directory that send
 * git to the gate and every API client to the proxy, from the sidecars' own plans. Pure. The
 * task's gate token is the only secret it handles, and it goes into the gitconfig's gate URLs
 * only: never into the environment, and no credential helper is configured.
 */
import type { CredProxyPlan, RouteEntry } from "@bottle/cred-proxy";
import type { GitGatePlan } from "@bottle/git-gate/stage";
import { checkHttpUrl, isCredentialValue, type Manifest } from "@bottle/manifest";
import { CliError } from "./errors.ts";

/** What a client that insists on a key gets: clearly not a key (the proxy injects the real one). */
export const PLACEHOLDER_KEY = "bottle-placeholder";

/**
 * Switches of known agents and tools that keep them from calling home. Claude Code: its
 * nonessential traffic (auto-update, telemetry, error reports, feedback; without it Claude Code
 * connects to api.anthropic.com even with ANTHROPIC_BASE_URL set) and, in a terminal, the
 * official plugin marketplace's installation (github.com, downloads.claude.ai). Then the
 * cross-tool DO_NOT_TRACK and npm's update check.
 */
export const QUIET_SWITCHES: Readonly<Record<string, string>> = Object.freeze({
  CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
  CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL: "1",
  DISABLE_AUTOUPDATER: "1",
  DISABLE_TELEMETRY: "1",
  DISABLE_ERROR_REPORTING: "1",
  DO_NOT_TRACK: "1",
  npm_config_update_notifier: "false",
});

/**
 * Claude Code's state file for a fresh home: onboarding done (its first screen checks that
 * api.anthropic.com is reachable, which no bottle allows) and the placeholder key approved (it
 * asks once for a key from the environment, remembering the key's last 20 characters). The
 * workspace's trust prompt is left to the user.
 */
const CLAUDE_STATE = `${JSON.stringify(
  {
    hasCompletedOnboarding: true,
    customApiKeyResponses: { approved: [PLACEHOLDER_KEY.slice(-20)], rejected: [] },
  },
  null,
  2,
)}\n`;

/** What {@link renderAgentSide} renders from. */
export interface AgentSideInput {
  /** The validated manifest. */
  readonly manifest: Manifest;
  /** The git gate's plan (`prepareGitGate`); null when the manifest declares no repositories. */
  readonly gitGate: GitGatePlan | null;
  /** The proxy's plan (`prepareCredProxy`); null when the bottle runs no proxy. */
  readonly credProxy: CredProxyPlan | null;
  /** The task's gate token: a secret, written into the gitconfig's gate URLs only. */
  readonly gateToken?: string | null;
  /** The gate as the agent reaches it: the URL the git-gate plan was made with. */
  readonly gateUrl?: string;
  /** The proxy as the agent reaches it (`http://127.0.0.1:9420`). */
  readonly proxyUrl: string;
}

/** The agent's environment and the files of its home directory (paths relative to `$HOME`). */
export interface AgentSide {
  readonly env: Readonly<Record<string, string>>;
  readonly homeFiles: Readonly<Record<string, string>>;
}

/** The commit identity when the manifest has no git_gate (the schema's default for it). */
const DEFAULT_USER = { name: "bottle agent", email: "agent@bottle.invalid" };
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

const invalid = (message: string) => new CliError("BTL_CLI_AGENT_CONFIG", message);

/** A base URL without its trailing slash, checked (http allowed: the agent's own network). */
function baseUrl(value: string, what: string): string {
  const problem = checkHttpUrl(value, { plainHttp: "anywhere" });
  if (problem !== undefined) throw invalid(`Expected ${what} ${problem}`);
  return value.replace(/\/+$/, "");
}

/** A gitconfig value or subsection in double quotes (git-config(1), "Syntax"); controls refused. */
function quote(value: string, what: string): string {
  if (value === "" || CONTROL.test(value))
    throw invalid(`Expected ${what} to be non-empty without control characters`);
  return `"${value.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
}

function section(name: string, subsection: string | undefined, entries: [string, string][]) {
  const head = subsection === undefined ? `[${name}]` : `[${name} ${quote(subsection, name)}]`;
  return [head, ...entries.map(([key, value]) => `\t${key} = ${quote(value, key)}`)].join("\n");
}

/**
 * The gate URL of one repository with the task token as user name (gate-server reads the token
 * from Basic auth's user name and ignores the password; `x` keeps git from asking for one).
 */
function withToken(gateUrl: string, token: string): string {
  const url = new URL(gateUrl);
  url.username = token;
  url.password = "x";
  return url.href;
}

/**
 * How the agent may spell a git-insteadof route's upstream: the URL itself, and for a forge at
 * the root of its host on the default port, its SSH spellings too (same paths on GitHub and
 * Gitea), so `git@github.com:o/r.git` goes to the proxy rather than to a network it lacks.
 */
function routeSpellings(upstream: string): string[] {
  const url = new URL(upstream);
  const spellings = [`${upstream}/`];
  if (url.pathname === "/" && url.port === "" && url.protocol === "https:")
    spellings.push(`git@${url.hostname}:`, `ssh://git@${url.hostname}/`);
  return spellings;
}

/** The one route with `role`, if any (anthropic-base-url and npm-registry are exclusive). */
function routeWith(plan: CredProxyPlan | null, role: keyof CredProxyPlan["roles"]) {
  const path = plan?.roles[role][0];
  return path === undefined ? undefined : plan?.routesFile.routes.find((r) => r.path === path);
}

function renderGitconfig(input: AgentSideInput, proxy: string): string {
  const { gitGate } = input;
  const project = input.manifest.name;
  const user = input.manifest.git_gate?.user ?? DEFAULT_USER;
  const sections = [
    `# generated by bottle for ${project}, do not edit`,
    section("user", undefined, [
      ["name", user.name],
      ["email", user.email],
    ]),
  ];
  const claimed = new Map<string, string>();
  const claim = (spelling: string, by: string) => {
    const other = claimed.get(spelling);
    if (other !== undefined && other !== by)
      throw invalid(`Expected one rewrite of ${spelling}, got two (${other} and ${by})`);
    claimed.set(spelling, by);
  };
  if (gitGate !== null) {
    const token = input.gateToken;
    // SECURITY: the token is checked, never echoed.
    if (typeof token !== "string" || !isCredentialValue(token))
      throw invalid("Expected the task's gate token: printable ASCII without spaces");
    if (input.gateUrl === undefined) throw invalid("Expected the gate's URL with its plan");
    const gate = baseUrl(input.gateUrl, "the gate's URL");
    for (const repo of gitGate.repos) {
      if (!repo.gateUrl.startsWith(`${gate}/`))
        throw invalid(`Expected the git-gate plan to be made for ${gate}, got ${repo.gateUrl}`);
      for (const spelling of repo.insteadOf) claim(spelling, `repository ${repo.name}`);
      const rules = repo.insteadOf.map((spelling): [string, string] => ["insteadOf", spelling]);
      sections.push(section("url", withToken(repo.gateUrl, token), rules));
    }
  }
  for (const path of input.credProxy?.roles["git-insteadof"] ?? []) {
    const route = input.credProxy?.routesFile.routes.find((r) => r.path === path);
    if (route === undefined) continue;
    const spellings = routeSpellings(route.upstream);
    for (const spelling of spellings) claim(spelling, `route ${path}`);
    const rules = spellings.map((spelling): [string, string] => ["insteadOf", spelling]);
    sections.push(section("url", `${proxy}${path}`, rules));
  }
  return `${sections.join("\n")}\n`;
}

/** `api.github.com` behind the proxy, for tools that read GitHub Actions' variables. */
function githubApiRoute(plan: CredProxyPlan | null): RouteEntry | undefined {
  return plan?.routesFile.routes.find(
    (route) => new URL(route.upstream).hostname === "api.github.com",
  );
}

/**
 * Renders what the agent gets: `env` (ANTHROPIC_BASE_URL and a placeholder key at the
 * anthropic-base-url route, npm_config_registry at the npm-registry route, GITHUB_API_URL and
 * GITHUB_GRAPHQL_URL at a route to api.github.com, {@link QUIET_SWITCHES}, then the manifest's
 * `agent.env`) and `homeFiles` (`.gitconfig`: identity and insteadOf rules to the gate, with
 * the task token, and to git-insteadof routes; `.npmrc`: the registry line, no auth line;
 * `.claude.json` beside ANTHROPIC_BASE_URL: Claude Code's onboarding done, the placeholder
 * approved).
 * The manifest's `agent.env` may repeat a variable bottle sets, with the same value, but never
 * change it: a bottle whose agent would talk past its proxy is refused.
 * Throws CliError BTL_CLI_AGENT_ENV (agent.env changes a bottle variable) or
 * BTL_CLI_AGENT_CONFIG (a bad URL or token, a plan made for another gate, two rewrites of one URL).
 */
export function renderAgentSide(input: AgentSideInput): AgentSide {
  const proxy = baseUrl(input.proxyUrl, "the proxy's URL");
  const env: Record<string, string> = Object.create(null);
  const homeFiles: Record<string, string> = Object.create(null);

  const anthropic = routeWith(input.credProxy, "anthropic-base-url");
  if (anthropic !== undefined) {
    env.ANTHROPIC_BASE_URL = `${proxy}${anthropic.path.replace(/\/$/, "")}`;
    env.ANTHROPIC_API_KEY = PLACEHOLDER_KEY;
    homeFiles[".claude.json"] = CLAUDE_STATE;
  }
  const npm = routeWith(input.credProxy, "npm-registry");
  if (npm !== undefined) {
    // The trailing slash matters: npm joins package names onto the registry URL.
    env.npm_config_registry = `${proxy}${npm.path}`;
    homeFiles[".npmrc"] = `registry=${proxy}${npm.path}\n`;
  }
  const github = githubApiRoute(input.credProxy);
  if (github !== undefined) {
    env.GITHUB_API_URL = `${proxy}${github.path.replace(/\/$/, "")}`;
    env.GITHUB_GRAPHQL_URL = `${proxy}${github.path}graphql`;
  }
  Object.assign(env, QUIET_SWITCHES);
  homeFiles[".gitconfig"] = renderGitconfig(input, proxy);

  for (const [name, value] of Object.entries(input.manifest.agent.env)) {
    // npm reads npm_config_* in any case; everything else is case-sensitive.
    const same = name.toLowerCase().startsWith("npm_config_")
      ? Object.keys(env).filter((key) => key.toLowerCase() === name.toLowerCase())
      : Object.hasOwn(env, name)
        ? [name]
        : [];
    const changed = same.find((key) => env[key] !== value);
    if (changed !== undefined)
      throw new CliError(
        "BTL_CLI_AGENT_ENV",
        `Expected agent.env.${name} to leave bottle's ${changed} as it is: bottle sets it to route the agent through its sidecars`,
      );
    env[name] = value;
  }
  return Object.freeze({ env: Object.freeze(env), homeFiles: Object.freeze(homeFiles) });
}
