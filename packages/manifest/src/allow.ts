/**
 * `@bottle/manifest/allow`: the allow rules of a proxy route (which methods and paths pass), one
 * schema for the manifest's `cred_proxy.routes[].allow` and for `routes.json`, so the proxy
 * accepts exactly the rules validation accepts. Loads valibot and nothing else.
 */
import * as v from "valibot";

/**
 * An allow-rule path glob: `/`-separated segments, each `*` (one segment), `**` (any number of
 * segments, zero included) or literal URL path characters (`%XX` escapes allowed); no empty or
 * dot segments.
 */
export const PATH_GLOB = /^(?:\/(?:\*\*?|(?:[A-Za-z0-9._~!$&'()+,;=:@-]|%[0-9A-Fa-f]{2})+))+$/;
/** The methods an allow rule may name (CONNECT, TRACE and TRACK are always refused). */
export const METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] as const;
/** What `read_only: true` stands for: GET and HEAD on every path. */
export const READ_ONLY_ALLOW = [{ methods: ["GET", "HEAD"], paths: ["/**"] }] as const;

const pathGlob = v.pipe(
  v.string(),
  v.maxLength(1024, "Expected a path glob of at most 1024 characters"),
  v.regex(
    PATH_GLOB,
    "Expected a path glob: `/` and segments, each `*`, `**` or plain URL path characters (no empty segments, no spaces)",
  ),
  v.check(
    (glob) => !/(?:^|\/)\.{1,2}(?:\/|$)/.test(glob),
    "Expected a path glob without `.` or `..` segments",
  ),
);

/** A read-only list of 1 to 64 `item`s: `key` holds at least one `noun`, at most 64. */
const upTo64 = <const T extends v.GenericSchema>(
  item: T,
  key: string,
  noun: string,
  description: string,
) =>
  v.pipe(
    v.array(item),
    v.minLength(1, `Expected \`${key}\` to hold at least one ${noun}`),
    v.maxLength(64, `Expected \`${key}\` to hold at most 64 ${noun}s`),
    v.readonly(),
    v.description(description),
  );

/** One allow rule: a request passes when its method and its path both match. */
export const AllowRuleSchema = v.pipe(
  v.strictObject({
    methods: v.pipe(
      v.array(v.picklist(METHODS, `Expected a method: ${METHODS.join(", ")}`)),
      v.minLength(1, "Expected `methods` to name at least one method"),
      v.readonly(),
      v.description("HTTP methods the rule allows (GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS)."),
    ),
    paths: upTo64(
      pathGlob,
      "paths",
      "glob",
      "Path globs under the route, matched whole against the raw path after the route prefix (`/repos/acme/*/pulls/**`): `*` is one segment, `**` any number of segments (zero included).",
    ),
  }),
  v.readonly(),
);

/** A route's allow rules: one to 64. */
export const AllowRulesSchema = upTo64(
  AllowRuleSchema,
  "allow",
  "rule",
  "Only requests matching one of these rules pass; others are refused with 403 before the upstream is contacted.",
);

/** One allow rule of a route: methods and path globs. */
export type RouteAllow = v.InferOutput<typeof AllowRuleSchema>;
