/**
 * `@bottle/tokman/client`: the one client of tokman's API, for the sidecars that take GitHub App
 * installation tokens from it (cred-proxy routes, git-gate upstreams). Renewal ahead of expiry,
 * single flight, `force_refresh` after a 401, answers capped and checked by a schema. A small
 * entry: it loads neither tokman's server nor its store nor a GitHub client.
 */

import { randomBytes } from "node:crypto";
import { type Logger, silentLogger } from "@bottle/log";
import { CREDENTIAL_SHAPE, checkHttpUrl, isCredentialValue } from "@bottle/manifest/policy";
import * as v from "valibot";
import { askTokman, type TokmanFetch } from "./client-answer.ts";
import { createTokenSource, MAX_MIN_TTL_S, type TokenSource } from "./client-source.ts";
import { TokmanError } from "./errors.ts";
import {
  LEVELS,
  PERMISSION,
  type Permissions,
  permissionsQuery,
  REPOSITORY_PART,
} from "./scope.ts";

/** The documented variable holding tokman's base URL, wherever a sidecar reads it. */
export const TOKMAN_URL_ENV = "BOTTLE_TOKMAN_URL";
/** The documented variable holding the caller's key at tokman (a secret). */
export const TOKMAN_KEY_ENV = "BOTTLE_TOKMAN_KEY";

/** A new caller key: `btk_` and 192 random bits (what `bottle-tokman new-key` prints). */
export function newCallerKey(): string {
  return `btk_${randomBytes(24).toString("base64url")}`;
}

/** Options of {@link createTokmanClient}. */
export interface TokmanClientOptions {
  /** tokman's base URL: https, or http to a loopback host. */
  readonly url: string;
  /** The caller's key at tokman (sent as `Authorization: Bearer`). */
  readonly key: string;
  /** Time allowed for one request to tokman (default 20 s). */
  readonly timeoutMs?: number;
  /** How to send a request (default `globalThis.fetch`); bring one for an extra CA. */
  readonly fetch?: TokmanFetch;
  readonly now?: () => Date;
  readonly logger?: Logger;
  /**
   * Turns the client's errors into the caller's own: sources reject with, and log the code of,
   * what it returns (default: the TokmanError itself).
   */
  readonly wrapError?: (error: TokmanError) => Error;
}

/** The token a source keeps: one repository, its permissions, its timing. */
export interface TokenScope {
  /** `owner/name`. */
  readonly repository: string;
  /** Down-scoped permissions; absent: all that the caller's policy grants. */
  readonly permissions?: Permissions | undefined;
  /** Lifetime a token must still have when fetched (tokman's `min_ttl`, seconds; default 600). */
  readonly minTtlSeconds?: number;
  /** A token closer than this to expiry is renewed before it is handed out (default 5 min). */
  readonly renewMarginMs?: number;
}

/** A client of one tokman, with one renewing source per scope. */
export interface TokmanClient {
  /** The source of `scope` (the same one for the same scope). Throws BTL_TOKMAN_CLIENT_CONFIG. */
  source(scope: TokenScope): TokenSource;
  /** A token of `scope` with at least its `min_ttl` left. */
  token(scope: TokenScope): Promise<string>;
  /** Stops every source and aborts the requests under way. */
  close(): void;
}

/** What is wrong with tokman's URL and caller key, by field; `{}` when both are fine. */
export interface TokmanSettingsProblems {
  readonly url?: string;
  readonly key?: string;
}

const settingsSchema = (names: { readonly url: string; readonly key: string }) =>
  v.object({
    url: v.pipe(
      v.string(`${names.url} is unset or empty`),
      v.nonEmpty(`${names.url} is unset or empty`),
      v.rawCheck(({ dataset, addIssue }) => {
        const problem = dataset.typed ? checkHttpUrl(dataset.value) : undefined;
        if (problem) addIssue({ message: `Expected ${names.url} ${problem}` });
      }),
    ),
    key: v.pipe(
      v.string(`${names.key} is unset or empty`),
      v.nonEmpty(`${names.key} is unset or empty`),
      v.check((key: string) => isCredentialValue(key), `${names.key} is not ${CREDENTIAL_SHAPE}`),
    ),
  });

const integer = (what: string, min: number, max: number) => {
  const message = `Expected \`${what}\` to be an integer from ${min} to ${max}`;
  return v.pipe(
    v.number(message),
    v.integer(message),
    v.minValue(min, message),
    v.maxValue(max, message),
  );
};

const Timing = v.object({ timeoutMs: v.optional(integer("timeoutMs", 1, 600_000), 20_000) });

const Scope = v.pipe(
  v.object({
    repository: v.pipe(
      v.string(),
      v.check((name) => {
        const [owner = "", repo = "", more] = name.split("/");
        return (
          more === undefined &&
          REPOSITORY_PART.test(owner) &&
          REPOSITORY_PART.test(repo) &&
          !name.includes("..")
        );
      }, "Expected `repository` to be a GitHub `owner/name`"),
    ),
    permissions: v.optional(
      v.record(v.pipe(v.string(), v.regex(PERMISSION)), v.picklist(LEVELS), "Expected permissions"),
    ),
    minTtlSeconds: v.optional(integer("minTtlSeconds", 60, MAX_MIN_TTL_S), 600),
    renewMarginMs: v.optional(integer("renewMarginMs", 0, MAX_MIN_TTL_S * 1000), 300_000),
  }),
  v.check(
    (scope) => scope.renewMarginMs < scope.minTtlSeconds * 1000,
    "Expected `renewMarginMs` to be below `minTtlSeconds` × 1000 (else tokens go out unrenewed)",
  ),
);

/**
 * Checks tokman's URL and key (`names` says what to call them: an option or a variable).
 * Messages name the setting, never its value.
 */
export function checkTokmanSettings(
  settings: { readonly url?: string | undefined; readonly key?: string | undefined },
  names: { readonly url: string; readonly key: string } = { url: "`url`", key: "`key`" },
): TokmanSettingsProblems {
  const result = v.safeParse(settingsSchema(names), {
    url: settings.url ?? "",
    key: settings.key ?? "",
  });
  const problems: { url?: string; key?: string } = {};
  for (const issue of result.issues ?? []) {
    const field = issue.path?.[0]?.key;
    if ((field === "url" || field === "key") && problems[field] === undefined)
      problems[field] = issue.message;
  }
  return problems;
}

/**
 * Creates a client of the tokman at `url`; nothing is fetched until a source's first `get()`.
 * Throws TokmanError BTL_TOKMAN_CLIENT_CONFIG naming the bad setting, never its value. Sources
 * reject with BTL_TOKMAN_UNREACHABLE, BTL_TOKMAN_BAD_ANSWER or the code tokman answered with
 * (through `wrapError` when given).
 */
export function createTokmanClient(options: TokmanClientOptions): TokmanClient {
  const problems = checkTokmanSettings(options);
  const timing = v.safeParse(Timing, { timeoutMs: options.timeoutMs });
  const messages = [problems.url, problems.key, ...(timing.issues ?? []).map((i) => i.message)];
  const found = messages.filter((m) => m !== undefined);
  if (found.length > 0 || !timing.success)
    throw new TokmanError("BTL_TOKMAN_CLIENT_CONFIG", found.join("; "));
  const { timeoutMs } = timing.output;
  const base = options.url.replace(/\/+$/, "");
  const { key } = options;
  const send: TokmanFetch = options.fetch ?? (async (url, init) => fetch(url, init));
  const now = () => (options.now ? options.now().getTime() : Date.now());
  const wrap = options.wrapError ?? ((error: TokmanError) => error);
  const logger = options.logger ?? silentLogger;
  const aborter = new AbortController();
  const sources = new Map<string, TokenSource>();

  function source(scope: TokenScope): TokenSource {
    const parsed = v.safeParse(Scope, scope);
    if (!parsed.success)
      throw new TokmanError(
        "BTL_TOKMAN_CLIENT_CONFIG",
        parsed.issues.map((issue) => issue.message).join("; "),
      );
    const { repository, permissions, minTtlSeconds, renewMarginMs } = parsed.output;
    const query = new URLSearchParams();
    if (permissions !== undefined) query.set("permissions", permissionsQuery(permissions));
    const id = `${repository.toLowerCase()}?${query}&${minTtlSeconds}&${renewMarginMs}`;
    let found = sources.get(id);
    if (found !== undefined) return found;
    const [owner = "", name = ""] = repository.split("/");
    const target = `${base}/api/${encodeURIComponent(owner)}/${encodeURIComponent(name)}`;
    found = createTokenSource({
      repository,
      minTtlSeconds,
      renewMarginMs,
      now,
      logger,
      closedError: () =>
        wrap(
          new TokmanError("BTL_TOKMAN_UNREACHABLE", `the token source of ${repository} is closed`),
        ),
      async ask(minTtl, force) {
        const params = new URLSearchParams(query);
        params.set("min_ttl", String(minTtl));
        if (force) params.set("force_refresh", "1");
        try {
          return await askTokman({
            fetch: send,
            url: `${target}?${params}`,
            key,
            repository,
            signal: AbortSignal.any([aborter.signal, AbortSignal.timeout(timeoutMs)]),
            now,
          });
        } catch (error) {
          throw wrap(error as TokmanError);
        }
      },
    });
    sources.set(id, found);
    return found;
  }

  return {
    source,
    token: async (scope) => source(scope).get(),
    close() {
      for (const found of sources.values()) found.close();
      aborter.abort(new Error("tokman client closed"));
    },
  };
}

// What callers of the client match on and type with, from the files that define them.
export type { TokmanFetch } from "./client-answer.ts";
export type { TokenSource } from "./client-source.ts";
export type { TokmanErrorCode } from "./errors.ts";
export { codes, TokmanError } from "./errors.ts";
export type { Level, Permissions } from "./scope.ts";
