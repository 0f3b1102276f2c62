/**
 * The manifest schema (valibot). Every key carries its description and default here, the one
 * place they are defined; `schema.json` is generated from it. Checks that need more than one
 * field (references, conflicts, host keys, files) live in `rules.ts`.
 */
import * as v from "valibot";
import { HEADER_NAME } from "./headers.ts";
import { checkHttpUrl } from "./urls.ts";

/** Environment variable names: what `token_ref` and `agent.env` keys look like. */
export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
/** Project names: lowercase letters, digits and inner hyphens, at most 63 characters. */
export const SLUG = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
/** Repository and GitHub App names. */
export const NAME = /^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,62}[A-Za-z0-9_-])?$/;
/** Route paths: `/segment/` or `/a/b/`; segments never start with a dot. */
export const ROUTE_PATH = /^\/(?:[A-Za-z0-9_-][A-Za-z0-9._-]{0,62}\/){1,4}$/;
/** A GitHub repository, `owner/name` (the names tokman accepts). */
export const REPOSITORY = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\/[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;
/** A GitHub App permission name (`contents`, `pull_requests`). */
export const PERMISSION = /^[a-z][a-z_]{0,63}$/;
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
/** No control characters (C0, DEL, C1) anywhere: values end up in configs and headers. */
const PRINTABLE = /^[^\u0000-\u001f\u007f-\u009f]*$/;

const text = (what: string, max = 256) =>
  v.pipe(
    v.string(),
    v.minLength(1, `Expected ${what} to be a non-empty string`),
    v.maxLength(max, `Expected ${what} to be at most ${max} characters`),
    v.regex(PRINTABLE, `Expected ${what} to have no control characters`),
  );

/** SECURITY: values that are tokens, not variable names (a pasted secret must not be echoed). */
const TOKEN_LIKE = /^(?:gh[opusr]_|github_pat_|npm_|glpat-|bottle_gt_)|^.{65,}$/;

const envName = v.pipe(
  v.string(),
  v.regex(ENV_NAME, "Expected an environment variable name (letters, digits, `_`; not a value)"),
  v.check(
    (name) => !TOKEN_LIKE.test(name),
    "Expected the name of an environment variable, got what looks like a token value (remove it from the manifest and rotate it)",
  ),
  v.description("Name of a host environment variable that holds the secret (never the value)."),
);

const httpUrl = (what: string) =>
  v.pipe(
    v.string(),
    v.rawCheck(({ dataset, addIssue }) => {
      if (!dataset.typed) return;
      const problem = checkHttpUrl(dataset.value);
      if (problem) addIssue({ message: `Expected ${what} ${problem}` });
    }),
  );

const filePath = (what: string) =>
  v.pipe(
    text(what, 4096),
    v.description(`${what}: absolute, \`~/\`-relative or relative to the manifest's directory.`),
  );

const access = (what: string) =>
  v.optional(
    v.pipe(
      v.picklist(["never", "except-default", "always"]),
      v.description(
        `When the agent may ${what}: never, on every branch but the default, or always.`,
      ),
    ),
    "except-default",
  );

const Agent = v.strictObject({
  command: v.pipe(
    v.array(text("a command word", 4096)),
    v.minLength(1, "Expected `command` to have at least one word"),
    v.description("The agent's command line, as an argument array (no shell)."),
  ),
  workdir: v.optional(
    v.pipe(
      v.string(),
      v.maxLength(1024, "Expected `workdir` to be at most 1024 characters"),
      v.regex(/^\/[^\u0000-\u001f\u007f-\u009f]*$/, "Expected `workdir` to be an absolute path"),
      v.description("Working directory of the agent inside the bottle."),
    ),
    "/workspace",
  ),
  binds: v.optional(
    v.pipe(
      v.array(
        v.pipe(
          v.string(),
          v.maxLength(1024, "Expected a bind to be at most 1024 characters"),
          v.regex(/^\/[^\u0000-\u001f\u007f-\u009f]*$/, "Expected a bind to be an absolute path"),
        ),
      ),
      v.maxLength(64, "Expected at most 64 binds"),
      v.description(
        "Host paths bound read-only into the sandbox at the same path: where the agent's own program is installed (sandbox backend).",
      ),
    ),
    [],
  ),
  image: v.optional(
    v.pipe(
      text("`image`", 512),
      v.description("Container image of the agent (container backends only)."),
    ),
  ),
  env: v.optional(
    v.pipe(
      v.record(
        v.pipe(v.string(), v.regex(ENV_NAME, "Expected an environment variable name")),
        text("a value", 8192),
      ),
      v.description("Non-secret environment of the agent. Credentials belong in `cred_proxy`."),
    ),
    {},
  ),
});

const StaticKey = v.strictObject({
  provider: v.literal("static"),
  identity: filePath("SSH private key used to reach the upstream"),
});
const GiteaKey = v.strictObject({
  provider: v.literal("gitea"),
  api: v.pipe(
    httpUrl("`api`"),
    v.description("Base URL of the Gitea instance (e.g. https://gitea.example)."),
  ),
  token_ref: envName,
});
const GithubAppKey = v.strictObject({
  provider: v.literal("github-app"),
  app: v.pipe(v.string(), v.regex(NAME, "Expected the name of an entry in `github_apps`")),
});
const TokenKey = v.strictObject({
  provider: v.literal("token"),
  token_ref: envName,
  username: v.optional(
    v.pipe(text("`username`", 128), v.description("Basic-auth user name sent with the token.")),
    "x-access-token",
  ),
});

const Repo = v.strictObject({
  url: v.pipe(
    text("`url`", 2048),
    v.description("Upstream: ssh://[user@]host[:port]/path, user@host:path, or https://host/path."),
  ),
  key: v.pipe(
    v.variant("provider", [StaticKey, GiteaKey, GithubAppKey, TokenKey]),
    v.description("The credential the gate uses to reach the upstream (the agent never sees it)."),
  ),
  host_key: v.optional(
    v.pipe(
      text("`host_key`", 16384),
      v.description(
        "Pinned OpenSSH public host key (`ssh-ed25519 AAAA…`); required for SSH upstreams.",
      ),
    ),
  ),
  push: v.optional(
    v.strictObject({
      force_push: access("force-push"),
      deletes: access("delete branches or tags"),
    }),
    { force_push: "except-default", deletes: "except-default" },
  ),
});

const ScanRule = v.strictObject({
  id: v.pipe(
    v.string(),
    v.regex(/^[a-z0-9][a-z0-9-]{0,63}$/, "Expected a rule id (lowercase, digits, hyphens)"),
  ),
  description: v.optional(text("`description`", 512)),
  regex: v.pipe(
    text("`regex`", 4096),
    v.description("JavaScript regular expression of the secret."),
  ),
  keywords: v.optional(v.array(text("a keyword", 128))),
});

const GitGate = v.strictObject({
  user: v.optional(
    v.strictObject({
      name: text("`name`", 256),
      email: v.pipe(text("`email`", 256), v.email("Expected `email` to be an e-mail address")),
    }),
    { name: "bottle agent", email: "agent@bottle.invalid" },
  ),
  repos: v.pipe(
    v.record(
      v.pipe(
        v.string(),
        v.regex(NAME, "Expected a repository name (letters, digits, `.`, `_`, `-`)"),
      ),
      Repo,
    ),
    v.description("Repositories served to the agent as <gate>/<project>/<name>.git."),
  ),
  scan: v.optional(
    v.strictObject({
      scanner: v.optional(
        v.pipe(
          v.picklist(["auto", "gitleaks", "builtin"]),
          v.description("auto: gitleaks when on PATH, else the built-in scanner."),
        ),
        "auto",
      ),
      rules: v.optional(v.array(ScanRule), []),
      max_blob_bytes: v.optional(
        v.pipe(
          v.number(),
          v.integer("Expected `max_blob_bytes` to be a whole number of bytes"),
          v.minValue(1024, "Expected `max_blob_bytes` to be at least 1024"),
          v.maxValue(2 ** 40, "Expected `max_blob_bytes` to be at most 1 TiB"),
          v.description(
            "A push holding a file (blob) larger than this is refused: the scanner reads every blob in full, or refuses it (default 256 MiB).",
          ),
        ),
        256 * 1024 * 1024,
      ),
      allowlist: v.optional(
        v.array(
          v.strictObject({
            fingerprint: text("`fingerprint`", 512),
            reason: text("`reason`", 1024),
          }),
        ),
        [],
      ),
    }),
    { scanner: "auto", rules: [], max_blob_bytes: 256 * 1024 * 1024, allowlist: [] },
  ),
});

const Auth = v.union(
  [
    v.strictObject({ scheme: v.picklist(["Bearer", "token"]) }),
    v.strictObject({ scheme: v.literal("Basic"), username: text("`username`", 128) }),
    v.strictObject({
      header: v.pipe(v.string(), v.regex(HEADER_NAME, "Expected an HTTP header name")),
    }),
  ],
  "Expected `auth` to be { scheme: Bearer | token }, { scheme: Basic, username }, or { header: NAME }",
);

export const ROLES = ["anthropic-base-url", "npm-registry", "git-insteadof"] as const;
/** Roles only one route may hold. */
export const EXCLUSIVE_ROLES: ReadonlySet<string> = new Set(["anthropic-base-url", "npm-registry"]);

/** A route's token from a GitHub App: an installation token that tokman mints and renews. */
const GithubAppToken = v.strictObject({
  app: v.pipe(
    v.string(),
    v.regex(NAME, "Expected the name of an entry in `github_apps`"),
    v.description("The GitHub App (a key of `github_apps`) whose installation token is injected."),
  ),
  repository: v.pipe(
    v.string(),
    v.regex(REPOSITORY, "Expected `repository` to be a GitHub `owner/name`"),
    v.check(
      (name) => !name.includes("..") && !/\.git$/i.test(name),
      "Expected `repository` to be a GitHub `owner/name` without `..` or a .git suffix",
    ),
    v.description("The repository the token is scoped to (`owner/name`)."),
  ),
  permissions: v.optional(
    v.pipe(
      v.record(
        v.pipe(
          v.string(),
          v.regex(PERMISSION, "Expected a permission name such as `contents` or `pull_requests`"),
        ),
        v.picklist(["read", "write"]),
      ),
      v.minEntries(1, "Expected at least one permission"),
      v.description(
        "Down-scoped permissions, name → read | write (default: all that tokman's policy grants the proxy).",
      ),
    ),
  ),
});

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

/** One allow rule: a request passes when its method and its path both match. */
const AllowRule = v.strictObject({
  methods: v.pipe(
    v.array(v.picklist(METHODS)),
    v.minLength(1, "Expected `methods` to name at least one method"),
    v.description("HTTP methods the rule allows (GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS)."),
  ),
  paths: v.pipe(
    v.array(pathGlob),
    v.minLength(1, "Expected `paths` to hold at least one glob"),
    v.maxLength(64, "Expected `paths` to hold at most 64 globs"),
    v.description(
      "Path globs under the route, matched whole against the raw path after the route prefix (`/repos/acme/*/pulls/**`): `*` is one segment, `**` any number of segments (zero included).",
    ),
  ),
});

const Route = v.pipe(
  v.strictObject({
    path: v.pipe(v.string(), v.regex(ROUTE_PATH, "Expected `path` to look like `/segment/`")),
    upstream: v.pipe(
      httpUrl("`upstream`"),
      v.description("Upstream origin (and base path); https, or http for loopback."),
    ),
    auth: Auth,
    token_ref: v.optional(envName),
    github_app: v.optional(
      v.pipe(
        GithubAppToken,
        v.description(
          "Instead of `token_ref`: inject a GitHub App installation token from tokman, renewed before it expires.",
        ),
      ),
    ),
    roles: v.optional(v.array(v.picklist(ROLES)), []),
    git_push: v.optional(
      v.pipe(
        v.boolean(),
        v.description(
          "Let git pushes (`git-receive-pack`) through this route; refused by default. Never for an upstream the git gate serves: pushes go through the gate, where they are scanned.",
        ),
      ),
      false,
    ),
    read_only: v.optional(
      v.pipe(
        v.boolean(),
        v.description(
          'Only GET and HEAD requests pass (the same as `allow: [{ methods: [GET, HEAD], paths: ["/**"] }]`); cannot be combined with `allow`.',
        ),
      ),
      false,
    ),
    allow: v.optional(
      v.pipe(
        v.array(AllowRule),
        v.minLength(1, "Expected `allow` to hold at least one rule"),
        v.maxLength(64, "Expected `allow` to hold at most 64 rules"),
        v.description(
          "Only requests matching one of these rules pass; others are refused with 403 before the upstream is contacted.",
        ),
      ),
    ),
  }),
  // Exactly one source of the token; checked with a clear message in rules.ts.
  v.metadata({ oneOf: [{ required: ["token_ref"] }, { required: ["github_app"] }] }),
);

const Token = v.variant("kind", [
  v.strictObject({
    kind: v.literal("anthropic"),
    token_ref: envName,
    auth: v.pipe(
      v.picklist(["api-key", "oauth"]),
      v.description("api-key: sent as `x-api-key`; oauth: sent as `Authorization: Bearer`."),
    ),
    upstream: v.optional(httpUrl("`upstream`"), "https://api.anthropic.com"),
  }),
  v.strictObject({
    kind: v.literal("github"),
    token_ref: envName,
    api: v.optional(httpUrl("`api`"), "https://api.github.com"),
    web: v.optional(httpUrl("`web`"), "https://github.com"),
  }),
  v.strictObject({
    kind: v.literal("gitea"),
    token_ref: envName,
    url: httpUrl("`url`"),
  }),
  v.strictObject({
    kind: v.literal("npm"),
    token_ref: envName,
    registry: v.optional(httpUrl("`registry`"), "https://registry.npmjs.org"),
  }),
]);

const GithubApp = v.strictObject({
  app_id: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1))),
  client_id: v.optional(
    v.pipe(
      v.string(),
      v.regex(/^Iv[0-9A-Za-z.]{4,64}$/, "Expected a GitHub App client id (`Iv…`)"),
    ),
  ),
  private_key: filePath("The app's private key (PEM)"),
  api: v.optional(httpUrl("`api`"), "https://api.github.com"),
});

/** The whole manifest. */
export const ManifestSchema = v.strictObject({
  $schema: v.optional(v.string()),
  version: v.literal(1),
  name: v.pipe(
    v.string(),
    v.regex(
      SLUG,
      "Expected `name` to be a slug: lowercase letters, digits and inner hyphens, at most 63",
    ),
    v.description("The project: gate tokens are scoped to it."),
  ),
  agent: Agent,
  git_gate: v.optional(GitGate),
  cred_proxy: v.optional(
    v.strictObject({
      routes: v.optional(v.array(Route), []),
      tokens: v.optional(v.array(Token), []),
    }),
    { routes: [], tokens: [] },
  ),
  github_apps: v.optional(
    v.record(v.pipe(v.string(), v.regex(NAME, "Expected an app name")), GithubApp),
    {},
  ),
});

/** A validated manifest (paths resolved, defaults applied, deeply frozen). */
export type Manifest = v.InferOutput<typeof ManifestSchema>;
export type RepoSpec = v.InferOutput<typeof Repo>;
export type RouteSpec = v.InferOutput<typeof Route>;
export type GithubAppTokenSpec = v.InferOutput<typeof GithubAppToken>;
export type TokenSpec = v.InferOutput<typeof Token>;
export type RouteAuth = v.InferOutput<typeof Auth>;
/** One allow rule of a route: methods and path globs. */
export type RouteAllow = {
  readonly methods: readonly (typeof METHODS)[number][];
  readonly paths: readonly string[];
};
export type Role = (typeof ROLES)[number];
