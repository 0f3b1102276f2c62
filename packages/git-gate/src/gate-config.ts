/**
 * `gate.json`, what the hooks read at run time: its one schema, and the plan's types inferred
 * from it. `prepareGitGate` builds values of these types and `readGateConfig` parses with the
 * same schema, so the file the plan writes is exactly the file the hooks accept. Every object is
 * strict: an unknown key is an error, never silently dropped.
 */
import * as v from "valibot";

/** A non-empty value without control characters (paths, names, URLs, known_hosts lines). */
const text = v.pipe(v.string(), v.minLength(1), v.regex(/^[^\u0000-\u001f\u007f-\u009f]*$/));
const texts = v.pipe(v.array(text), v.readonly());

const PushAccessSchema = v.picklist(["never", "except-default", "always"]);

/** When the agent may force-push or delete: never, on every branch but the default, always. */
export type PushAccess = v.InferOutput<typeof PushAccessSchema>;

const entry = <const T extends v.ObjectEntries>(entries: T) =>
  v.pipe(v.strictObject(entries), v.readonly());

/**
 * How the gate authenticates to one upstream, one variant per source. Never a secret value:
 * paths and names only.
 */
const PlannedCredentialSchema = v.variant("source", [
  // `key: { provider: static }`: the operator's identity file.
  entry({ kind: v.literal("ssh-key"), identity: text, source: v.literal("static") }),
  // `key: { provider: gitea }`: a deploy key init registers through the Gitea API.
  entry({
    kind: v.literal("ssh-key"),
    identity: text,
    source: v.literal("gitea-deploy-key"),
    api: text,
    owner: text,
    name: text,
    tokenEnv: text,
  }),
  // `key: { provider: token }`: the token in `tokenEnv`, stored by init in `tokenFile`.
  entry({
    kind: v.literal("token"),
    tokenFile: text,
    username: text,
    source: v.literal("env"),
    tokenEnv: text,
  }),
  // `key: { provider: github-app }`: installation tokens from tokman (or one in `tokenFile`).
  entry({
    kind: v.literal("token"),
    tokenFile: text,
    username: text,
    source: v.literal("github-app"),
    app: text,
    /** The GitHub `owner/name` its tokens are asked for. */
    repository: text,
  }),
]);

/** How the gate authenticates to one upstream. Never a secret value: paths and names only. */
export type PlannedCredential = v.InferOutput<typeof PlannedCredentialSchema>;

const PlannedRepoSchema = entry({
  name: text,
  /** The bare mirror served by the gate: `<basePath>/<project>/<name>.git`. */
  mirror: text,
  upstream: text,
  transport: v.picklist(["ssh", "https", "http"]),
  /** The upstream's host (what its pinned key, if any, belongs to). */
  host: text,
  credential: PlannedCredentialSchema,
  /** The pinned host key as a known_hosts line (SSH upstreams), and the file that holds it. */
  knownHosts: v.exactOptional(entry({ file: text, lines: texts })),
  push: entry({ force_push: PushAccessSchema, deletes: PushAccessSchema }),
  /** What the agent uses: `<gateUrl>/<project>/<name>.git`. */
  gateUrl: text,
  /** Every spelling of the upstream the agent's gitconfig rewrites to `gateUrl`. */
  insteadOf: texts,
});

/** One repository of the plan. */
export type PlannedRepo = v.InferOutput<typeof PlannedRepoSchema>;

const PlannedScanSchema = entry({
  scanner: v.picklist(["auto", "gitleaks", "builtin"]),
  rules: v.pipe(
    v.array(
      entry({
        id: text,
        description: v.exactOptional(v.string()),
        regex: text,
        keywords: v.exactOptional(v.pipe(v.array(v.string()), v.readonly())),
      }),
    ),
    v.readonly(),
  ),
  allowlist: v.pipe(v.array(v.string()), v.readonly()),
  /**
   * A push holding a bigger object is refused (`git_gate.scan.max_blob_bytes`). Absent in a
   * gate.json written before the limit existed: the default applies.
   */
  maxBlobBytes: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1)), 256 * 1024 * 1024),
});

/** Scanner settings, from `git_gate.scan`. */
export type PlannedScan = v.InferOutput<typeof PlannedScanSchema>;

const seconds = v.pipe(v.number(), v.minValue(0));
const PlannedTimeoutsSchema = entry({
  connect: seconds,
  fetch: seconds,
  push: seconds,
  scan: seconds,
  lock: seconds,
});

/** Time limits of the gate's own git and scanner runs, in seconds. */
export type PlannedTimeouts = v.InferOutput<typeof PlannedTimeoutsSchema>;

/** The schema of `<stateDir>/gate.json` (`version: 1`, unknown keys are errors). */
export const GateConfigSchema = entry({
  version: v.literal(1),
  project: text,
  basePath: text,
  stateDir: text,
  repos: v.pipe(v.array(PlannedRepoSchema), v.readonly()),
  scan: PlannedScanSchema,
  timeouts: PlannedTimeoutsSchema,
});

/** What the hooks read at run time (`<stateDir>/gate.json`). */
export type GateConfig = v.InferOutput<typeof GateConfigSchema>;
