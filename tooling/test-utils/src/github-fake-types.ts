/** The public shapes of the GitHub fake: its options, what it records, what it controls. */

/** A GitHub App permission level. */
export type GitHubPermissionLevel = "read" | "write" | "admin";

/** A GitHub App registration known to the fake. */
export interface GitHubFakeApp {
  id: number;
  /** Accepted as the JWT `iss` too (default `Iv1.` and 16 hex digits derived from the id). */
  clientId?: string;
  /** The app's RSA public key, PEM (SPKI or PKCS#1). */
  publicKey: string;
  /** Default `app-<id>`. */
  slug?: string;
}

/** An installation of an app on an organization or a user account. */
export interface GitHubFakeInstallation {
  id: number;
  appId: number;
  /** `id` defaults to a stable number per login. */
  account: { login: string; type: "Organization" | "User"; id?: number };
  repositories: Array<{ id: number; name: string }>;
  permissions: Record<string, GitHubPermissionLevel>;
  suspended?: boolean;
}

/** Options of {@link startGitHubFake}. */
export interface GitHubFakeOptions {
  apps: GitHubFakeApp[];
  installations: GitHubFakeInstallation[];
  /** Base clock (default real time); `skewMs`, `setClock` and `advance` shift it. */
  now?: () => Date;
  /** How far the fake's clock runs ahead of `now` (negative: behind). Default 0. */
  skewMs?: number;
  /** Total length of minted tokens, `ghs_` included (default 40, at least 40). */
  tokenLength?: number;
  /** Delay before every answer, in ms (default 0). */
  latencyMs?: number;
  /** Primary rate limit of each app and installation per hour (default 5000). */
  rateLimit?: number;
}

/** An installation access token the fake minted. */
export interface GitHubIssuedToken {
  token: string;
  appId: number;
  installationId: number;
  permissions: Record<string, GitHubPermissionLevel>;
  /** The repositories asked for, or `"all"` (every repository of the installation). */
  repositories: Array<{ id: number; name: string }> | "all";
  createdAt: string;
  expiresAt: string;
  revokedAt: string | null;
}

/** One request the fake answered: never a header, a query or a body. */
export interface GitHubFakeRequest {
  method: string;
  path: string;
  /** 0 until the answer is written. */
  status: number;
}

/** What {@link GitHubFake.failNext} answers instead of the real thing. */
export interface GitHubFailureOptions {
  /** How many requests to fail (default 1). */
  count?: number;
  /** JSON body (a string is sent as `text/html`, like GitHub's 5xx pages). */
  body?: unknown;
  headers?: Record<string, string>;
  /** Only fail requests with this method. */
  method?: string;
  /** Only fail requests whose path equals this string or matches this pattern. */
  path?: string | RegExp;
}

/** Which rate-limit bucket {@link GitHubFake.rateLimit} sets (default: every bucket). */
export type GitHubRateLimitScope = { installationId: number } | { appId: number };

/** A running fake of GitHub's App REST API on 127.0.0.1. */
export interface GitHubFake {
  /** `http://127.0.0.1:PORT`, the API base URL, no trailing slash. */
  url: string;
  /** Successful access token creations. */
  readonly mints: number;
  requests: GitHubFakeRequest[];
  /** Tokens revoked through `DELETE /installation/token`, in order. */
  revoked: string[];
  /** Copies of every minted token with its scope and expiry. */
  tokens(): GitHubIssuedToken[];
  /** Answers the next matching requests with `status` before auth and rate limits. */
  failNext(status: number, options?: GitHubFailureOptions): void;
  /** Delays every later answer by `ms`. */
  latency(ms: number): void;
  /** Sets the remaining primary rate limit and its reset (Unix seconds). */
  rateLimit(remaining: number, resetEpochSeconds: number, scope?: GitHubRateLimitScope): void;
  /** The fake's clock, as used for JWTs, token expiry and the `date` header. */
  now(): Date;
  setClock(date: Date): void;
  advance(ms: number): void;
  /** Suspends (or unsuspends) an installation. */
  suspend(installationId: number, suspended?: boolean): void;
  close(): Promise<void>;
}
