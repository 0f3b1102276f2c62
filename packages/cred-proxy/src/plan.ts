/**
 * The cred-proxy plan: from a validated manifest to `routes.json` (no token values and no host
 * variable names: each route names a slot in the proxy's own environment) and the slot map
 * `{ slot → host variable }` the launcher uses to hand the values over. Pure.
 */
import { isBottleError } from "@bottle/errors";
import {
  expandRoutes,
  type Manifest,
  type Role,
  type RouteAuth,
  resolveTokenValues,
  type TokenSlot,
  tokenSlots,
} from "@bottle/manifest";
import { ProxyError } from "./errors.ts";

/** One route as `routes.json` holds it. */
export interface RouteEntry {
  readonly path: string;
  readonly upstream: string;
  readonly auth: RouteAuth;
  /** The variable inside the proxy process that holds the token (`BOTTLE_PROXY_TOKEN_0`). */
  readonly token_env: string;
}

/** The file `bottle-cred-proxy --routes` reads. */
export interface RoutesFile {
  readonly version: 1;
  readonly routes: readonly RouteEntry[];
}

/** The plan of a bottle's proxy. */
export interface CredProxyPlan {
  readonly routesFile: RoutesFile;
  /** Slot → host variable, with the routes using it (what `bottle plan` shows). */
  readonly slots: readonly TokenSlot[];
  /** Route paths by role: where the agent's ANTHROPIC_BASE_URL, npm registry and git go. */
  readonly roles: Readonly<Record<Role, readonly string[]>>;
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
  return Object.freeze({
    routesFile: Object.freeze({
      version: 1 as const,
      routes: Object.freeze(
        routes.map((route) =>
          Object.freeze({
            path: route.path,
            upstream: route.upstream,
            auth: route.auth,
            token_env: slotOf.get(route.token_ref) as string,
          }),
        ),
      ),
    }),
    slots,
    roles: Object.freeze(roles),
  });
}

/**
 * The proxy's environment: `{ slot: value }` read from the host variables the slots name.
 * Throws ProxyError BTL_PROXY_TOKEN listing every unset, empty or malformed variable (names
 * only, never a value).
 */
export function proxyTokenEnv(
  plan: CredProxyPlan,
  hostEnv: Readonly<Record<string, string | undefined>>,
): Readonly<Record<string, string>> {
  try {
    return resolveTokenValues(plan.slots, hostEnv);
  } catch (error) {
    if (isBottleError(error)) {
      throw new ProxyError("BTL_PROXY_TOKEN", error.message, { cause: error });
    }
    throw error;
  }
}
