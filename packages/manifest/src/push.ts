/**
 * SECURITY: no credential that can push to a gated repository is reachable by the agent through
 * the proxy. Pushes go through the git gate, where they are scanned; a token, an installation
 * token or a push-enabled route that reaches the same repository would bypass the scan.
 */

import { dottedPath } from "./format-issues.ts";
import type { PathKey, RawIssue } from "./issues.ts";
import { expandWithSources } from "./routes.ts";
import type { Manifest, RepoSpec } from "./schema.ts";
import { type GitUrl, parseGitUrl } from "./urls.ts";

/** A gated repository, as the proxy could reach it. */
interface Gated {
  readonly name: string;
  readonly spec: RepoSpec;
  readonly url: GitUrl;
}

function gatedRepos(m: Manifest): Gated[] {
  return Object.entries(m.git_gate?.repos ?? {}).flatMap(([name, spec]) => {
    const url = parseGitUrl(spec.url);
    return typeof url === "string" ? [] : [{ name, spec, url }];
  });
}

/** Runs the checks: shared push tokens, GitHub App write access, push-enabled routes. */
export function checkPushReach(m: Manifest): RawIssue[] {
  const gated = gatedRepos(m);
  return [...checkSharedTokens(m, gated), ...checkAppWrites(m, gated), ...checkGitPush(m, gated)];
}

/**
 * A `token` key's token pushes to the upstream, and a `gitea` key's admin token provisions
 * deploy keys that do: neither may also be a proxy route's token (the same variable name).
 */
function checkSharedTokens(m: Manifest, gated: readonly Gated[]): RawIssue[] {
  const proxied = new Map<string, string[]>();
  for (const route of expandWithSources(m.cred_proxy)) {
    if (route.token_ref === undefined) continue;
    const where = dottedPath([...route.sourcePath, "token_ref"]);
    const list = proxied.get(route.token_ref) ?? [];
    if (!list.includes(where)) list.push(where);
    proxied.set(route.token_ref, list);
  }
  const issues: RawIssue[] = [];
  for (const { name, spec } of gated) {
    const key = spec.key;
    if (key.provider !== "token" && key.provider !== "gitea") continue;
    const what =
      key.provider === "gitea" ? "the deploy-key provisioner token" : "the push credential";
    for (const where of proxied.get(key.token_ref) ?? []) {
      issues.push({
        code: "BTL_MANIFEST_CONFLICT",
        path: ["git_gate", "repos", name, "key", "token_ref"],
        message: `${key.token_ref}, ${what} at git_gate.repos.${name}.key.token_ref, is also proxied to the agent by ${where}: the agent could push past the gate's scan; use a separate, narrower token for the proxy`,
      });
    }
  }
  return issues;
}

/** `owner/name` of a GitHub repository the gate serves, lowercased; undefined for others. */
function githubRepository({ spec, url }: Gated): string | undefined {
  if (spec.key.provider !== "github-app" && url.host.toLowerCase() !== "github.com")
    return undefined;
  const parts = url.path
    .replace(/^\/+/, "")
    .replace(/\.git$/i, "")
    .split("/");
  return parts.length === 2 ? parts.join("/").toLowerCase() : undefined;
}

/**
 * A GitHub App route with `contents: write` (or no permissions: whatever tokman grants, so
 * write is assumed) on a repository the gate serves could write to it unscanned, whichever app
 * it names.
 */
function checkAppWrites(m: Manifest, gated: readonly Gated[]): RawIssue[] {
  const issues: RawIssue[] = [];
  m.cred_proxy.routes.forEach((route, index) => {
    const app = route.github_app;
    if (app === undefined) return;
    const contents = app.permissions?.contents;
    if (contents === "read" || (app.permissions !== undefined && contents === undefined)) return;
    for (const repo of gated) {
      if (githubRepository(repo) !== app.repository.toLowerCase()) continue;
      const at: PathKey[] = ["cred_proxy", "routes", index, "github_app"];
      const grant =
        contents === "write" ? "grants contents: write" : "names no permissions (write assumed)";
      issues.push({
        code: "BTL_MANIFEST_CONFLICT",
        path: contents === "write" ? [...at, "permissions", "contents"] : at,
        message: `${dottedPath(at)} ${grant} on ${app.repository}, which the git gate serves as git_gate.repos.${repo.name} (git_gate.repos.${repo.name}.url); writes to a gated repository go through the gate: give the route contents: read`,
      });
    }
  });
  return issues;
}

/** The web origins under which a gated repository can be reached over HTTP(S). */
function webOrigins({ spec, url }: Gated): string[] {
  const origins = new Set<string>();
  const add = (value: string) => {
    try {
      origins.add(new URL(value).origin);
    } catch {
      // Unparseable URLs are reported by the other rules.
    }
  };
  if (url.transport === "ssh") add(`https://${url.host}`);
  else add(spec.url);
  if (spec.key.provider === "gitea") add(spec.key.api);
  return [...origins];
}

/** `git_push: true` on a route whose upstream origin serves a gated repository. */
function checkGitPush(m: Manifest, gated: readonly Gated[]): RawIssue[] {
  const issues: RawIssue[] = [];
  m.cred_proxy.routes.forEach((route, index) => {
    if (!route.git_push) return;
    const origin = new URL(route.upstream).origin;
    for (const repo of gated) {
      if (!webOrigins(repo).includes(origin)) continue;
      issues.push({
        code: "BTL_MANIFEST_CONFLICT",
        path: ["cred_proxy", "routes", index, "git_push"],
        message: `cred_proxy.routes[${index}].git_push lets pushes through to ${origin}, which serves git_gate.repos.${repo.name} (git_gate.repos.${repo.name}.url); pushes to a gated repository go through the gate, where they are scanned: remove git_push`,
      });
    }
  });
  return issues;
}
