/** Route expansion (token kinds → routes), token slots, and resolution of token values. */
import { READ_ONLY_ALLOW, type RouteAllow } from "./allow.ts";
import { CREDENTIAL_SHAPE, isCredentialValue } from "./credentials.ts";
import { ManifestError, type ManifestIssue } from "./errors.ts";
import { dottedPath, type PathKey } from "./format-issues.ts";
import type { Manifest, Role, RouteAuth, TokenSpec } from "./schema.ts";

interface RouteBase {
  readonly path: string;
  readonly upstream: string;
  readonly auth: RouteAuth;
  readonly roles: readonly Role[];
  /** Set when git pushes may pass (explicit routes only); absent: the proxy refuses them. */
  readonly git_push?: true;
  /** Only requests matching one of these pass (`read_only` is expanded here); absent: all. */
  readonly allow?: readonly RouteAllow[];
  /** Where it was declared: `cred_proxy.tokens[0]` or `cred_proxy.routes[1]`. */
  readonly source: string;
}

/** Where a GitHub App route's token comes from: tokman, for this app, repository and scope. */
export interface RouteTokman {
  /** The key of `github_apps` (shown in plans; tokman knows the app by the proxy's caller key). */
  readonly app: string;
  /** `owner/name`. */
  readonly repository: string;
  /** Down-scoped permissions; absent: all that tokman's policy grants. */
  readonly permissions?: Readonly<Record<string, "read" | "write">>;
}

/** A route whose token is a host environment variable, handed to the proxy through a slot. */
export interface TokenRefRoute extends RouteBase {
  readonly token_ref: string;
  readonly tokman?: undefined;
}

/** A route whose token is a GitHub App installation token from tokman (no slot). */
export interface GithubAppRoute extends RouteBase {
  readonly token_ref?: undefined;
  readonly tokman: RouteTokman;
}

/** One proxy route after expansion of the `tokens` short form. */
export type Route = TokenRefRoute | GithubAppRoute;

/** A token slot: the proxy's own environment variable and the host variable feeding it. */
export interface TokenSlot {
  /** Variable name inside the proxy process (`BOTTLE_PROXY_TOKEN_0`). */
  readonly slot: string;
  /** Host environment variable read at start (`ANTHROPIC_API_KEY`). */
  readonly token_ref: string;
  /** Paths of the routes using it. */
  readonly routes: readonly string[];
}

type CredProxy = Manifest["cred_proxy"];

/** Internal: the expansion with source paths as key arrays (rules need them). */
export function expandWithSources(credProxy: CredProxy): Array<Route & { sourcePath: PathKey[] }> {
  const out: Array<Route & { sourcePath: PathKey[] }> = [];
  credProxy.tokens.forEach((token, index) => {
    const sourcePath: PathKey[] = ["cred_proxy", "tokens", index];
    for (const route of expandToken(token))
      out.push({ ...route, source: dottedPath(sourcePath), sourcePath });
  });
  credProxy.routes.forEach((route, index) => {
    const sourcePath: PathKey[] = ["cred_proxy", "routes", index];
    const common = { path: route.path, upstream: stripSlash(route.upstream), auth: route.auth };
    // `allow` and `read_only` together are refused by rules.ts; `allow` wins meanwhile.
    const allow = route.allow ?? (route.read_only ? READ_ONLY_ALLOW : undefined);
    const rest = {
      roles: [...new Set(route.roles)],
      ...(route.git_push ? { git_push: true as const } : {}),
      ...(allow === undefined ? {} : { allow: allow.map(copyRule) }),
      source: dottedPath(sourcePath),
      sourcePath,
    };
    const app = route.github_app;
    // Exactly one of the two is set (rules.ts says so when not); github_app wins meanwhile.
    out.push(
      app === undefined
        ? { ...common, token_ref: route.token_ref ?? "", ...rest }
        : {
            ...common,
            tokman: {
              app: app.app,
              repository: app.repository,
              ...(app.permissions === undefined ? {} : { permissions: { ...app.permissions } }),
            },
            ...rest,
          },
    );
  });
  return out;
}

type TokenRoute = Omit<TokenRefRoute, "source">;

/** The routes of one `tokens` short form (see the README's table of kinds). */
function expandToken(token: TokenSpec): TokenRoute[] {
  const route = (path: string, upstream: string, auth: RouteAuth, roles: Role[]): TokenRoute => ({
    path,
    upstream: stripSlash(upstream),
    auth,
    token_ref: token.token_ref,
    roles,
  });
  switch (token.kind) {
    case "anthropic": {
      const auth: RouteAuth =
        token.auth === "api-key" ? { header: "x-api-key" } : { scheme: "Bearer" };
      return [route("/anthropic/", token.upstream, auth, ["anthropic-base-url"])];
    }
    case "github":
      return [
        route("/gh-api/", token.api, { scheme: "Bearer" }, []),
        route("/gh-git/", token.web, { scheme: "Basic", username: "x-access-token" }, [
          "git-insteadof",
        ]),
      ];
    case "gitea":
      return [
        route(`/gitea/${giteaKey(token.url)}/`, token.url, { scheme: "token" }, ["git-insteadof"]),
      ];
    case "npm":
      return [route("/npm/", token.registry, { scheme: "Bearer" }, ["npm-registry"])];
  }
}

/** SECURITY: the `<host>` segment of a Gitea route is a lookup key only, never used to build a URL. */
function giteaKey(url: string): string {
  return new URL(url).hostname
    .toLowerCase()
    .replace(/[^a-z0-9._-]/g, "-")
    .replace(/^[.-]+/, "");
}

function copyRule(rule: RouteAllow): RouteAllow {
  return { methods: [...rule.methods], paths: [...rule.paths] };
}

function stripSlash(url: string): string {
  return url.replace(/\/+$/, "");
}

/** The proxy routes of a manifest: `tokens` expanded first, then the explicit `routes`. */
export function expandRoutes(manifest: Pick<Manifest, "cred_proxy">): readonly Route[] {
  return Object.freeze(
    expandWithSources(manifest.cred_proxy).map(({ sourcePath: _, ...route }): Route => {
      if (route.tokman?.permissions) Object.freeze(route.tokman.permissions);
      if (route.tokman) Object.freeze(route.tokman);
      for (const rule of route.allow ?? []) {
        Object.freeze(rule.methods);
        Object.freeze(rule.paths);
        Object.freeze(rule);
      }
      if (route.allow) Object.freeze(route.allow);
      return Object.freeze(route);
    }),
  );
}

/**
 * One slot per distinct `token_ref`, in order of first use; routes sharing a token share a slot.
 * GitHub App routes get none: their tokens come from tokman.
 */
export function tokenSlots(routes: readonly Route[]): readonly TokenSlot[] {
  const byRef = new Map<string, { slot: string; token_ref: string; routes: string[] }>();
  for (const route of routes) {
    if (route.token_ref === undefined) continue;
    let slot = byRef.get(route.token_ref);
    if (slot === undefined) {
      slot = { slot: `BOTTLE_PROXY_TOKEN_${byRef.size}`, token_ref: route.token_ref, routes: [] };
      byRef.set(route.token_ref, slot);
    }
    slot.routes.push(route.path);
  }
  return Object.freeze(
    [...byRef.values()].map((s) => Object.freeze({ ...s, routes: Object.freeze(s.routes) })),
  );
}

/**
 * Reads each slot's host variable from `env` and returns `{ slot: value }` (null prototype).
 * Throws one `ManifestError` listing every problem: BTL_MANIFEST_TOKEN_UNSET,
 * BTL_MANIFEST_TOKEN_EMPTY, BTL_MANIFEST_TOKEN_INVALID. SECURITY: errors name variables only.
 */
export function resolveTokenValues(
  slots: readonly TokenSlot[],
  env: Readonly<Record<string, string | undefined>>,
): Readonly<Record<string, string>> {
  const values: Record<string, string> = Object.create(null);
  const issues: ManifestIssue[] = [];
  for (const { slot, token_ref, routes } of slots) {
    const value = Object.hasOwn(env, token_ref) ? env[token_ref] : undefined;
    const uses = `(used by ${routes.join(", ")})`;
    if (value === undefined) {
      issues.push({
        code: "BTL_MANIFEST_TOKEN_UNSET",
        path: "",
        message: `environment variable ${token_ref} is not set ${uses}`,
      });
    } else if (value === "") {
      issues.push({
        code: "BTL_MANIFEST_TOKEN_EMPTY",
        path: "",
        message: `environment variable ${token_ref} is empty ${uses}`,
      });
    } else if (!isCredentialValue(value)) {
      issues.push({
        code: "BTL_MANIFEST_TOKEN_INVALID",
        path: "",
        message: `environment variable ${token_ref} must be ${CREDENTIAL_SHAPE} ${uses}`,
      });
    } else {
      values[slot] = value;
    }
  }
  if (issues.length > 0) throw new ManifestError(issues);
  return Object.freeze(values);
}
