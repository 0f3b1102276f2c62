/**
 * The broker: policy check, installation lookup (cached; "not installed" cached briefly), one
 * cache entry per app + installation + repository + permissions, renewal ahead of expiry, and
 * single flight (concurrent requests for one key share one mint). Audited: one line per
 * issuance and per refusal, with the token's SHA-256 prefix, never the token.
 */
import { createHash } from "node:crypto";
import { isBottleError } from "@bottle/errors";
import { type Logger, silentLogger } from "@bottle/log";
import {
  type CallerConfig,
  coversRepository,
  grantedPermissions,
  type Permissions,
  type TokmanConfig,
} from "./config.ts";
import { TokmanError } from "./errors.ts";
import type { GitHubApp } from "./github.ts";
import type { StoredToken, TokenStore } from "./store.ts";

/** One request for a token. */
export interface TokenRequest {
  readonly caller: CallerConfig;
  readonly owner: string;
  readonly repo: string;
  /** A subset of the caller's policy (default: the whole policy). */
  readonly permissions?: Permissions;
  /** Seconds the token must still be valid (default 0; at most 3000). */
  readonly minTtl?: number;
  /** Mint anew even when a cached token would do (the caller saw a 401). */
  readonly forceRefresh?: boolean;
}

/** A token handed to a caller. */
export interface IssuedToken {
  readonly token: string;
  readonly expiresAt: Date;
  readonly permissions: Permissions;
  readonly cached: boolean;
}

/** Counters for `/metrics`. */
export interface BrokerMetrics {
  mints: number;
  cacheHits: number;
  errors: Map<string, number>;
}

/** The broker. */
export interface Broker {
  issue(request: TokenRequest): Promise<IssuedToken>;
  /** Revokes (upstream, then from the cache) the caller's cached token for the repository. */
  revoke(request: Omit<TokenRequest, "minTtl" | "forceRefresh">): Promise<boolean>;
  /**
   * Revokes (upstream, then from the store) every token the store holds that has not expired;
   * resolves to how many GitHub revoked. A failure is logged and the token dropped all the same.
   */
  revokeAll(): Promise<number>;
  readonly metrics: BrokerMetrics;
}

/** Options of {@link createBroker}. */
export interface BrokerOptions {
  readonly config: TokmanConfig;
  readonly apps: ReadonlyMap<string, GitHubApp>;
  readonly store: TokenStore;
  readonly now?: () => Date;
  /** Receives the audit lines. */
  readonly logger?: Logger;
}

const INSTALLATION_TTL_MS = 60 * 60 * 1000;
/** A token closer than this to expiry is never handed out, whatever `min_ttl` says. */
const MIN_REMAINING_MS = 60 * 1000;
export const MAX_MIN_TTL = 3000;

type Installation = { id: number; suspended: boolean } | { notInstalled: TokmanError };

/** The SHA-256 prefix that names a token in logs. */
export function tokenDigest(token: string): string {
  return `sha256:${createHash("sha256").update(token).digest("hex").slice(0, 16)}`;
}

/** Creates the broker. */
export function createBroker(options: BrokerOptions): Broker {
  const { config, apps, store } = options;
  const now = options.now ?? (() => new Date());
  const log = options.logger ?? silentLogger;
  const installations = new Map<string, { value: Installation; until: number }>();
  const lookups = new Map<string, Promise<Installation>>();
  const mints = new Map<string, Promise<StoredToken>>();
  const metrics: BrokerMetrics = { mints: 0, cacheHits: 0, errors: new Map() };
  // The audit digest of each cached token, computed once rather than on every answer.
  const digests = new Map<string, { token: string; digest: string }>();
  const digestOf = (key: string, token: string): string => {
    const known = digests.get(key);
    if (known?.token === token) return known.digest;
    const digest = tokenDigest(token);
    digests.set(key, { token, digest });
    return digest;
  };

  function appOf(caller: CallerConfig): GitHubApp {
    const app = apps.get(caller.app);
    if (app === undefined)
      throw new TokmanError("BTL_TOKMAN_CONFIG", `caller ${caller.name} names an unknown app`);
    return app;
  }

  async function installation(
    app: GitHubApp,
    owner: string,
    repo: string,
  ): Promise<{ id: number }> {
    const key = `${app.name}|${owner}/${repo}`.toLowerCase();
    const cached = installations.get(key);
    let value: Installation;
    if (cached && cached.until > now().getTime()) {
      value = cached.value;
    } else {
      let pending = lookups.get(key);
      if (pending === undefined) {
        pending = app
          .installation(owner, repo)
          .then(
            (found): Installation => found,
            (error: unknown): Installation => {
              if (isBottleError(error, "BTL_TOKMAN_NOT_INSTALLED"))
                return { notInstalled: error as TokmanError };
              throw error;
            },
          )
          .then((found) => {
            const ttl = "notInstalled" in found ? config.notInstalledTtlMs : INSTALLATION_TTL_MS;
            installations.set(key, { value: found, until: now().getTime() + ttl });
            return found;
          })
          .finally(() => lookups.delete(key));
        lookups.set(key, pending);
      }
      value = await pending;
    }
    if ("notInstalled" in value) {
      throw new TokmanError(
        "BTL_TOKMAN_NOT_INSTALLED",
        `app ${app.name} is not installed on ${owner}/${repo}`,
      );
    }
    if (value.suspended)
      throw new TokmanError(
        "BTL_TOKMAN_SUSPENDED",
        `the installation on ${owner}/${repo} is suspended`,
      );
    return value;
  }

  function cacheKey(
    app: GitHubApp,
    installationId: number,
    repo: string,
    permissions: Permissions,
  ): string {
    const perms = Object.entries(permissions)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([name, level]) => `${name}:${level}`)
      .join(",");
    return `${app.name}|${installationId}|${repo.toLowerCase()}|${perms}`;
  }

  function refuse(request: Pick<TokenRequest, "caller" | "owner" | "repo">, error: unknown): never {
    const code = isBottleError(error) ? error.code : "BTL_INTERNAL";
    metrics.errors.set(code, (metrics.errors.get(code) ?? 0) + 1);
    log.warn(
      {
        audit: "refused",
        caller: request.caller.name,
        repository: `${request.owner}/${request.repo}`,
        code,
      },
      "token refused",
    );
    throw error;
  }

  /**
   * The permissions a token of the request gets: what it asks for within the caller's policy.
   * Throws BTL_TOKMAN_SCOPE_DENIED for a repository or a permission the policy does not grant.
   */
  function scopeOf(
    request: Pick<TokenRequest, "caller" | "owner" | "repo" | "permissions">,
    verb: "have" | "revoke",
  ) {
    const { caller, owner, repo } = request;
    if (!coversRepository(caller, owner, repo))
      throw new TokmanError(
        "BTL_TOKMAN_SCOPE_DENIED",
        `caller ${caller.name} may not ${verb} tokens for ${owner}/${repo}`,
      );
    const permissions = grantedPermissions(caller, request.permissions);
    if (permissions === undefined)
      throw new TokmanError(
        "BTL_TOKMAN_SCOPE_DENIED",
        `caller ${caller.name} asked for permissions beyond its policy`,
      );
    return permissions;
  }

  async function issue(request: TokenRequest): Promise<IssuedToken> {
    try {
      const { caller, owner, repo } = request;
      const permissions = scopeOf(request, "have");
      const minTtl = request.minTtl ?? 0;
      if (!Number.isInteger(minTtl) || minTtl < 0 || minTtl > MAX_MIN_TTL) {
        throw new TokmanError(
          "BTL_TOKMAN_BAD_REQUEST",
          `Expected min_ttl to be an integer from 0 to ${MAX_MIN_TTL}`,
        );
      }
      const app = appOf(caller);
      const { id } = await installation(app, owner, repo);
      const key = cacheKey(app, id, repo, permissions);
      const needMs = Math.max(config.renewMarginMs, minTtl * 1000, MIN_REMAINING_MS);
      let entry = request.forceRefresh ? undefined : store.get(key);
      let cached = true;
      if (entry === undefined || entry.expiresAt.getTime() - now().getTime() <= needMs) {
        cached = false;
        let pending = mints.get(key);
        if (pending === undefined) {
          pending = app
            .mint(id, [repo], permissions)
            .then((minted) => {
              metrics.mints += 1;
              const fresh: StoredToken = {
                key,
                token: minted.token,
                expiresAt: minted.expiresAt,
                permissions: minted.permissions,
              };
              store.set(fresh);
              return fresh;
            })
            .finally(() => mints.delete(key));
          mints.set(key, pending);
        }
        entry = await pending;
        if (
          entry.expiresAt.getTime() - now().getTime() <=
          Math.max(minTtl * 1000, MIN_REMAINING_MS)
        ) {
          throw new TokmanError(
            "BTL_TOKMAN_UPSTREAM_UNAVAILABLE",
            "GitHub issued a token that expires too soon (check the clocks)",
          );
        }
      } else {
        metrics.cacheHits += 1;
      }
      log.info(
        {
          audit: "issued",
          caller: caller.name,
          repository: `${owner}/${repo}`,
          permissions: entry.permissions,
          expires_at: entry.expiresAt.toISOString(),
          token_sha256: digestOf(key, entry.token),
          cached,
        },
        "token issued",
      );
      return {
        token: entry.token,
        expiresAt: entry.expiresAt,
        permissions: entry.permissions,
        cached,
      };
    } catch (error) {
      refuse(request, error);
    }
  }

  async function revoke(request: Omit<TokenRequest, "minTtl" | "forceRefresh">): Promise<boolean> {
    try {
      const { caller, owner, repo } = request;
      const permissions = scopeOf(request, "revoke");
      const app = appOf(caller);
      const { id } = await installation(app, owner, repo);
      const key = cacheKey(app, id, repo, permissions);
      const entry = store.get(key);
      if (entry === undefined) return false;
      await app.revoke(entry.token);
      store.delete(key);
      log.info(
        {
          audit: "revoked",
          caller: caller.name,
          repository: `${owner}/${repo}`,
          token_sha256: tokenDigest(entry.token),
        },
        "token revoked",
      );
      return true;
    } catch (error) {
      refuse(request, error);
    }
  }

  async function revokeAll(): Promise<number> {
    const revoked = await Promise.all(
      store.keys().map(async (key) => {
        const entry = store.get(key);
        store.delete(key);
        // The key starts with the app's name (see cacheKey).
        const app = apps.get(key.slice(0, key.indexOf("|")));
        if (entry === undefined || app === undefined || entry.expiresAt <= now()) return false;
        const token_sha256 = tokenDigest(entry.token);
        try {
          await app.revoke(entry.token);
        } catch (error) {
          const code = isBottleError(error) ? error.code : "BTL_INTERNAL";
          log.warn({ audit: "revoke-failed", token_sha256, code }, "token not revoked");
          return false;
        }
        log.info({ audit: "revoked", token_sha256 }, "token revoked");
        return true;
      }),
    );
    return revoked.filter(Boolean).length;
  }

  return { issue, revoke, revokeAll, metrics };
}
