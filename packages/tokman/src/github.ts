/**
 * The GitHub App API as tokman uses it: an RS256 app JWT (iat = now − 60 s, exp = now + 9 min,
 * corrected by the server's `Date` after a 401), installation lookups, down-scoped token mints
 * and revocation, through `@octokit/request`. Retries 5xx and network errors with backoff; never
 * retries a 4xx other than one clock-skew correction. Errors become TokmanError by kind.
 */
import { createPrivateKey, createSign, type KeyObject } from "node:crypto";
import { request as octokitRequest } from "@octokit/request";
import type { AppConfig, Permissions } from "./config.ts";
import { TokmanError } from "./errors.ts";

/** An installation access token as GitHub issued it. */
export interface MintedToken {
  readonly token: string;
  readonly expiresAt: Date;
  readonly permissions: Permissions;
}

/** Options of {@link createGitHubApp}. */
export interface GitHubAppOptions {
  readonly app: AppConfig;
  readonly now?: () => Date;
  /** Attempts for 5xx and network errors (default 3), with 200 ms × 2^n backoff. */
  readonly attempts?: number;
  readonly backoffMs?: number;
  /** Per request (default 10 s). */
  readonly timeoutMs?: number;
}

/** One configured GitHub App. */
export interface GitHubApp {
  readonly name: string;
  /** The installation on `owner/repo`; throws BTL_TOKMAN_NOT_INSTALLED on 404. */
  installation(owner: string, repo: string): Promise<{ id: number; suspended: boolean }>;
  /** A token for exactly `repositories` with `permissions`. */
  mint(
    installationId: number,
    repositories: readonly string[],
    permissions: Permissions,
  ): Promise<MintedToken>;
  /** Revokes an installation token (`DELETE /installation/token`); 401 counts as gone. */
  revoke(token: string): Promise<void>;
  /** Signs a JWT and calls `GET /app` (readiness). */
  check(): Promise<void>;
  /** Rate-limit remaining per installation, as last seen. */
  readonly rateLimits: ReadonlyMap<string, number>;
}

interface HttpError {
  status?: number;
  response?: { headers?: Record<string, string | undefined>; data?: unknown };
}

const base64url = (data: Buffer | string) => Buffer.from(data).toString("base64url");

/** Creates the client of one app. The private key is parsed once and kept as a KeyObject. */
export function createGitHubApp(options: GitHubAppOptions): GitHubApp {
  const { app } = options;
  const now = options.now ?? (() => new Date());
  const attempts = options.attempts ?? 3;
  const backoffMs = options.backoffMs ?? 200;
  const timeoutMs = options.timeoutMs ?? 10_000;
  let key: KeyObject;
  try {
    key = createPrivateKey(app.privateKey);
  } catch (error) {
    throw new TokmanError("BTL_TOKMAN_CONFIG", `apps.${app.name}.private_key cannot be parsed`, {
      cause: error,
    });
  }
  /** Server time minus local time, learnt from a 401's `Date` header. */
  let skewMs = 0;
  const rateLimits = new Map<string, number>();
  const request = octokitRequest.defaults({
    baseUrl: app.api,
    headers: { "user-agent": "bottle-tokman", "x-github-api-version": "2022-11-28" },
  });

  function jwt(): string {
    const seconds = Math.floor((now().getTime() + skewMs) / 1000);
    const header = base64url(JSON.stringify({ alg: "RS256", typ: "JWT" }));
    const payload = base64url(
      JSON.stringify({ iat: seconds - 60, exp: seconds + 9 * 60, iss: app.issuer }),
    );
    const signature = createSign("RSA-SHA256").update(`${header}.${payload}`).sign(key);
    return `${header}.${payload}.${base64url(signature)}`;
  }

  async function call<T>(
    route: string,
    params: Record<string, unknown>,
    auth: "app" | { token: string },
    what: string,
    bucket?: string,
  ): Promise<T> {
    let skewRetried = false;
    for (let attempt = 1; ; attempt++) {
      const authorization = auth === "app" ? `Bearer ${jwt()}` : `token ${auth.token}`;
      try {
        const response = await request(route, {
          ...params,
          headers: { authorization },
          request: { signal: AbortSignal.timeout(timeoutMs) },
        });
        noteRateLimit(bucket, response.headers as Record<string, string | undefined>);
        return response.data as T;
      } catch (error) {
        const status = (error as HttpError).status;
        const headers = (error as HttpError).response?.headers ?? {};
        noteRateLimit(bucket, headers);
        if (status === 401 && auth === "app" && !skewRetried) {
          skewRetried = true;
          const server = Date.parse(headers.date ?? "");
          if (!Number.isNaN(server)) {
            const previous = skewMs;
            skewMs = server - now().getTime();
            if (Math.abs(skewMs - previous) > 5_000) continue; // the clock was off: sign again
          }
        }
        const transient = status === undefined || status >= 500;
        if (transient && attempt < attempts) {
          await new Promise((resolve) => setTimeout(resolve, backoffMs * 2 ** (attempt - 1)));
          continue;
        }
        throw classify(error, status, headers, what);
      }
    }
  }

  function noteRateLimit(bucket: string | undefined, headers: Record<string, string | undefined>) {
    const remaining = Number(headers["x-ratelimit-remaining"]);
    if (bucket !== undefined && Number.isFinite(remaining)) rateLimits.set(bucket, remaining);
  }

  function classify(
    error: unknown,
    status: number | undefined,
    headers: Record<string, string | undefined>,
    what: string,
  ): TokmanError {
    const message = githubMessage(error);
    if (status === undefined || status >= 500) {
      return new TokmanError(
        "BTL_TOKMAN_UPSTREAM_UNAVAILABLE",
        `GitHub is unavailable (${status ?? networkReason(error)}) while ${what}`,
        { cause: error },
      );
    }
    const reset = Number(headers["x-ratelimit-reset"]);
    const retryAfter = Number(headers["retry-after"]);
    if (
      status === 429 ||
      (status === 403 && (headers["x-ratelimit-remaining"] === "0" || /rate limit/i.test(message)))
    ) {
      const resetAt =
        Number.isFinite(reset) && reset > 0
          ? new Date(reset * 1000)
          : new Date(now().getTime() + (Number.isFinite(retryAfter) ? retryAfter : 60) * 1000);
      return new TokmanError(
        "BTL_TOKMAN_RATE_LIMITED",
        `GitHub's rate limit is exhausted while ${what}; retry after ${resetAt.toISOString()}`,
        { cause: error, resetAt },
      );
    }
    if (status === 403 && /suspend/i.test(message)) {
      return new TokmanError("BTL_TOKMAN_SUSPENDED", `the installation is suspended (${what})`, {
        cause: error,
      });
    }
    if (status === 401) {
      return new TokmanError(
        "BTL_TOKMAN_MISCONFIGURED",
        `GitHub refused app ${app.name}'s credentials while ${what}: ${message || "401"}`,
        { cause: error },
      );
    }
    if (status === 404) {
      return new TokmanError(
        "BTL_TOKMAN_NOT_INSTALLED",
        `app ${app.name} is not installed there (${what})`,
        { cause: error },
      );
    }
    if (status === 422 || status === 403) {
      return new TokmanError(
        "BTL_TOKMAN_SCOPE_DENIED",
        `GitHub refused the scope while ${what}: ${message || status}`,
        { cause: error },
      );
    }
    return new TokmanError(
      "BTL_TOKMAN_UPSTREAM_UNAVAILABLE",
      `GitHub answered ${status} while ${what}: ${message}`,
      { cause: error },
    );
  }

  return {
    name: app.name,
    rateLimits,
    async installation(owner, repo) {
      const data = await call<{ id: number; suspended_at?: string | null }>(
        "GET /repos/{owner}/{repo}/installation",
        { owner, repo },
        "app",
        `looking up the installation of ${owner}/${repo}`,
        `app:${app.name}`,
      );
      return { id: data.id, suspended: Boolean(data.suspended_at) };
    },
    async mint(installationId, repositories, permissions) {
      const data = await call<{ token: string; expires_at: string; permissions?: Permissions }>(
        "POST /app/installations/{installation_id}/access_tokens",
        {
          installation_id: installationId,
          repositories: [...repositories],
          permissions: { ...permissions },
        },
        "app",
        `minting a token for installation ${installationId}`,
        `installation:${installationId}`,
      );
      const expiresAt = new Date(data.expires_at);
      if (
        typeof data.token !== "string" ||
        data.token === "" ||
        Number.isNaN(expiresAt.getTime())
      ) {
        throw new TokmanError(
          "BTL_TOKMAN_UPSTREAM_UNAVAILABLE",
          "GitHub answered a token without `token` or `expires_at`",
        );
      }
      return { token: data.token, expiresAt, permissions: data.permissions ?? permissions };
    },
    async revoke(token) {
      try {
        await call("DELETE /installation/token", {}, { token }, "revoking a token");
      } catch (error) {
        if ((error as TokmanError).code === "BTL_TOKMAN_MISCONFIGURED") return; // 401: already gone
        throw error;
      }
    },
    async check() {
      await call("GET /app", {}, "app", "checking the app's credentials", `app:${app.name}`);
    },
  };
}

/** GitHub's `message`, printable and capped (never a header or a token). */
function githubMessage(error: unknown): string {
  const data = (error as HttpError).response?.data;
  const message =
    typeof data === "object" && data !== null ? (data as { message?: unknown }).message : undefined;
  return typeof message === "string" ? message.replace(/[^\x20-\x7e]+/g, " ").slice(0, 300) : "";
}

function networkReason(error: unknown): string {
  const cause = (error as { cause?: unknown }).cause;
  if (error instanceof Error && /abort|timeout/i.test(`${error.name} ${error.message}`))
    return "timed out";
  return cause instanceof Error ? cause.message.slice(0, 200) : "network error";
}
