/** The fake's primary rate limits (per app, installation, and anonymous) and injected failures. */
import { STATUS_CODES } from "node:http";
import {
  type Answer,
  DOCS,
  type Failure,
  type FakeState,
  type Identity,
} from "./github-fake-model.ts";
import type { GitHubFailureOptions, GitHubRateLimitScope } from "./github-fake-types.ts";

const SECONDARY_RATE_LIMIT =
  "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID.";
const ANONYMOUS_RATE_LIMIT = 60;
const RATE_WINDOW_S = 60 * 60;

export interface Bucket {
  limit: number;
  remaining: number;
  reset: number;
  exceeded: string;
}

/** Rate-limit buckets, created for every app and installation at start. */
export function createLimits(state: FakeState, limit: number) {
  const { apps, installations, nowSeconds } = state;
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
  const bucketOf = (identity: Identity): Bucket => {
    if (identity.kind === "app") return appBucket(identity.app.id);
    if (identity.kind === "installation") return installationBucket(identity.record.installationId);
    return anonymousBucket();
  };

  /** Sets the remaining primary rate limit and its reset (every bucket without a scope). */
  const set = (remaining: number, resetEpochSeconds: number, scope?: GitHubRateLimitScope) => {
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
  };
  return { bucketOf, set };
}

/** Failures to answer instead of the real thing, first match first. */
export function createFailures() {
  const failures: Failure[] = [];
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
  const add = (status: number, failure: GitHubFailureOptions = {}) => {
    failures.push({ ...failure, status, count: failure.count ?? 1 });
  };
  return { takeFailure, add };
}
