/**
 * GitHub App installation tokens from tokman (`GET /api/<owner>/<name>`), one renewing source
 * per repository and permission set. A cached token is handed out synchronously while it has
 * more than the renewal margin left; renewal runs in the background before that, so requests
 * rarely wait; concurrent callers share one request; a token the upstream refused (401) is
 * replaced with `force_refresh`. SECURITY: the caller key goes only into the Authorization
 * header of requests to tokman; neither it nor a token is ever logged or put in an error.
 */
import { rootCertificates } from "node:tls";
import { fingerprint, type Logger, silentLogger } from "@bottle/log";
import { checkHttpUrl } from "@bottle/manifest/policy";
import { Agent, request } from "undici";
import { ProxyError } from "./errors.ts";
import { errorName } from "./respond.ts";
import type { ProxyRoute, ProxyTokman } from "./routes.ts";

/** The proxy's variable holding tokman's base URL. */
export const TOKMAN_URL_ENV = "BOTTLE_PROXY_TOKMAN_URL";
/** The proxy's variable holding its caller key at tokman (a secret). */
export const TOKMAN_KEY_ENV = "BOTTLE_PROXY_TOKMAN_KEY";

/** What a source asks tokman with: the global `fetch` fits; the default is undici's `request`. */
export type TokmanFetch = (
  url: string,
  init: { headers: Record<string, string>; redirect: "manual"; signal: AbortSignal },
) => Promise<{ status: number; text(): Promise<string> }>;

/** Options of {@link createTokmanSource}. */
export interface TokmanSourceOptions {
  /** tokman's base URL: https, or http to a loopback host. */
  readonly url: string;
  /** The proxy's caller key at tokman (sent as `Authorization: Bearer`). */
  readonly key: string;
  /** `owner/name`. */
  readonly repository: string;
  readonly permissions?: Readonly<Record<string, "read" | "write">> | undefined;
  /** Lifetime a fetched token must still have (tokman's `min_ttl`, seconds; default 600). */
  readonly minTtlSeconds?: number;
  /** A token closer than this to expiry is renewed before it is handed out (default 5 min). */
  readonly renewMarginMs?: number;
  /** Time allowed for one request to tokman (default 20 s). */
  readonly timeoutMs?: number;
  readonly fetch?: TokmanFetch;
  readonly now?: () => Date;
  readonly logger?: Logger;
}

/** A renewing token of one repository and permission set. */
export interface TokmanSource {
  /** The token: synchronously while the cached one is fresh. Rejects with BTL_PROXY_CREDENTIAL. */
  get(): string | Promise<string>;
  /** The upstream refused `token` (401): the next `get()` asks tokman with `force_refresh`. */
  invalidate(token: string): void;
  /** Stops renewing and aborts a request under way. */
  close(): void;
}

/** tokman's own ceiling for `min_ttl`. */
const MAX_MIN_TTL_S = 3000;
/** A failed request is remembered this long: callers in the meantime fail at once. */
const FAILURE_HOLD_MS = 1_000;
/** Background renewals ask for this much more than `min_ttl`, so tokman mints a new token. */
const RENEW_LEAD_S = 60;
/** A token with less lifetime than this is refused outright (tokman never hands one out). */
const MIN_USABLE_MS = 60_000;
/** Pause after a renewal that brought back the token already held. */
const UNRENEWED_PAUSE_MS = 30_000;
/** At most one `force_refresh` per source in this time, whatever the upstream answers. */
const FORCE_COOLDOWN_MS = 30_000;
/** Largest tokman answer read. */
const MAX_ANSWER_CHARS = 64 * 1024;
/** Printable ASCII without whitespace, 1 to 16 KiB: anything else would corrupt a header. */
const TOKEN_VALUE = /^[\x21-\x7e]{1,16384}$/;
/** tokman's caller keys: what its `Authorization` parser accepts. */
const KEY_VALUE = /^[\x21-\x7e]{1,4096}$/;
const TIMER_MAX_MS = 2 ** 31 - 1;

/**
 * Creates the token source of one repository and permission set; nothing is fetched until the
 * first `get()`. Throws ProxyError BTL_PROXY_CONFIG for bad timing options.
 */
export function createTokmanSource(options: TokmanSourceOptions): TokmanSource {
  const minTtl = options.minTtlSeconds ?? 600;
  const renewMarginMs = options.renewMarginMs ?? 300_000;
  if (!Number.isInteger(minTtl) || minTtl < 60 || minTtl > MAX_MIN_TTL_S)
    throw new ProxyError(
      "BTL_PROXY_CONFIG",
      `Expected \`minTtlSeconds\` to be an integer from 60 to ${MAX_MIN_TTL_S}, got ${String(minTtl)}`,
    );
  if (!Number.isInteger(renewMarginMs) || renewMarginMs < 0 || renewMarginMs >= minTtl * 1000)
    throw new ProxyError(
      "BTL_PROXY_CONFIG",
      `Expected \`renewMarginMs\` to be an integer from 0 to below \`minTtlSeconds\` × 1000, got ${String(renewMarginMs)}`,
    );
  const { repository, key } = options;
  const base = options.url.replace(/\/+$/, "");
  const clock = () => (options.now ? options.now().getTime() : Date.now());
  const log = options.logger ?? silentLogger;
  const fetchAnswer = options.fetch ?? ((url, init) => fetch(url, init));
  const timeoutMs = options.timeoutMs ?? 20_000;
  // Renewal starts once the token has no more than `min_ttl` left: from then on tokman, asked
  // for a little more, mints a new one rather than answering with its cached one.
  const renewAheadMs = minTtl * 1000;
  const [owner = "", name = ""] = repository.split("/");
  const query = new URLSearchParams();
  if (options.permissions !== undefined) {
    query.set(
      "permissions",
      Object.entries(options.permissions)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([permission, level]) => `${permission}:${level}`)
        .join(","),
    );
  }
  const target = `${base}/api/${encodeURIComponent(owner)}/${encodeURIComponent(name)}`;

  let current: { token: string; expiresAt: number } | undefined;
  let pending: Promise<string> | undefined;
  let failure: { error: ProxyError; at: number } | undefined;
  let forceNext = false;
  let lastForcedAt: number | undefined;
  /** After a renewal that brought back the same token, requests do not ask again before this. */
  let quietUntil = 0;
  let refused: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const aborter = new AbortController();

  const fail = (message: string, cause?: unknown) =>
    new ProxyError("BTL_PROXY_CREDENTIAL", message, cause === undefined ? {} : { cause });

  /** One request to tokman: the token and its expiry, or a ProxyError naming tokman's code. */
  async function ask(force: boolean, ttl: number) {
    const params = new URLSearchParams(query);
    params.set("min_ttl", String(ttl));
    if (force) params.set("force_refresh", "1");
    let status: number;
    let text: string;
    try {
      const answer = await fetchAnswer(`${target}?${params}`, {
        headers: { authorization: `Bearer ${key}`, accept: "application/json" },
        redirect: "manual", // SECURITY: the key never follows a redirect
        signal: AbortSignal.any([aborter.signal, AbortSignal.timeout(timeoutMs)]),
      });
      status = answer.status;
      text = await answer.text();
    } catch (error) {
      throw fail(`tokman cannot be reached for ${repository} (${errorName(error)})`, error);
    }
    let body: Record<string, unknown> = {};
    try {
      const value: unknown = text.length <= MAX_ANSWER_CHARS ? JSON.parse(text) : undefined;
      if (typeof value === "object" && value !== null) body = value as Record<string, unknown>;
    } catch {}
    if (status !== 200) {
      const code =
        typeof body.code === "string" && /^[A-Z][A-Z0-9_]{0,63}$/.test(body.code)
          ? `, ${body.code}`
          : "";
      throw fail(`tokman refused the token for ${repository} (HTTP ${status}${code})`);
    }
    const token = body.access_token;
    const expiresAt = typeof body.expires_at === "string" ? Date.parse(body.expires_at) : NaN;
    if (typeof token !== "string" || !TOKEN_VALUE.test(token) || Number.isNaN(expiresAt))
      throw fail(`tokman's answer for ${repository} holds no usable token`);
    if (expiresAt - clock() <= MIN_USABLE_MS)
      throw fail(
        `tokman answered a token for ${repository} that expires too soon (check the clocks)`,
      );
    return { token, expiresAt };
  }

  /** Fetches (forced once after a 401) and adopts the answer; callers share the promise. */
  function start(background: boolean): Promise<string> {
    const ttl = background ? Math.min(MAX_MIN_TTL_S, minTtl + RENEW_LEAD_S) : minTtl;
    const run = async (): Promise<string> => {
      try {
        for (;;) {
          const force = forceNext;
          forceNext = false;
          if (force) lastForcedAt = clock();
          let fresh: { token: string; expiresAt: number };
          try {
            fresh = await ask(force, ttl);
          } catch (error) {
            if (force) forceNext = true;
            throw error;
          }
          // tokman still had the token the upstream just refused: ask again, forced.
          if (!force && fresh.token === refused) {
            forceNext = true;
            continue;
          }
          const renewed = fresh.token !== current?.token;
          if (!closed) adopt(fresh, renewed);
          failure = undefined;
          log.info(
            {
              repository,
              fingerprint: fingerprint(fresh.token),
              expiresAt: new Date(fresh.expiresAt).toISOString(),
              forced: force,
            },
            "token from tokman",
          );
          return fresh.token;
        }
      } catch (error) {
        const failed = error as ProxyError;
        failure = { error: failed, at: clock() };
        log.warn({ repository, code: failed.code, reason: failed.message }, "tokman token failed");
        throw error;
      } finally {
        // Settled before any caller resumes: the next get() sees the new state.
        pending = undefined;
      }
    };
    const promise = run();
    pending = promise;
    return promise;
  }

  function adopt(fresh: { token: string; expiresAt: number }, renewed: boolean): void {
    current = fresh;
    forceNext = false;
    clearTimeout(timer);
    // Wake up when renewal is due. A token that came back unrenewed (clocks apart by more than
    // the lead) is asked for again after a pause, not on every request.
    const now = clock();
    if (!renewed) quietUntil = now + UNRENEWED_PAUSE_MS;
    const due = fresh.expiresAt - renewAheadMs - now;
    const delay = Math.max(due, renewed ? 1_000 : UNRENEWED_PAUSE_MS);
    timer = setTimeout(() => renewInBackground(true), Math.min(TIMER_MAX_MS, delay));
    timer.unref();
  }

  function renewInBackground(timed = false): void {
    if (closed || pending !== undefined) return;
    if (!timed && clock() < quietUntil) return;
    if (failure !== undefined && clock() - failure.at < FAILURE_HOLD_MS) return;
    start(true).catch(() => {}); // logged in start(); the next get() tries again
  }

  return {
    get() {
      if (closed) return Promise.reject(fail(`the token source of ${repository} is closed`));
      const now = clock();
      const held = current;
      if (held !== undefined) {
        const left = held.expiresAt - now;
        if (left > renewMarginMs) {
          if (left <= renewAheadMs) renewInBackground();
          return held.token;
        }
      }
      if (pending !== undefined) return pending;
      if (failure !== undefined && now - failure.at < FAILURE_HOLD_MS)
        return Promise.reject(failure.error);
      return start(false);
    },
    invalidate(token) {
      // Only the token in use counts: a 401 for one already replaced needs nothing more.
      if (closed || current?.token !== token) return;
      const now = clock();
      if (lastForcedAt !== undefined && now - lastForcedAt < FORCE_COOLDOWN_MS) return;
      log.warn({ repository, fingerprint: fingerprint(token) }, "upstream refused the token");
      refused = token;
      current = undefined;
      forceNext = true;
      clearTimeout(timer);
    },
    close() {
      closed = true;
      clearTimeout(timer);
      aborter.abort(new Error("token source closed"));
    },
  };
}

/** tokman's address and the proxy's caller key there. */
export interface TokmanSettings {
  readonly url: string;
  readonly key: string;
  /** The clock tokens' expiry is read against (tests). */
  readonly now?: () => Date;
}

/** The tokman sources of a proxy's routes, shared by routes with one repository and scope. */
export interface TokmanSources {
  get(route: ProxyRoute): string | Promise<string>;
  invalidate(route: ProxyRoute, token: string): void;
  close(): void;
}

/**
 * Checks tokman's URL and key; `names` says what to call them in errors (option or variable).
 * Throws ProxyError BTL_PROXY_CONFIG (URL) or BTL_PROXY_TOKEN (key only), naming, never echoing.
 */
export function checkTokmanSettings(
  url: string | undefined,
  key: string | undefined,
  names: { readonly url: string; readonly key: string },
  paths: readonly string[],
): { url: string; key: string } {
  const uses = `used by ${paths.join(", ")}`;
  const problems: string[] = [];
  let badUrl = false;
  if (url === undefined || url === "") {
    problems.push(`${names.url} is unset or empty (${uses})`);
    badUrl = true;
  } else {
    const problem = checkHttpUrl(url);
    if (problem) {
      problems.push(`Expected ${names.url} ${problem}`);
      badUrl = true;
    }
  }
  if (key === undefined || key === "") problems.push(`${names.key} is unset or empty (${uses})`);
  else if (!KEY_VALUE.test(key))
    problems.push(`${names.key} is not 1 to 4096 printable ASCII characters without whitespace`);
  if (problems.length > 0)
    throw new ProxyError(badUrl ? "BTL_PROXY_CONFIG" : "BTL_PROXY_TOKEN", problems.join("; "));
  return { url: url as string, key: key as string };
}

/**
 * One source per distinct repository and permission set of the routes that name `tokman`.
 * Throws ProxyError BTL_PROXY_CONFIG when such a route exists and `settings` is missing or its
 * URL is wrong, BTL_PROXY_TOKEN when the key is.
 */
export function createTokmanSources(
  routes: readonly ProxyRoute[],
  settings: TokmanSettings | undefined,
  options: { readonly ca?: string | undefined; readonly logger?: Logger | undefined } = {},
): TokmanSources {
  const used = routes.filter((route) => route.tokman !== undefined);
  const ofRoute = new Map<string, TokmanSource>();
  if (used.length === 0) return { get: (route) => missing(route), invalidate() {}, close() {} };
  if (settings === undefined)
    throw new ProxyError(
      "BTL_PROXY_CONFIG",
      `routes ${used.map((r) => r.path).join(", ")} take their token from tokman, but the \`tokman\` option ({ url, key }) is missing`,
    );
  const { url, key } = checkTokmanSettings(
    settings.url,
    settings.key,
    { url: "`tokman.url`", key: "`tokman.key`" },
    used.map((route) => route.path),
  );
  // SECURITY: undici's request follows no redirect; TLS is verified, with the proxy's extra CA.
  const agent = new Agent({
    connect: {
      rejectUnauthorized: true,
      ...(options.ca === undefined ? {} : { ca: [...rootCertificates, options.ca] }),
    },
    connectTimeout: 10_000,
    keepAliveTimeout: 4_000,
  });
  const viaUndici: TokmanFetch = async (target, init) => {
    const answer = await request(target, {
      method: "GET",
      headers: init.headers,
      signal: init.signal,
      dispatcher: agent,
    });
    return { status: answer.statusCode, text: () => answer.body.text() };
  };
  const byScope = new Map<string, TokmanSource>();
  for (const route of used) {
    const spec = route.tokman as ProxyTokman;
    const scope = `${spec.repository.toLowerCase()}|${Object.entries(spec.permissions ?? {})
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .join(",")}`;
    let source = byScope.get(scope);
    if (source === undefined) {
      source = createTokmanSource({
        url,
        key,
        repository: spec.repository,
        permissions: spec.permissions,
        fetch: viaUndici,
        ...(settings.now ? { now: settings.now } : {}),
        ...(options.logger ? { logger: options.logger } : {}),
      });
      byScope.set(scope, source);
    }
    ofRoute.set(route.path, source);
  }
  return {
    get: (route) => ofRoute.get(route.path)?.get() ?? missing(route),
    invalidate: (route, token) => ofRoute.get(route.path)?.invalidate(token),
    close() {
      for (const source of byScope.values()) source.close();
      void agent.destroy().catch(() => {});
    },
  };
}

function missing(route: ProxyRoute): Promise<string> {
  return Promise.reject(
    new ProxyError("BTL_PROXY_CREDENTIAL", `route ${route.path} has no tokman token source`),
  );
}
