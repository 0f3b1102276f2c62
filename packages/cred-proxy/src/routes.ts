/**
 * `routes.json`: the proxy's fixed destinations. Each route maps a path prefix onto one upstream
 * origin (plus base path) and names the token slot in the proxy's own environment, or the
 * repository whose GitHub App installation token tokman provides. Validated once, frozen;
 * nothing a request carries can change where a route goes.
 */
import { readFileSync } from "node:fs";
import { AllowRulesSchema, type RouteAllow } from "@bottle/manifest/allow";
import {
  checkHttpUrl,
  formatIssues,
  HEADER_NAME,
  isCredentialHeader,
} from "@bottle/manifest/policy";
import * as v from "valibot";
import { ProxyError } from "./errors.ts";

/** Largest routes.json read (checked before parsing). */
export const MAX_ROUTES_FILE_BYTES = 1024 * 1024;

/** Route prefixes: `/segment/` … `/a/b/c/d/`; a segment never starts with a dot. */
const ROUTE_PATH = /^\/(?:[A-Za-z0-9_-][A-Za-z0-9._-]{0,62}\/){1,4}$/;
/** Token slots: the proxy's own variables, never a host variable name. */
const TOKEN_SLOT = /^BOTTLE_PROXY_TOKEN_\d+$/;
/** A GitHub repository `owner/name`, as tokman accepts it. */
const REPOSITORY = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\/[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;
/** A GitHub App permission name. */
const PERMISSION = /^[a-z][a-z_]{0,63}$/;

const upstreamUrl = v.pipe(
  v.string(),
  v.rawCheck(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    const problem = checkHttpUrl(dataset.value);
    if (problem) addIssue({ message: `Expected \`upstream\` ${problem}` });
  }),
);

const Auth = v.union(
  [
    v.strictObject({ scheme: v.picklist(["Bearer", "token"]) }),
    v.strictObject({
      scheme: v.literal("Basic"),
      username: v.pipe(
        v.string(),
        v.regex(
          /^[\x21-\x39\x3b-\x7e]{1,128}$/,
          "Expected `username` to be 1 to 128 printable ASCII characters without `:`",
        ),
      ),
    }),
    v.strictObject({
      header: v.pipe(
        v.string(),
        v.regex(HEADER_NAME, "Expected `header` to be an HTTP header name"),
        v.check(
          (name) => isCredentialHeader(name),
          "Expected `header` to be a header that does not change framing or routing",
        ),
      ),
    }),
  ],
  'Expected `auth` to be { "scheme": "Bearer" | "token" }, { "scheme": "Basic", "username" } or { "header": NAME }',
);

/** Where a GitHub App route's token comes from: tokman, for one repository and scope. */
const TokmanEntrySchema = v.strictObject({
  repository: v.pipe(
    v.string(),
    v.regex(REPOSITORY, "Expected `repository` to be a GitHub `owner/name`"),
    v.check((name) => !name.includes(".."), "Expected `repository` to have no `..`"),
  ),
  permissions: v.exactOptional(
    v.pipe(
      v.record(
        v.pipe(v.string(), v.regex(PERMISSION, "Expected a permission name such as `contents`")),
        v.picklist(["read", "write"], "Expected `read` or `write`"),
      ),
      v.minEntries(1, "Expected at least one permission"),
      v.readonly(),
    ),
  ),
});

const RouteEntrySchema = v.pipe(
  v.strictObject({
    path: v.pipe(
      v.string(),
      v.regex(ROUTE_PATH, "Expected `path` to look like `/segment/` (up to 4 segments)"),
    ),
    upstream: upstreamUrl,
    auth: Auth,
    token_env: v.exactOptional(
      v.pipe(
        v.string(),
        v.regex(TOKEN_SLOT, "Expected `token_env` to be a slot name like BOTTLE_PROXY_TOKEN_0"),
      ),
    ),
    tokman: v.exactOptional(TokmanEntrySchema),
    git_push: v.exactOptional(v.boolean("Expected `git_push` to be true or false")),
    allow: v.exactOptional(AllowRulesSchema),
  }),
  v.check(
    (route) => (route.token_env === undefined) !== (route.tokman === undefined),
    "Expected exactly one of `token_env` (a token slot) or `tokman` (a GitHub App token)",
  ),
);

/** The schema of routes.json (`version: 1`, unknown keys are errors). */
export const RoutesFileSchema = v.strictObject({
  version: v.literal(1, "Expected `version` to be 1"),
  routes: v.pipe(
    v.array(RouteEntrySchema),
    v.minLength(1, "Expected `routes` to hold at least one route"),
  ),
});

type RouteFields = Readonly<v.InferOutput<typeof RouteEntrySchema>>;

/** Where a GitHub App route's token comes from, as `routes.json` holds it. */
export type TokmanEntry = Readonly<v.InferOutput<typeof TokmanEntrySchema>>;

/**
 * One route as `routes.json` holds it (the schema's output): its token sits in a slot
 * (`token_env`, a variable inside the proxy process) or comes from tokman, exactly one.
 */
export type RouteEntry = Omit<RouteFields, "token_env" | "tokman"> &
  ({ readonly token_env: string } | { readonly tokman: TokmanEntry });

/** The file `bottle-cred-proxy --routes` reads. */
export interface RoutesFile {
  readonly version: 1;
  readonly routes: readonly RouteEntry[];
}

/**
 * One route as the proxy serves it: a {@link RouteEntry} checked by `parseRoutes`, with its
 * upstream taken apart. Its token sits in a slot, or comes from tokman (exactly one).
 */
export type ProxyRoute = ProxyRouteBase &
  (
    | { readonly tokenEnv: string; readonly tokman?: undefined }
    | { readonly tokenEnv?: undefined; readonly tokman: TokmanEntry }
  );

interface ProxyRouteBase {
  /** The prefix, with leading and trailing slash: `/anthropic/`. */
  readonly path: string;
  /** The configured upstream, without a trailing slash: `https://host[:port][/base]`. */
  readonly upstream: string;
  /** `https://host[:port]` as the WHATWG URL serialises it. */
  readonly origin: string;
  /** The `Host` header the upstream gets: `host[:port]`. */
  readonly host: string;
  /** The upstream's base path without a trailing slash (`""` or `/api/v3`). */
  readonly basePath: string;
  /** How the credential is presented (a header name in lower case). */
  readonly auth: RouteEntry["auth"];
  /** Git pushes pass (`git_push: true`); otherwise they are refused before the upstream. */
  readonly gitPush: boolean;
  /** Only requests matching one of these rules pass; absent: every method and path. */
  readonly allow?: readonly RouteAllow[];
}

/** Every route `parseRoutes` made: what `createCredProxy` serves, and nothing hand-made. */
const PARSED = new WeakSet<ProxyRoute>();

/**
 * Checks that `routes` came from `parseRoutes` or `loadRoutes` (validated once, frozen), with no
 * two on one path. Throws ProxyError BTL_PROXY_CONFIG otherwise.
 */
export function checkParsedRoutes(routes: readonly ProxyRoute[]): readonly ProxyRoute[] {
  if (routes.length === 0 || !routes.every((route) => PARSED.has(route)))
    throw new ProxyError(
      "BTL_PROXY_CONFIG",
      "Expected `routes` to be routes from parseRoutes or loadRoutes",
    );
  const paths = new Set(routes.map((route) => route.path));
  if (paths.size !== routes.length)
    throw new ProxyError("BTL_PROXY_CONFIG", "Expected `routes` to have one route per path");
  return Object.isFrozen(routes) ? routes : Object.freeze([...routes]);
}

/**
 * Validates routes.json content. Throws ProxyError BTL_PROXY_CONFIG naming the route index and
 * field (`routes[2].upstream: …`) for every problem found; values are never echoed.
 */
export function parseRoutes(value: unknown, source = "routes.json"): readonly ProxyRoute[] {
  const result = v.safeParse(RoutesFileSchema, value);
  if (!result.success) {
    throw new ProxyError("BTL_PROXY_CONFIG", `${source}: ${formatIssues(result.issues)}`);
  }
  const seen = new Map<string, number>();
  const routes = result.output.routes.map((spec, index) => {
    const first = seen.get(spec.path);
    if (first !== undefined) {
      throw new ProxyError(
        "BTL_PROXY_CONFIG",
        `${source}: routes[${index}].path: ${spec.path} is already the path of routes[${first}]`,
      );
    }
    seen.set(spec.path, index);
    const upstream = spec.upstream.replace(/\/+$/, "");
    const url = new URL(upstream);
    const slash = upstream.indexOf("/", upstream.indexOf("//") + 2);
    const auth: ProxyRoute["auth"] =
      "header" in spec.auth
        ? { header: spec.auth.header.toLowerCase() }
        : spec.auth.scheme === "Basic"
          ? { scheme: "Basic", username: spec.auth.username }
          : { scheme: spec.auth.scheme };
    const base = {
      path: spec.path,
      upstream,
      origin: url.origin,
      host: url.host,
      basePath: slash === -1 ? "" : upstream.slice(slash),
      auth: Object.freeze(auth),
      gitPush: spec.git_push === true,
      ...(spec.allow === undefined
        ? {}
        : {
            allow: Object.freeze(
              spec.allow.map((rule) =>
                Object.freeze({
                  methods: Object.freeze([...rule.methods]),
                  paths: Object.freeze([...rule.paths]),
                }),
              ),
            ),
          }),
    };
    const { tokman } = spec;
    const route: ProxyRoute = Object.freeze(
      tokman === undefined
        ? { ...base, tokenEnv: spec.token_env as string }
        : {
            ...base,
            tokman: Object.freeze({
              repository: tokman.repository,
              ...(tokman.permissions === undefined
                ? {}
                : { permissions: Object.freeze({ ...tokman.permissions }) }),
            }),
          },
    );
    PARSED.add(route);
    return route;
  });
  return Object.freeze(routes);
}

/** Reads and validates a routes.json file. Throws ProxyError BTL_PROXY_CONFIG. */
export function loadRoutes(file: string): readonly ProxyRoute[] {
  let text: string;
  try {
    const bytes = readFileSync(file);
    if (bytes.length > MAX_ROUTES_FILE_BYTES) {
      throw new ProxyError(
        "BTL_PROXY_CONFIG",
        `${file}: larger than ${MAX_ROUTES_FILE_BYTES} bytes`,
      );
    }
    text = bytes.toString("utf8");
  } catch (error) {
    if (error instanceof ProxyError) throw error;
    const code = (error as NodeJS.ErrnoException).code ?? "unreadable";
    throw new ProxyError("BTL_PROXY_CONFIG", `${file}: cannot read (${code})`, { cause: error });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ProxyError("BTL_PROXY_CONFIG", `${file}: not valid JSON`, { cause: error });
  }
  return parseRoutes(json, file);
}

/** The route whose prefix is the longest one `rawPath` starts with, or undefined. */
export function matchRoute(routes: readonly ProxyRoute[], rawPath: string): ProxyRoute | undefined {
  let best: ProxyRoute | undefined;
  for (const route of routes) {
    if (
      rawPath.startsWith(route.path) &&
      (best === undefined || route.path.length > best.path.length)
    )
      best = route;
  }
  return best;
}
