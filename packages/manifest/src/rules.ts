/** Cross-field rules: what a per-field schema cannot see. Each returns raw issues. */
import { createRequire } from "node:module";
import { isCredentialHeader } from "./headers.ts";
import type { PathKey, RawIssue } from "./issues.ts";
import { checkPushReach } from "./push.ts";
import { expandWithSources } from "./routes.ts";
import { EXCLUSIVE_ROLES, type Manifest } from "./schema.ts";
import { parseGitUrl } from "./urls.ts";

// ssh2 is large and only some manifests and commands need it: loaded on first use.
const require = createRequire(import.meta.url);
const ssh2 = (): typeof import("ssh2") => require("ssh2");

/** Names that look like credentials (case-insensitive). */
const CREDENTIAL_NAME = /TOKEN|KEY|SECRET|PASSWORD|PASSWD|CREDENTIAL/i;

/** Runs every cross-field rule on a schema-valid manifest. */
export function checkRules(m: Manifest): RawIssue[] {
  return [...checkAgent(m), ...checkRepos(m), ...checkScan(m), ...checkApps(m), ...checkRoutes(m)];
}

function checkAgent(m: Manifest): RawIssue[] {
  return Object.keys(m.agent.env)
    .filter((name) => CREDENTIAL_NAME.test(name))
    .map((name) => ({
      code: "BTL_MANIFEST_CREDENTIAL_ENV",
      path: ["agent", "env", name],
      atKey: true,
      message:
        `${name} looks like a credential; the agent must never hold one. Declare it in cred_proxy ` +
        `(a route or token with token_ref: ${name}) and point the client at the proxy instead`,
    }));
}

function checkRepos(m: Manifest): RawIssue[] {
  const issues: RawIssue[] = [];
  const seen = new Map<string, string>();
  for (const [name, repo] of Object.entries(m.git_gate?.repos ?? {})) {
    const at: PathKey[] = ["git_gate", "repos", name];
    const other = seen.get(name.toLowerCase());
    if (other !== undefined) {
      issues.push({
        code: "BTL_MANIFEST_CONFLICT",
        path: at,
        atKey: true,
        message: `repository \`${name}\` and \`${other}\` differ only in case`,
      });
    }
    seen.set(name.toLowerCase(), name);
    if (name.toLowerCase().endsWith(".git")) {
      issues.push({
        code: "BTL_MANIFEST_INVALID",
        path: at,
        atKey: true,
        message: `Expected repository name \`${name}\` without the .git suffix (the gate adds it)`,
      });
    }
    const url = parseGitUrl(repo.url);
    if (typeof url === "string") {
      issues.push({
        code: "BTL_MANIFEST_INVALID",
        path: [...at, "url"],
        message: `Expected \`url\` ${url}`,
      });
      continue;
    }
    const ssh = url.transport === "ssh";
    if (ssh && repo.host_key === undefined) {
      issues.push({
        code: "BTL_MANIFEST_HOST_KEY",
        path: [...at, "host_key"],
        message:
          "is required for an SSH upstream: pin the server's key (ssh-keyscan, checked out of band)",
      });
    } else if (ssh && repo.host_key !== undefined) {
      const problem = checkHostKey(repo.host_key);
      if (problem)
        issues.push({ code: "BTL_MANIFEST_HOST_KEY", path: [...at, "host_key"], message: problem });
    } else if (repo.host_key !== undefined) {
      issues.push({
        code: "BTL_MANIFEST_INVALID",
        path: [...at, "host_key"],
        message: "applies to SSH upstreams only; this one uses https",
      });
    }
    const provider = repo.key.provider;
    const wantsSsh = provider === "static" || provider === "gitea";
    if (wantsSsh !== ssh) {
      issues.push({
        code: "BTL_MANIFEST_INVALID",
        path: [...at, "key", "provider"],
        message: `Expected an ${wantsSsh ? "SSH" : "https"} \`url\` for provider ${provider}`,
      });
    }
    if (repo.key.provider === "github-app" && !Object.hasOwn(m.github_apps, repo.key.app)) {
      const declared = Object.keys(m.github_apps);
      issues.push({
        code: "BTL_MANIFEST_REFERENCE",
        path: [...at, "key", "app"],
        message: `names app \`${repo.key.app}\`, which github_apps does not declare${declared.length ? ` (declared: ${declared.join(", ")})` : ""}`,
      });
    }
  }
  return issues;
}

/** Parses an OpenSSH public key line with ssh2; returns what is wrong or undefined. */
function checkHostKey(line: string): string | undefined {
  const parsed = ssh2().utils.parseKey(line.trim());
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (key === undefined || key instanceof Error)
    return "Expected an OpenSSH public key line (`ssh-ed25519 AAAA… [comment]`)";
  if (key.isPrivateKey())
    return "Expected a public host key, got a private key (remove it from the manifest now)";
  return undefined;
}

function checkScan(m: Manifest): RawIssue[] {
  const issues: RawIssue[] = [];
  const ids = new Map<string, number>();
  m.git_gate?.scan.rules.forEach((rule, index) => {
    const at: PathKey[] = ["git_gate", "scan", "rules", index];
    try {
      new RegExp(rule.regex);
    } catch {
      issues.push({
        code: "BTL_MANIFEST_INVALID",
        path: [...at, "regex"],
        message: "Expected `regex` to be a valid JavaScript regular expression",
      });
    }
    const first = ids.get(rule.id);
    if (first !== undefined) {
      issues.push({
        code: "BTL_MANIFEST_CONFLICT",
        path: [...at, "id"],
        message: `rule id \`${rule.id}\` is already used by git_gate.scan.rules[${first}]`,
      });
    } else ids.set(rule.id, index);
  });
  return issues;
}

function checkApps(m: Manifest): RawIssue[] {
  return Object.entries(m.github_apps)
    .filter(([, app]) => app.app_id === undefined && app.client_id === undefined)
    .map(([name]) => ({
      code: "BTL_MANIFEST_MISSING_KEY",
      path: ["github_apps", name],
      message: "needs `app_id` or `client_id`",
    }));
}

/** Each explicit route takes its token from exactly one place, and its app is declared. */
function checkTokenSources(m: Manifest): RawIssue[] {
  const issues: RawIssue[] = [];
  m.cred_proxy.routes.forEach((route, index) => {
    const at: PathKey[] = ["cred_proxy", "routes", index];
    if (route.token_ref === undefined && route.github_app === undefined) {
      issues.push({
        code: "BTL_MANIFEST_MISSING_KEY",
        path: at,
        message:
          "needs `token_ref` (a host variable holding the token) or `github_app` (an installation token from tokman)",
      });
    } else if (route.token_ref !== undefined && route.github_app !== undefined) {
      issues.push({
        code: "BTL_MANIFEST_CONFLICT",
        path: [...at, "github_app"],
        atKey: true,
        message:
          "`token_ref` and `github_app` both name the route's token; keep exactly one of them",
      });
    }
    if (route.read_only && route.allow !== undefined) {
      issues.push({
        code: "BTL_MANIFEST_CONFLICT",
        path: [...at, "read_only"],
        atKey: true,
        message: `cred_proxy.routes[${index}].read_only and cred_proxy.routes[${index}].allow both restrict the route; keep one of them (read_only is allow: [{ methods: [GET, HEAD], paths: ["/**"] }])`,
      });
    }
    const app = route.github_app?.app;
    if (app !== undefined && !Object.hasOwn(m.github_apps, app)) {
      const declared = Object.keys(m.github_apps);
      issues.push({
        code: "BTL_MANIFEST_REFERENCE",
        path: [...at, "github_app", "app"],
        message: `names app \`${app}\`, which github_apps does not declare${declared.length ? ` (declared: ${declared.join(", ")})` : ""}`,
      });
    }
  });
  return issues;
}

function checkRoutes(m: Manifest): RawIssue[] {
  const issues: RawIssue[] = [...checkTokenSources(m)];
  const routes = expandWithSources(m.cred_proxy);
  const roleHolder = new Map<string, string>();
  routes.forEach((route, i) => {
    const at = route.sourcePath;
    for (const earlier of routes.slice(0, i)) {
      if (earlier.path === route.path) {
        issues.push({
          code: "BTL_MANIFEST_CONFLICT",
          path: at,
          message: `route ${route.path} is declared by both ${earlier.source} and ${route.source}`,
        });
      } else if (route.path.startsWith(earlier.path) || earlier.path.startsWith(route.path)) {
        issues.push({
          code: "BTL_MANIFEST_CONFLICT",
          path: at,
          message: `route ${route.path} (${route.source}) and ${earlier.path} (${earlier.source}) overlap: one is a prefix of the other`,
        });
      }
    }
    for (const role of route.roles) {
      const holder = roleHolder.get(role);
      if (EXCLUSIVE_ROLES.has(role) && holder !== undefined && holder !== route.source) {
        issues.push({
          code: "BTL_MANIFEST_CONFLICT",
          path: at,
          message: `role ${role} is held by both ${holder} and ${route.source}; at most one route may hold it`,
        });
      }
      roleHolder.set(role, route.source);
    }
    if ("header" in route.auth && !isCredentialHeader(route.auth.header)) {
      issues.push({
        code: "BTL_MANIFEST_INVALID",
        path: [...at, "auth", "header"],
        message: `Expected a header that can carry a credential, got \`${route.auth.header}\` (a protocol, forwarding or cookie header)`,
      });
    }
  });
  issues.push(...checkTokenUses(m), ...checkPushReach(m));
  return issues;
}

/** A token_ref means one kind of credential: one variable cannot be two kinds of token. */
function checkTokenUses(m: Manifest): RawIssue[] {
  const issues: RawIssue[] = [];
  const kinds = new Map<string, { kind: string; source: string }>();
  m.cred_proxy.tokens.forEach((token, index) => {
    const kind =
      token.kind === "anthropic"
        ? `an Anthropic ${token.auth === "api-key" ? "API key" : "OAuth token"}`
        : `a ${token.kind} token`;
    const source = `cred_proxy.tokens[${index}]`;
    const first = kinds.get(token.token_ref);
    if (first !== undefined && first.kind !== kind) {
      issues.push({
        code: "BTL_MANIFEST_CONFLICT",
        path: ["cred_proxy", "tokens", index, "token_ref"],
        message: `${token.token_ref} is used as ${first.kind} by ${first.source} and as ${kind} by ${source}; one variable cannot be both`,
      });
    } else if (first === undefined) kinds.set(token.token_ref, { kind, source });
  });
  return issues;
}
