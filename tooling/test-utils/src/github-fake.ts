import { createHash, createPublicKey, type KeyObject, randomBytes, verify } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse, STATUS_CODES } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { onTestFinished } from "vitest";
import { createDeferred } from "./deferred.ts";

const JSON_TYPE = "application/json; charset=utf-8";
const DOCS = "https://docs.github.com/rest";
const DOCS_RATE_LIMITS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api";
const DOCS_CREATE_TOKEN =
  "https://docs.github.com/rest/apps/apps#create-an-installation-access-token-for-an-app";
const MAX_BODY_BYTES = 1024 * 1024;
/** Installation access tokens live one hour. */
const TOKEN_TTL_MS = 60 * 60 * 1000;
/** `exp` may be at most ten minutes after `iat`, and after the server's now. */
const JWT_MAX_LIFETIME_S = 10 * 60;
/** Tolerated drift between the signer's clock and the fake's (GitHub does not publish its own). */
const CLOCK_ALLOWANCE_S = 60;
/** A token request may list at most 500 repositories (names and ids together). */
const MAX_TOKEN_REPOSITORIES = 500;
const RATE_WINDOW_S = 60 * 60;
const INSTALLATION_RATE_LIMIT = 5000;
const ANONYMOUS_RATE_LIMIT = 60;
const MIN_TOKEN_LENGTH = 40;
const TOKEN_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const BASE64URL = /^[A-Za-z0-9_-]+$/;
const LEVELS = { read: 1, write: 2, admin: 3 } as const;

// GitHub's messages, as its API answers them.
const UNDECODABLE = "A JSON web token could not be decoded";
const EXP_INVALID =
  "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires";
const EXP_TOO_FAR = "'Expiration time' claim ('exp') is too far in the future";
const IAT_INVALID =
  "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued";
const ISS_MISSING = "Missing 'issuer' claim ('iss') in assertion";
const ISS_NOT_INTEGER = "'Issuer' claim ('iss') must be an Integer";
const BAD_CREDENTIALS = "Bad credentials";
const SUSPENDED = "This installation has been suspended";
const NOT_IN_INSTALLATION =
  "There is at least one repository that does not exist or is not accessible to the parent installation.";
const NOT_GRANTED = "The permissions requested are not granted to this installation.";
const SECONDARY_RATE_LIMIT =
  "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID.";

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

interface App {
  id: number;
  clientId: string;
  slug: string;
  key: KeyObject;
}

interface Installation {
  id: number;
  app: App;
  account: { login: string; type: "Organization" | "User"; id: number };
  repositories: Array<{ id: number; name: string }>;
  permissions: Record<string, GitHubPermissionLevel>;
  suspendedAt: string | null;
}

interface TokenRecord extends GitHubIssuedToken {
  installation: Installation;
}

interface Bucket {
  limit: number;
  remaining: number;
  reset: number;
  exceeded: string;
}

type Identity =
  | { kind: "app"; app: App }
  | { kind: "installation"; record: TokenRecord }
  | { kind: "anonymous"; error: ApiError | null };

interface Failure extends GitHubFailureOptions {
  status: number;
  count: number;
}

interface Answer {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

/** An answer other than 2xx, with GitHub's error body. */
class ApiError extends Error {
  readonly status: number;
  readonly documentationUrl: string;
  constructor(status: number, message: string, documentationUrl = DOCS) {
    super(message);
    this.status = status;
    this.documentationUrl = documentationUrl;
  }
}

const notFound = () => new ApiError(404, "Not Found");
const undecodable = () => new ApiError(401, UNDECODABLE);

function digest(value: string): string {
  return createHash("sha256").update(value).digest("hex");
}

/** RFC 3339 in UTC with seconds precision, as GitHub writes timestamps. */
function isoSeconds(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

function parseJsonObject(segment: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, "base64url").toString("utf8"));
    return typeof value === "object" && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of req) {
    bytes += (chunk as Buffer).length;
    if (bytes > MAX_BODY_BYTES) throw new ApiError(413, "Payload Too Large");
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function randomToken(length: number): string {
  let out = "ghs_";
  while (out.length < length) {
    for (const byte of randomBytes(length)) {
      // Rejection sampling keeps every character equally likely (248 = 4 × 62).
      if (byte < 248 && out.length < length) out += TOKEN_ALPHABET[byte % TOKEN_ALPHABET.length];
    }
  }
  return out;
}

/** GitHub's request ids look like `CC58:2B6C:1A9F3E1:1B3A0C2:65A1B2C3`. */
function requestId(): string {
  const hex = randomBytes(16).toString("hex").toUpperCase();
  return [
    hex.slice(0, 4),
    hex.slice(4, 8),
    hex.slice(8, 15),
    hex.slice(15, 22),
    hex.slice(22, 30),
  ].join(":");
}

function invalid(property: string, value: unknown, expected: string): ApiError {
  return new ApiError(
    422,
    `Invalid request.\n\nFor 'properties/${property}', ${JSON.stringify(value)} is not ${expected}.`,
    DOCS_CREATE_TOKEN,
  );
}

/** Reads the optional body of `POST /app/installations/{id}/access_tokens`. */
function parseTokenRequest(body: Buffer) {
  let value: unknown = {};
  if (body.length > 0) {
    try {
      value = JSON.parse(body.toString("utf8"));
    } catch {
      throw new ApiError(400, "Problems parsing JSON");
    }
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ApiError(400, "Problems parsing JSON");
  }
  const { repositories, repository_ids: ids, permissions } = value as Record<string, unknown>;
  if (
    repositories !== undefined &&
    !(Array.isArray(repositories) && repositories.every((r) => typeof r === "string"))
  ) {
    throw invalid("repositories", repositories, "an array of strings");
  }
  if (ids !== undefined && !(Array.isArray(ids) && ids.every((id) => Number.isInteger(id)))) {
    throw invalid("repository_ids", ids, "an array of integers");
  }
  if (
    permissions !== undefined &&
    (typeof permissions !== "object" || permissions === null || Array.isArray(permissions))
  ) {
    throw invalid("permissions", permissions, "an object");
  }
  return {
    names: (repositories ?? []) as string[],
    ids: (ids ?? []) as number[],
    permissions: permissions as Record<string, unknown> | undefined,
  };
}

function compileApps(apps: GitHubFakeApp[]): Map<number, App> {
  const byId = new Map<number, App>();
  apps.forEach((app, index) => {
    if (!Number.isSafeInteger(app.id) || app.id <= 0 || byId.has(app.id)) {
      throw new Error(
        `Expected \`apps[${index}].id\` to be a unique positive integer, got ${app.id}`,
      );
    }
    const key = createPublicKey(app.publicKey);
    if (key.asymmetricKeyType !== "rsa") {
      throw new Error(
        `Expected \`apps[${index}].publicKey\` to be an RSA key, got ${key.asymmetricKeyType}`,
      );
    }
    byId.set(app.id, {
      id: app.id,
      clientId: app.clientId ?? `Iv1.${digest(`app:${app.id}`).slice(0, 16)}`,
      slug: app.slug ?? `app-${app.id}`,
      key,
    });
  });
  return byId;
}

/**
 * Starts the fake on `127.0.0.1:0`, closed when the current test finishes (see
 * {@link serveGitHubFake}).
 */
export async function startGitHubFake(options: GitHubFakeOptions): Promise<GitHubFake> {
  const fake = await serveGitHubFake(options);
  onTestFinished(() => fake.close());
  return fake;
}

/**
 * Starts a fake of GitHub's App REST API on `127.0.0.1:0`: JWT authentication (RS256 only),
 * installation lookups, installation access tokens (mint, scope, expiry, revoke), primary rate
 * limits and fault injection, with GitHub's status codes and messages. Usable outside tests
 * (benchmarks): the caller closes it. Throws an `Error` for malformed options.
 */
export async function serveGitHubFake(options: GitHubFakeOptions): Promise<GitHubFake> {
  const baseClock = options.now ?? (() => new Date());
  let offsetMs = options.skewMs ?? 0;
  const clock = (): Date => new Date(baseClock().getTime() + offsetMs);
  const nowSeconds = (): number => Math.floor(clock().getTime() / 1000);
  const tokenLength = options.tokenLength ?? MIN_TOKEN_LENGTH;
  if (!Number.isSafeInteger(tokenLength) || tokenLength < MIN_TOKEN_LENGTH) {
    throw new Error(`Expected \`tokenLength\` to be an integer >= 40, got ${tokenLength}`);
  }
  const startedAt = isoSeconds(clock());
  let delayMs = options.latencyMs ?? 0;

  const apps = compileApps(options.apps);
  const accountIds = new Map<string, number>();
  const installations = new Map<number, Installation>();
  options.installations.forEach((inst, index) => {
    const app = apps.get(inst.appId);
    if (app === undefined) {
      throw new Error(
        `Expected \`installations[${index}].appId\` to name an app, got ${inst.appId}`,
      );
    }
    if (!Number.isSafeInteger(inst.id) || inst.id <= 0 || installations.has(inst.id)) {
      throw new Error(
        `Expected \`installations[${index}].id\` to be a unique positive integer, got ${inst.id}`,
      );
    }
    const login = inst.account.login.toLowerCase();
    const accountId = inst.account.id ?? accountIds.get(login) ?? 10_000 + accountIds.size;
    accountIds.set(login, accountId);
    installations.set(inst.id, {
      id: inst.id,
      app,
      account: { login: inst.account.login, type: inst.account.type, id: accountId },
      repositories: inst.repositories.map((r) => ({ id: r.id, name: r.name })),
      permissions: { ...inst.permissions },
      suspendedAt: inst.suspended === true ? startedAt : null,
    });
  });

  const limit = options.rateLimit ?? INSTALLATION_RATE_LIMIT;
  const buckets = new Map<string, Bucket>();
  const bucket = (key: string, size: number, exceeded: string): Bucket => {
    let found = buckets.get(key);
    if (found === undefined) {
      found = { limit: size, remaining: size, reset: nowSeconds() + RATE_WINDOW_S, exceeded };
      buckets.set(key, found);
    }
    if (nowSeconds() >= found.reset) {
      found.remaining = found.limit;
      found.reset = nowSeconds() + RATE_WINDOW_S;
    }
    return found;
  };
  const appBucket = (id: number) => bucket(`app:${id}`, limit, `for app ID ${id}.`);
  const installationBucket = (id: number) =>
    bucket(`installation:${id}`, limit, `for installation ID ${id}.`);
  const anonymousBucket = () =>
    bucket(
      "anonymous",
      ANONYMOUS_RATE_LIMIT,
      "for 127.0.0.1. (But here's the good news: Authenticated requests get a higher rate limit. Check out the documentation for more details.)",
    );
  for (const app of apps.values()) appBucket(app.id);
  for (const inst of installations.values()) installationBucket(inst.id);
  anonymousBucket();

  /** Issued tokens by the SHA-256 of their value, so lookups never compare secrets directly. */
  const tokens = new Map<string, TokenRecord>();
  const requests: GitHubFakeRequest[] = [];
  const revoked: string[] = [];
  const failures: Failure[] = [];
  let mints = 0;
  let base = "";

  const findIssuer = (iss: unknown): App => {
    if (iss === undefined || iss === null || iss === "") throw new ApiError(401, ISS_MISSING);
    if ((typeof iss === "number" && Number.isInteger(iss)) || /^\d+$/.test(String(iss))) {
      const app = apps.get(Number(iss));
      if (app === undefined) throw undecodable();
      return app;
    }
    const byClientId = [...apps.values()].find((app) => app.clientId === iss);
    if (byClientId === undefined) throw new ApiError(401, ISS_NOT_INTEGER);
    return byClientId;
  };

  /** Verifies an app JWT as GitHub documents it; throws a 401 ApiError. */
  const verifyJwt = (jwt: string): App => {
    const parts = jwt.split(".");
    if (parts.length !== 3 || !parts.every((part) => BASE64URL.test(part))) throw undecodable();
    const [headerPart = "", payloadPart = "", signature = ""] = parts;
    const header = parseJsonObject(headerPart);
    const claims = parseJsonObject(payloadPart);
    // SECURITY: the algorithm is fixed to RS256 and never taken from the token, so neither
    // `none` nor HS256 keyed with the public key can pass.
    if (header === undefined || claims === undefined || header.alg !== "RS256") throw undecodable();
    const app = findIssuer(claims.iss);
    const signed = Buffer.from(`${headerPart}.${payloadPart}`);
    if (!verify("sha256", signed, app.key, Buffer.from(signature, "base64url"))) {
      throw undecodable();
    }
    const now = nowSeconds();
    const { iat, exp } = claims;
    if (typeof exp !== "number" || !Number.isFinite(exp) || exp <= now) {
      throw new ApiError(401, EXP_INVALID);
    }
    if (typeof iat !== "number" || !Number.isInteger(iat) || iat > now + CLOCK_ALLOWANCE_S) {
      throw new ApiError(401, IAT_INVALID);
    }
    if (exp - iat > JWT_MAX_LIFETIME_S || exp > now + JWT_MAX_LIFETIME_S + CLOCK_ALLOWANCE_S) {
      throw new ApiError(401, EXP_TOO_FAR);
    }
    return app;
  };

  const identify = (req: IncomingMessage): Identity => {
    const header = req.headers.authorization;
    if (header === undefined) return { kind: "anonymous", error: null };
    const match = /^(bearer|token)\s+(\S+)\s*$/i.exec(header);
    const scheme = match?.[1]?.toLowerCase();
    const credential = match?.[2];
    if (credential === undefined) {
      return { kind: "anonymous", error: new ApiError(401, BAD_CREDENTIALS) };
    }
    // A JWT is only taken with the Bearer scheme, as GitHub documents.
    if (scheme === "bearer" && credential.split(".").length === 3) {
      try {
        return { kind: "app", app: verifyJwt(credential) };
      } catch (error) {
        return { kind: "anonymous", error: error as ApiError };
      }
    }
    const record = tokens.get(digest(credential));
    const live =
      record !== undefined &&
      record.revokedAt === null &&
      Date.parse(record.expiresAt) > clock().getTime();
    return live
      ? { kind: "installation", record }
      : { kind: "anonymous", error: new ApiError(401, BAD_CREDENTIALS) };
  };

  const requireApp = (identity: Identity): App => {
    if (identity.kind === "app") return identity.app;
    if (identity.kind === "anonymous" && identity.error !== null) throw identity.error;
    throw undecodable();
  };

  /** The token of an installation-authenticated route; `undefined` without credentials. */
  const requireToken = (identity: Identity): TokenRecord | undefined => {
    if (identity.kind === "anonymous") {
      if (identity.error !== null) throw identity.error;
      return undefined;
    }
    // An app JWT only authenticates the /app routes and the installation lookups.
    if (identity.kind === "app") throw new ApiError(401, BAD_CREDENTIALS);
    if (identity.record.installation.suspendedAt !== null) throw new ApiError(403, SUSPENDED);
    return identity.record;
  };

  const accountJson = (inst: Installation) => ({
    login: inst.account.login,
    id: inst.account.id,
    type: inst.account.type,
  });

  const repoJson = (inst: Installation, repo: { id: number; name: string }) => ({
    id: repo.id,
    name: repo.name,
    full_name: `${inst.account.login}/${repo.name}`,
    private: true,
    owner: accountJson(inst),
  });

  const installationJson = (inst: Installation) => ({
    id: inst.id,
    account: accountJson(inst),
    app_id: inst.app.id,
    app_slug: inst.app.slug,
    target_id: inst.account.id,
    target_type: inst.account.type,
    permissions: { ...inst.permissions },
    events: [],
    repository_selection: "selected",
    access_tokens_url: `${base}/app/installations/${inst.id}/access_tokens`,
    repositories_url: `${base}/installation/repositories`,
    created_at: startedAt,
    updated_at: startedAt,
    single_file_name: null,
    suspended_at: inst.suspendedAt,
    suspended_by: null,
  });

  const appJson = (app: App) => {
    const own = [...installations.values()].filter((inst) => inst.app === app);
    const permissions: Record<string, GitHubPermissionLevel> = {};
    for (const inst of own) {
      for (const [name, level] of Object.entries(inst.permissions)) {
        const known = permissions[name];
        if (known === undefined || LEVELS[level] > LEVELS[known]) permissions[name] = level;
      }
    }
    return {
      id: app.id,
      slug: app.slug,
      client_id: app.clientId,
      name: app.slug,
      owner: null,
      description: null,
      external_url: `${base}/apps/${app.slug}`,
      html_url: `${base}/apps/${app.slug}`,
      created_at: startedAt,
      updated_at: startedAt,
      permissions,
      events: [],
      installations_count: own.length,
    };
  };

  const sameName = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();

  const findInstallation = (app: App, test: (inst: Installation) => boolean): Installation => {
    const found = [...installations.values()].find((inst) => inst.app === app && test(inst));
    if (found === undefined) throw notFound();
    return found;
  };

  const mint = (app: App, installationId: string, body: Buffer): Answer => {
    const inst = /^\d+$/.test(installationId)
      ? installations.get(Number(installationId))
      : undefined;
    if (inst === undefined || inst.app !== app) throw notFound();
    if (inst.suspendedAt !== null) throw new ApiError(403, SUSPENDED, DOCS_CREATE_TOKEN);
    const asked = parseTokenRequest(body);
    if (asked.names.length + asked.ids.length > MAX_TOKEN_REPOSITORIES) {
      throw new ApiError(
        422,
        `Too many repositories: at most ${MAX_TOKEN_REPOSITORIES} can be listed.`,
        DOCS_CREATE_TOKEN,
      );
    }
    const chosen = new Map<number, { id: number; name: string }>();
    for (const name of asked.names) {
      const repo = inst.repositories.find((r) => sameName(r.name, name));
      if (repo === undefined) throw new ApiError(422, NOT_IN_INSTALLATION, DOCS_CREATE_TOKEN);
      chosen.set(repo.id, repo);
    }
    for (const id of asked.ids) {
      const repo = inst.repositories.find((r) => r.id === id);
      if (repo === undefined) throw new ApiError(422, NOT_IN_INSTALLATION, DOCS_CREATE_TOKEN);
      chosen.set(repo.id, repo);
    }
    let permissions: Record<string, GitHubPermissionLevel> = { ...inst.permissions };
    if (asked.permissions !== undefined && Object.keys(asked.permissions).length > 0) {
      permissions = {};
      for (const [name, level] of Object.entries(asked.permissions)) {
        if (level !== "read" && level !== "write" && level !== "admin") {
          throw invalid(`permissions/${name}`, level, 'one of "read", "write" or "admin"');
        }
        const granted = inst.permissions[name];
        if (granted === undefined || LEVELS[level] > LEVELS[granted]) {
          throw new ApiError(422, NOT_GRANTED, DOCS_CREATE_TOKEN);
        }
        permissions[name] = level;
      }
    }
    const createdAt = clock();
    const record: TokenRecord = {
      token: randomToken(tokenLength),
      appId: app.id,
      installationId: inst.id,
      permissions,
      repositories: chosen.size > 0 ? [...chosen.values()] : "all",
      createdAt: isoSeconds(createdAt),
      expiresAt: isoSeconds(new Date(createdAt.getTime() + TOKEN_TTL_MS)),
      revokedAt: null,
      installation: inst,
    };
    tokens.set(digest(record.token), record);
    mints += 1;
    return {
      status: 201,
      body: {
        token: record.token,
        expires_at: record.expiresAt,
        permissions: { ...permissions },
        repository_selection: "selected",
        ...(record.repositories === "all"
          ? {}
          : { repositories: record.repositories.map((r) => repoJson(inst, r)) }),
      },
    };
  };

  const inScope = (record: TokenRecord): Array<{ id: number; name: string }> =>
    record.repositories === "all" ? record.installation.repositories : record.repositories;

  const route = (req: IncomingMessage, segments: string[], identity: Identity, body: Buffer) => {
    const method = req.method ?? "";
    const [first, second, third, fourth] = segments;
    const key = `${method} ${segments.length}`;
    if (key === "GET 1" && first === "app") {
      return { status: 200, body: appJson(requireApp(identity)) };
    }
    if (key === "GET 2" && first === "app" && second === "installations") {
      const app = requireApp(identity);
      const own = [...installations.values()].filter((inst) => inst.app === app);
      return { status: 200, body: own.map(installationJson) };
    }
    if (key === "GET 3" && first === "app" && second === "installations" && third !== undefined) {
      const app = requireApp(identity);
      return {
        status: 200,
        body: installationJson(findInstallation(app, (inst) => String(inst.id) === third)),
      };
    }
    if (
      key === "POST 4" &&
      first === "app" &&
      second === "installations" &&
      third !== undefined &&
      fourth === "access_tokens"
    ) {
      return mint(requireApp(identity), third, body);
    }
    if (key === "GET 4" && first === "repos" && fourth === "installation") {
      const app = requireApp(identity);
      const inst = findInstallation(
        app,
        (i) =>
          sameName(i.account.login, second ?? "") &&
          i.repositories.some((r) => sameName(r.name, third ?? "")),
      );
      return { status: 200, body: installationJson(inst) };
    }
    if (key === "GET 3" && (first === "orgs" || first === "users") && third === "installation") {
      const app = requireApp(identity);
      const inst = findInstallation(
        app,
        (i) =>
          sameName(i.account.login, second ?? "") &&
          (first === "users" || i.account.type === "Organization"),
      );
      return { status: 200, body: installationJson(inst) };
    }
    if (key === "DELETE 2" && first === "installation" && second === "token") {
      const record = requireToken(identity);
      if (record === undefined) throw new ApiError(401, "Requires authentication");
      record.revokedAt = isoSeconds(clock());
      revoked.push(record.token);
      return { status: 204 };
    }
    if (key === "GET 2" && first === "installation" && second === "repositories") {
      const record = requireToken(identity);
      if (record === undefined) throw new ApiError(401, "Requires authentication");
      const repos = inScope(record);
      return {
        status: 200,
        body: {
          total_count: repos.length,
          repository_selection: "selected",
          repositories: repos.map((r) => repoJson(record.installation, r)),
        },
      };
    }
    if (key === "GET 3" && first === "repos") {
      // Without a token the repositories are private, hence invisible: 404, not 401.
      const record = requireToken(identity);
      const repo =
        record === undefined
          ? undefined
          : inScope(record).find((r) => sameName(r.name, third ?? ""));
      if (
        record === undefined ||
        repo === undefined ||
        !sameName(record.installation.account.login, second ?? "")
      ) {
        throw notFound();
      }
      return { status: 200, body: repoJson(record.installation, repo) };
    }
    throw notFound();
  };

  const bucketOf = (identity: Identity): Bucket => {
    if (identity.kind === "app") return appBucket(identity.app.id);
    if (identity.kind === "installation") return installationBucket(identity.record.installationId);
    return anonymousBucket();
  };

  const takeFailure = (method: string, path: string): Answer | undefined => {
    const index = failures.findIndex(
      (f) =>
        (f.method === undefined || f.method.toUpperCase() === method) &&
        (f.path === undefined ||
          (typeof f.path === "string" ? f.path === path : f.path.test(path))),
    );
    const failure = failures[index];
    if (failure === undefined) return undefined;
    failure.count -= 1;
    if (failure.count <= 0) failures.splice(index, 1);
    const { status } = failure;
    const headers: Record<string, string> = { ...failure.headers };
    if (status === 429 && failure.headers === undefined) headers["retry-after"] = "60";
    const message = status === 429 ? SECONDARY_RATE_LIMIT : (STATUS_CODES[status] ?? "Error");
    return {
      status,
      body: failure.body ?? { message, documentation_url: DOCS, status: String(status) },
      headers,
    };
  };

  const answerFor = (req: IncomingMessage, path: string, body: Buffer): Answer => {
    const identity = identify(req);
    const limits = bucketOf(identity);
    const rateHeaders = (): Record<string, string> => ({
      "x-ratelimit-limit": String(limits.limit),
      "x-ratelimit-remaining": String(limits.remaining),
      "x-ratelimit-reset": String(limits.reset),
      "x-ratelimit-used": String(limits.limit - limits.remaining),
      "x-ratelimit-resource": "core",
    });
    const failure = takeFailure(req.method ?? "", path);
    if (failure !== undefined) {
      return { ...failure, headers: { ...rateHeaders(), ...failure.headers } };
    }
    if (limits.remaining <= 0) {
      const error = new ApiError(
        403,
        `API rate limit exceeded ${limits.exceeded}`,
        DOCS_RATE_LIMITS,
      );
      return { ...errorAnswer(error), headers: rateHeaders() };
    }
    limits.remaining -= 1;
    let answer: Answer;
    try {
      const segments = path
        .split("/")
        .slice(1)
        .map((segment) => {
          try {
            return decodeURIComponent(segment);
          } catch {
            return "\0";
          }
        });
      answer = route(req, segments, identity, body);
    } catch (error) {
      answer = errorAnswer(error);
    }
    return { ...answer, headers: { ...rateHeaders(), ...answer.headers } };
  };

  const errorAnswer = (error: unknown): Answer => {
    const apiError = error instanceof ApiError ? error : new ApiError(500, "Server Error");
    return {
      status: apiError.status,
      body: {
        message: apiError.message,
        documentation_url: apiError.documentationUrl,
        status: String(apiError.status),
      },
    };
  };

  const write = (res: ServerResponse, answer: Answer): void => {
    const headers: Record<string, string> = {
      // Clients read `date` to correct their clock before signing the next JWT.
      date: clock().toUTCString(),
      "x-github-request-id": requestId(),
      "x-github-api-version-selected": "2022-11-28",
      "x-github-media-type": "github.v3; format=json",
    };
    let payload: string | undefined;
    if (typeof answer.body === "string") {
      headers["content-type"] = "text/html; charset=utf-8";
      payload = answer.body;
    } else if (answer.body !== undefined) {
      headers["content-type"] = JSON_TYPE;
      payload = JSON.stringify(answer.body);
    }
    res.writeHead(answer.status, { ...headers, ...answer.headers }).end(payload);
  };

  const aborted = new AbortController();
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const entry: GitHubFakeRequest = { method: req.method ?? "", path: url.pathname, status: 0 };
    requests.push(entry);
    let answer: Answer;
    try {
      answer = answerFor(req, url.pathname, await readBody(req));
    } catch (error) {
      req.resume();
      answer = errorAnswer(error);
    }
    if (delayMs > 0) {
      await sleep(delayMs, undefined, { signal: aborted.signal }).catch(() => undefined);
    }
    if (res.destroyed) return;
    entry.status = answer.status;
    write(res, answer);
  };

  const server = createServer(
    { requestTimeout: 30_000, headersTimeout: 10_000, keepAliveTimeout: 1_000 },
    (req, res) => void handle(req, res),
  );
  const { promise: listening, resolve, reject } = createDeferred<void>();
  server.once("error", reject);
  server.listen({ host: "127.0.0.1", port: 0 }, () => resolve());
  await listening;
  server.off("error", reject);
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed ??= new Promise<void>((resolveClose, rejectClose) => {
      aborted.abort();
      server.closeAllConnections();
      server.close((error) => (error ? rejectClose(error) : resolveClose()));
    });
    return closed;
  };

  return {
    url: base,
    get mints() {
      return mints;
    },
    requests,
    revoked,
    tokens: () =>
      [...tokens.values()].map(({ installation: _installation, ...token }) => ({
        ...token,
        permissions: { ...token.permissions },
        repositories:
          token.repositories === "all" ? "all" : token.repositories.map((r) => ({ ...r })),
      })),
    failNext(status, failure = {}) {
      failures.push({ ...failure, status, count: failure.count ?? 1 });
    },
    latency(ms) {
      delayMs = ms;
    },
    rateLimit(remaining, resetEpochSeconds, scope) {
      const keys =
        scope === undefined
          ? [...buckets.keys()]
          : [
              "installationId" in scope
                ? `installation:${scope.installationId}`
                : `app:${scope.appId}`,
            ];
      for (const key of keys) {
        const found = buckets.get(key);
        if (found === undefined) throw new Error(`Expected a known rate-limit scope, got ${key}`);
        found.remaining = Math.max(0, Math.min(found.limit, remaining));
        found.reset = resetEpochSeconds;
      }
    },
    now: clock,
    setClock(date) {
      offsetMs = date.getTime() - baseClock().getTime();
    },
    advance(ms) {
      offsetMs += ms;
    },
    suspend(installationId, suspended = true) {
      const inst = installations.get(installationId);
      if (inst === undefined) {
        throw new Error(`Expected a known installation id, got ${installationId}`);
      }
      inst.suspendedAt = suspended ? isoSeconds(clock()) : null;
    },
    close,
  };
}
