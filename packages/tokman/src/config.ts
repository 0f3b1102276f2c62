/**
 * tokman's configuration: apps (id or client id, private key file, API base), callers (a key
 * digest and a policy), timing and the optional store. Validated once, then frozen.
 */
import { closeSync, fstatSync, openSync, readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { checkHttpUrl, formatIssues } from "@bottle/manifest/policy";
import * as v from "valibot";
import { parse as parseYaml } from "yaml";
import { TokmanError } from "./errors.ts";
import { LEVELS, PERMISSION, type Permissions } from "./scope.ts";

export type { Level, Permissions } from "./scope.ts";
export { LEVELS } from "./scope.ts";

const NAME = /^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,62}[A-Za-z0-9_-])?$/;
const PATTERN = /^[A-Za-z0-9*][A-Za-z0-9_.*-]{0,99}\/[A-Za-z0-9_.*-]{1,100}$/;

const permissions = v.record(
  v.pipe(v.string(), v.regex(PERMISSION, "Expected a permission name such as `contents`")),
  v.picklist(LEVELS, "Expected `read`, `write` or `admin`"),
);
const apiUrl = v.pipe(
  v.string(),
  v.rawCheck(({ dataset, addIssue }) => {
    const problem = dataset.typed ? checkHttpUrl(dataset.value) : undefined;
    if (problem) addIssue({ message: `Expected the API URL ${problem}` });
  }),
);

const ConfigSchema = v.strictObject({
  version: v.literal(1),
  apps: v.record(
    v.pipe(v.string(), v.regex(NAME, "Expected an app name")),
    v.strictObject({
      app_id: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1))),
      client_id: v.optional(
        v.pipe(v.string(), v.regex(/^Iv[0-9A-Za-z.]{4,64}$/, "Expected a client id (`Iv…`)")),
      ),
      private_key: v.pipe(v.string(), v.minLength(1)),
      api: v.optional(apiUrl, "https://api.github.com"),
    }),
  ),
  callers: v.record(
    v.pipe(v.string(), v.regex(NAME, "Expected a caller name")),
    v.strictObject({
      key_sha256: v.pipe(
        v.string(),
        v.regex(
          /^[0-9a-f]{64}$/,
          "Expected the SHA-256 of the caller's key (64 hex digits), never the key",
        ),
      ),
      app: v.pipe(v.string(), v.regex(NAME)),
      repositories: v.pipe(
        v.array(v.pipe(v.string(), v.regex(PATTERN, "Expected `owner/name` (with `*` wildcards)"))),
        v.minLength(1, "Expected at least one repository pattern"),
      ),
      permissions: v.pipe(
        permissions,
        v.check((p) => Object.keys(p).length > 0, "Expected at least one permission"),
      ),
    }),
  ),
  renew_margin: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(3000)), 600),
  not_installed_ttl: v.optional(
    v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(3600)),
    60,
  ),
  store: v.optional(
    v.strictObject({
      sqlite: v.pipe(v.string(), v.minLength(1)),
      key_file: v.pipe(v.string(), v.minLength(1)),
    }),
  ),
});

/** A configured app, its private key read. */
export interface AppConfig {
  readonly name: string;
  /** The JWT `iss`: the app id, or the client id when given. */
  readonly issuer: string;
  readonly privateKey: string;
  readonly api: string;
}

/** A configured caller. */
export interface CallerConfig {
  readonly name: string;
  readonly keySha256: string;
  readonly app: string;
  readonly repositories: readonly string[];
  readonly permissions: Permissions;
}

/** The validated configuration. */
export interface TokmanConfig {
  readonly apps: ReadonlyMap<string, AppConfig>;
  readonly callers: readonly CallerConfig[];
  readonly renewMarginMs: number;
  readonly notInstalledTtlMs: number;
  readonly store?: { readonly sqlite: string; readonly key: Buffer };
}

/**
 * Parses a configuration (YAML or JSON text); paths resolve against `baseDir`. Reads the private
 * keys and the store key, refusing any that group or others can read. Throws BTL_TOKMAN_CONFIG.
 */
export function parseConfig(text: string, baseDir: string): TokmanConfig {
  let data: unknown;
  try {
    data = parseYaml(text);
  } catch (error) {
    throw new TokmanError(
      "BTL_TOKMAN_CONFIG",
      `the configuration is not valid YAML or JSON: ${(error as Error).message}`,
      { cause: error },
    );
  }
  const result = v.safeParse(ConfigSchema, data);
  if (!result.success) {
    throw new TokmanError(
      "BTL_TOKMAN_CONFIG",
      `invalid configuration: ${formatIssues(result.issues)}`,
    );
  }
  const raw = result.output;
  const path = (p: string) => (isAbsolute(p) ? p : resolve(baseDir, p));
  const apps = new Map<string, AppConfig>();
  for (const [name, app] of Object.entries(raw.apps)) {
    const issuer = app.client_id ?? (app.app_id === undefined ? undefined : String(app.app_id));
    if (issuer === undefined) {
      throw new TokmanError(
        "BTL_TOKMAN_CONFIG",
        `apps.${name}: Expected \`app_id\` or \`client_id\``,
      );
    }
    const privateKey = readSecretFile(path(app.private_key), `apps.${name}.private_key`).toString(
      "utf8",
    );
    if (!/-----BEGIN (?:RSA )?PRIVATE KEY-----/.test(privateKey)) {
      throw new TokmanError(
        "BTL_TOKMAN_CONFIG",
        `apps.${name}.private_key: Expected a PEM private key`,
      );
    }
    apps.set(name, Object.freeze({ name, issuer, privateKey, api: app.api.replace(/\/$/, "") }));
  }
  const callers = Object.entries(raw.callers).map(([name, caller]) => {
    if (!apps.has(caller.app)) {
      throw new TokmanError(
        "BTL_TOKMAN_CONFIG",
        `callers.${name}.app: names \`${caller.app}\`, which apps does not declare`,
      );
    }
    return Object.freeze({
      name,
      keySha256: caller.key_sha256,
      app: caller.app,
      repositories: Object.freeze([...caller.repositories]),
      permissions: Object.freeze({ ...caller.permissions }),
    });
  });
  const digests = new Set(callers.map((c) => c.keySha256));
  if (digests.size !== callers.length) {
    throw new TokmanError("BTL_TOKMAN_CONFIG", "two callers share one key");
  }
  let store: TokmanConfig["store"];
  if (raw.store) {
    store = { sqlite: path(raw.store.sqlite), key: readStoreKey(path(raw.store.key_file)) };
  }
  return Object.freeze({
    apps,
    callers: Object.freeze(callers),
    renewMarginMs: raw.renew_margin * 1000,
    notInstalledTtlMs: raw.not_installed_ttl * 1000,
    ...(store ? { store } : {}),
  });
}

/** Reads and parses a configuration file. Throws BTL_TOKMAN_CONFIG. */
export function loadConfig(file: string): TokmanConfig {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw new TokmanError("BTL_TOKMAN_CONFIG", `cannot read ${file}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return parseConfig(text, dirname(resolve(file)));
}

/** SECURITY: a key file that group or others can read has leaked to every local user. */
function readSecretFile(file: string, what: string): Buffer {
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch (error) {
    throw new TokmanError("BTL_TOKMAN_CONFIG", `${what}: cannot read ${file}`, { cause: error });
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile() || (stat.mode & 0o077) !== 0) {
      throw new TokmanError(
        "BTL_TOKMAN_CONFIG",
        `${what}: ${file} must be a regular file readable by its owner only (chmod 600)`,
      );
    }
    return readFileSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** The store key: 32 bytes, as raw bytes, 64 hex digits or base64. */
function readStoreKey(file: string): Buffer {
  const raw = readSecretFile(file, "store.key_file");
  const text = raw.toString("utf8").trim();
  let key: Buffer = raw;
  if (/^[0-9a-fA-F]{64}$/.test(text)) key = Buffer.from(text, "hex");
  else if (/^[A-Za-z0-9+/]{43}=?$/.test(text)) key = Buffer.from(text, "base64");
  if (key.length !== 32) {
    throw new TokmanError(
      "BTL_TOKMAN_CONFIG",
      "store.key_file: Expected 32 bytes (raw, 64 hex digits or base64)",
    );
  }
  return key;
}

const patternCache = new WeakMap<CallerConfig, readonly RegExp[]>();

/** The caller's patterns as regular expressions, compiled once per caller. */
function patternsOf(caller: CallerConfig): readonly RegExp[] {
  let compiled = patternCache.get(caller);
  if (compiled === undefined) {
    compiled = caller.repositories.map(
      (pattern) =>
        new RegExp(
          `^${pattern
            .toLowerCase()
            .split("*")
            .map((part) => part.replace(/[.]/g, "\\."))
            .join("[a-z0-9_.-]*")}$`,
        ),
    );
    patternCache.set(caller, compiled);
  }
  return compiled;
}

/** True when `repository` (`owner/name`) matches one of the caller's patterns (case-insensitive). */
export function coversRepository(caller: CallerConfig, owner: string, name: string): boolean {
  const target = `${owner}/${name}`.toLowerCase();
  return patternsOf(caller).some((regex) => regex.test(target));
}

/** The permissions of a request: the policy's, or a subset of them. Undefined when not a subset. */
export function grantedPermissions(
  caller: CallerConfig,
  requested: Permissions | undefined,
): Permissions | undefined {
  if (requested === undefined) return caller.permissions;
  for (const [name, level] of Object.entries(requested)) {
    const allowed = caller.permissions[name];
    if (allowed === undefined || LEVELS.indexOf(level) > LEVELS.indexOf(allowed)) return undefined;
  }
  return requested;
}
