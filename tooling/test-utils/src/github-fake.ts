/**
 * A fake of GitHub's App REST API on 127.0.0.1: JWT authentication (RS256 only), installation
 * lookups, installation access tokens (mint, scope, expiry, revoke), primary rate limits and
 * fault injection, with GitHub's status codes and messages. The concerns live beside it:
 * authentication (`-auth`), routes (`-api`), limits and failures (`-limits`), the model.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { onTestFinished } from "vitest";
import { createApi } from "./github-fake-api.ts";
import { createAuth } from "./github-fake-auth.ts";
import { createFailures, createLimits } from "./github-fake-limits.ts";
import {
  type Answer,
  ApiError,
  compileApps,
  compileInstallations,
  DOCS_RATE_LIMITS,
  type FakeState,
  INSTALLATION_RATE_LIMIT,
  isoSeconds,
  JSON_TYPE,
  MAX_BODY_BYTES,
  MIN_TOKEN_LENGTH,
  requestId,
} from "./github-fake-model.ts";
import type { GitHubFake, GitHubFakeOptions, GitHubFakeRequest } from "./github-fake-types.ts";
import { readBody } from "./http-body.ts";
import { closerOf, listenLoopback } from "./listen.ts";

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
  const installations = compileInstallations(options.installations, apps, startedAt);

  const state: FakeState = {
    clock,
    nowSeconds,
    apps,
    installations,
    tokens: new Map(),
    revoked: [],
    tokenLength,
    startedAt,
    base: "",
    mints: 0,
  };
  const auth = createAuth(state);
  const { identify } = auth;
  const route = createApi(state, auth);
  const limits = createLimits(state, options.rateLimit ?? INSTALLATION_RATE_LIMIT);
  const failures = createFailures();
  const requests: GitHubFakeRequest[] = [];

  const answerFor = (req: IncomingMessage, path: string, body: Buffer): Answer => {
    const identity = identify(req);
    const bucket = limits.bucketOf(identity);
    const rateHeaders = (): Record<string, string> => ({
      "x-ratelimit-limit": String(bucket.limit),
      "x-ratelimit-remaining": String(bucket.remaining),
      "x-ratelimit-reset": String(bucket.reset),
      "x-ratelimit-used": String(bucket.limit - bucket.remaining),
      "x-ratelimit-resource": "core",
    });
    const failure = failures.takeFailure(req.method ?? "", path);
    if (failure !== undefined) {
      return { ...failure, headers: { ...rateHeaders(), ...failure.headers } };
    }
    if (bucket.remaining <= 0) {
      const error = new ApiError(
        403,
        `API rate limit exceeded ${bucket.exceeded}`,
        DOCS_RATE_LIMITS,
      );
      return { ...errorAnswer(error), headers: rateHeaders() };
    }
    bucket.remaining -= 1;
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
      const body = await readBody(
        req,
        MAX_BODY_BYTES,
        () => new ApiError(413, "Payload Too Large"),
      );
      answer = answerFor(req, url.pathname, body);
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
  state.base = `http://127.0.0.1:${await listenLoopback(server)}`;
  const closeServer = closerOf(server);

  return {
    url: state.base,
    get mints() {
      return state.mints;
    },
    requests,
    revoked: state.revoked,
    tokens: () =>
      [...state.tokens.values()].map(({ installation: _installation, ...token }) => ({
        ...token,
        permissions: { ...token.permissions },
        repositories:
          token.repositories === "all" ? "all" : token.repositories.map((r) => ({ ...r })),
      })),
    failNext: failures.add,
    latency(ms) {
      delayMs = ms;
    },
    rateLimit: limits.set,
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
    close: () => {
      aborted.abort();
      return closeServer();
    },
  };
}
