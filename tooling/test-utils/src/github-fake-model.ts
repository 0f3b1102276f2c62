/** The GitHub fake's model: GitHub's constants and messages, records, errors, and state. */
import { createHash, createPublicKey, type KeyObject, randomBytes } from "node:crypto";
import type {
  GitHubFailureOptions,
  GitHubFakeApp,
  GitHubFakeInstallation,
  GitHubIssuedToken,
  GitHubPermissionLevel,
} from "./github-fake-types.ts";

export const JSON_TYPE = "application/json; charset=utf-8";
export const DOCS = "https://docs.github.com/rest";
export const DOCS_RATE_LIMITS =
  "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api";
export const DOCS_CREATE_TOKEN =
  "https://docs.github.com/rest/apps/apps#create-an-installation-access-token-for-an-app";
export const MAX_BODY_BYTES = 1024 * 1024;
export const INSTALLATION_RATE_LIMIT = 5000;
export const MIN_TOKEN_LENGTH = 40;
export const TOKEN_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
export const LEVELS = { read: 1, write: 2, admin: 3 } as const;

export const SUSPENDED = "This installation has been suspended";

export interface App {
  id: number;
  clientId: string;
  slug: string;
  key: KeyObject;
}

export interface Installation {
  id: number;
  app: App;
  account: { login: string; type: "Organization" | "User"; id: number };
  repositories: Array<{ id: number; name: string }>;
  permissions: Record<string, GitHubPermissionLevel>;
  suspendedAt: string | null;
}

export interface TokenRecord extends GitHubIssuedToken {
  installation: Installation;
}

export type Identity =
  | { kind: "app"; app: App }
  | { kind: "installation"; record: TokenRecord }
  | { kind: "anonymous"; error: ApiError | null };

export interface Failure extends GitHubFailureOptions {
  status: number;
  count: number;
}

export interface Answer {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

/** An answer other than 2xx, with GitHub's error body. */
export class ApiError extends Error {
  readonly status: number;
  readonly documentationUrl: string;
  constructor(status: number, message: string, documentationUrl = DOCS) {
    super(message);
    this.status = status;
    this.documentationUrl = documentationUrl;
  }
}

export const notFound = () => new ApiError(404, "Not Found");

export function digest(value: string): string {
  return createHash("sha256").update(value).digest("hex");
}

/** RFC 3339 in UTC with seconds precision, as GitHub writes timestamps. */
export function isoSeconds(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

export function randomToken(length: number): string {
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
export function requestId(): string {
  const hex = randomBytes(16).toString("hex").toUpperCase();
  return [
    hex.slice(0, 4),
    hex.slice(4, 8),
    hex.slice(8, 15),
    hex.slice(15, 22),
    hex.slice(22, 30),
  ].join(":");
}

export function compileApps(apps: GitHubFakeApp[]): Map<number, App> {
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

/** What the fake knows and has done: shared by its authentication, its API and its limits. */
export interface FakeState {
  /** The fake's clock (skew and `advance` applied). */
  clock(): Date;
  nowSeconds(): number;
  readonly apps: Map<number, App>;
  readonly installations: Map<number, Installation>;
  /** Issued tokens by the SHA-256 of their value, so lookups never compare secrets directly. */
  readonly tokens: Map<string, TokenRecord>;
  readonly revoked: string[];
  readonly tokenLength: number;
  readonly startedAt: string;
  /** `http://127.0.0.1:PORT`, set once listening. */
  base: string;
  mints: number;
}

/** The installations of the options, checked against the apps. Throws for malformed ones. */
export function compileInstallations(
  given: readonly GitHubFakeInstallation[],
  apps: ReadonlyMap<number, App>,
  startedAt: string,
): Map<number, Installation> {
  const accountIds = new Map<string, number>();
  const installations = new Map<number, Installation>();
  given.forEach((inst, index) => {
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
  return installations;
}
