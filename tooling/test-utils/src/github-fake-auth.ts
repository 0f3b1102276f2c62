/** How the fake authenticates a request: app JWTs (RS256 only) and installation tokens. */
import { verify } from "node:crypto";
import type { IncomingMessage } from "node:http";
import {
  ApiError,
  type App,
  digest,
  type FakeState,
  type Identity,
  SUSPENDED,
  type TokenRecord,
} from "./github-fake-model.ts";

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
const BASE64URL = /^[A-Za-z0-9_-]+$/;
/** Tolerated drift between the signer's clock and the fake's (GitHub does not publish its own). */
const CLOCK_ALLOWANCE_S = 60;
/** `exp` may be at most ten minutes after `iat`, and after the server's now. */
const JWT_MAX_LIFETIME_S = 10 * 60;
const undecodable = () => new ApiError(401, UNDECODABLE);

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

/** The fake's authentication over `state`: who a request is, and what a route requires. */
export function createAuth(state: FakeState) {
  const { apps, tokens, clock, nowSeconds } = state;
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
  return { identify, requireApp, requireToken };
}
