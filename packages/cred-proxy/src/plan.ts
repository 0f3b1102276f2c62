/**
 * The cred-proxy plan: from a validated manifest to `routes.json` (no token values and no host
 * variable names: each route names a slot in the proxy's own environment, or, for a GitHub App
 * route, the repository whose installation token tokman provides) and the slot map
 * `{ slot → host variable }` the launcher uses to hand the values over. Pure.
 */
import { isBottleError } from "@bottle/errors";
import {
  expandRoutes,
  type Manifest,
  type Role,
  resolveTokenValues,
  type TokenSlot,
  tokenSlots,
} from "@bottle/manifest";
import { TOKMAN_KEY_ENV, TOKMAN_URL_ENV } from "@bottle/tokman/client";
import { ProxyError } from "./errors.ts";
import type { RouteEntry, RoutesFile, TokmanEntry } from "./routes.ts";
import { checkTokmanSettings } from "./tokman.ts";

/** What the proxy needs from tokman: set when a route takes its token from a GitHub App. */
export interface TokmanPlan {
  /** The proxy's variable for tokman's base URL. */
  readonly urlEnv: typeof TOKMAN_URL_ENV;
  /** The proxy's variable for its caller key at tokman (a secret, like a slot's value). */
  readonly keyEnv: typeof TOKMAN_KEY_ENV;
  /** The GitHub App routes, with the app each names (what `bottle plan` shows). */
  readonly routes: ReadonlyArray<{ readonly path: string; readonly app: string } & TokmanEntry>;
}

/** The plan of a bottle's proxy. */
export interface CredProxyPlan {
  readonly routesFile: RoutesFile;
  /** Slot → host variable, with the routes using it (what `bottle plan` shows). */
  readonly slots: readonly TokenSlot[];
  /** Route paths by role: where the agent's ANTHROPIC_BASE_URL, npm registry and git go. */
  readonly roles: Readonly<Record<Role, readonly string[]>>;
  /** tokman's variables and the GitHub App routes; null when no route uses tokman. */
  readonly tokman: TokmanPlan | null;
}

/** Plans the proxy of `bottle`: routes (token kinds expanded, then explicit routes) and slots. */
export function prepareCredProxy(bottle: Pick<Manifest, "cred_proxy">): CredProxyPlan {
  const routes = expandRoutes(bottle);
  const slots = tokenSlots(routes);
  const slotOf = new Map(slots.map((s) => [s.token_ref, s.slot]));
  const roles: Record<Role, string[]> = {
    "anthropic-base-url": [],
    "npm-registry": [],
    "git-insteadof": [],
  };
  for (const route of routes) for (const role of route.roles) roles[role].push(route.path);
  const appRoutes: TokmanPlan["routes"][number][] = [];
  const entries = routes.map((route): RouteEntry => {
    const common = {
      path: route.path,
      upstream: route.upstream,
      auth: route.auth,
      ...(route.git_push ? { git_push: true as const } : {}),
      ...(route.allow === undefined ? {} : { allow: route.allow }),
    };
    if (route.tokman === undefined)
      return Object.freeze({ ...common, token_env: slotOf.get(route.token_ref) as string });
    const { app, repository, permissions } = route.tokman;
    const tokman = Object.freeze({ repository, ...(permissions ? { permissions } : {}) });
    appRoutes.push(Object.freeze({ path: route.path, app, ...tokman }));
    return Object.freeze({ ...common, tokman });
  });
  return Object.freeze({
    routesFile: Object.freeze({ version: 1 as const, routes: Object.freeze(entries) }),
    slots,
    roles: Object.freeze(roles),
    tokman:
      appRoutes.length === 0
        ? null
        : Object.freeze({
            urlEnv: TOKMAN_URL_ENV,
            keyEnv: TOKMAN_KEY_ENV,
            routes: Object.freeze(appRoutes),
          }),
  });
}

/**
 * The proxy's environment: `{ slot: value }` read from the host variables the slots name, plus
 * BOTTLE_TOKMAN_URL and BOTTLE_TOKMAN_KEY from `tokman` when a route uses it.
 * Throws ProxyError BTL_PROXY_TOKEN listing every unset, empty or malformed variable and a
 * missing or malformed tokman key (names only, never a value), or BTL_PROXY_CONFIG when only
 * tokman's URL is wrong.
 */
export function proxyTokenEnv(
  plan: CredProxyPlan,
  hostEnv: Readonly<Record<string, string | undefined>>,
  tokman?: { readonly url: string; readonly key: string },
): Readonly<Record<string, string>> {
  const env: Record<string, string> = Object.create(null);
  const problems: ProxyError[] = [];
  try {
    Object.assign(env, resolveTokenValues(plan.slots, hostEnv));
  } catch (error) {
    if (!isBottleError(error)) throw error;
    problems.push(new ProxyError("BTL_PROXY_TOKEN", error.message, { cause: error }));
  }
  if (plan.tokman !== null) {
    try {
      const checked = checkTokmanSettings(
        tokman?.url,
        tokman?.key,
        { url: "tokman's URL", key: "the caller key of tokman" },
        plan.tokman.routes.map((route) => route.path),
      );
      env[plan.tokman.urlEnv] = checked.url;
      env[plan.tokman.keyEnv] = checked.key;
    } catch (error) {
      if (!(error instanceof ProxyError)) throw error;
      problems.push(error);
    }
  }
  const [first, ...more] = problems;
  if (first === undefined) return Object.freeze(env);
  if (more.length === 0) throw first;
  throw new ProxyError(
    problems.some((p) => p.code === "BTL_PROXY_TOKEN") ? "BTL_PROXY_TOKEN" : "BTL_PROXY_CONFIG",
    problems.map((p) => p.message).join("; "),
    { cause: problems },
  );
}
