/**
 * GitHub App routes' tokens, from tokman through `@bottle/tokman/client`: one renewing source
 * per repository and permission set (renewal ahead of expiry, single flight, `force_refresh`
 * after a 401); a failure becomes BTL_PROXY_CREDENTIAL. Requests to tokman go through undici
 * with the proxy's CA and follow no redirect. SECURITY: the caller key goes only into the
 * Authorization header of requests to tokman; neither it nor a token is logged or put in an
 * error.
 */
import type { Logger } from "@bottle/log";
import {
  checkTokmanSettings as checkSettings,
  createTokmanClient,
  type TokenSource,
  type TokmanClientOptions,
  type TokmanFetch,
} from "@bottle/tokman/client";
import type { Agent } from "undici";
import { ProxyError } from "./errors.ts";
import type { ProxyRoute, TokmanEntry } from "./routes.ts";

/** tokman's address and the proxy's caller key there (and, in tests, the clock). */
export type TokmanSettings = Pick<TokmanClientOptions, "url" | "key" | "now">;

/** The tokman sources of a proxy's routes, shared by routes with one repository and scope. */
export interface TokmanSources {
  get(route: ProxyRoute): string | Promise<string>;
  invalidate(route: ProxyRoute, token: string): void;
  close(): void;
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
  // undici's whole API is loaded on the first request to tokman, not by every proxy at start.
  let undici: Promise<{ agent: Agent; request: typeof import("undici").request }> | undefined;
  const load = async () => {
    const { Agent, request } = await import("undici");
    // node:tls too: a launcher that only checks the settings (`@bottle/cred-proxy/plan`) skips it.
    const { rootCertificates } = await import("node:tls");
    // SECURITY: undici's request follows no redirect; TLS is verified, with the proxy's extra CA.
    const agent = new Agent({
      connect: {
        rejectUnauthorized: true,
        ...(options.ca === undefined ? {} : { ca: [...rootCertificates, options.ca] }),
      },
      connectTimeout: 10_000,
      keepAliveTimeout: 4_000,
    });
    return { agent, request };
  };
  const viaUndici: TokmanFetch = async (target, init) => {
    undici ??= load();
    const { agent, request } = await undici;
    const answer = await request(target, {
      method: "GET",
      headers: init.headers,
      signal: init.signal,
      dispatcher: agent,
    });
    return { status: answer.statusCode, body: answer.body };
  };
  const client = createTokmanClient({
    url,
    key,
    fetch: viaUndici,
    wrapError: (error) => new ProxyError("BTL_PROXY_CREDENTIAL", error.message, { cause: error }),
    ...(settings.now ? { now: settings.now } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
  });
  const ofRoute = new Map<string, TokenSource>(
    used.map((route) => [route.path, client.source(route.tokman as TokmanEntry)]),
  );
  return {
    get: (route) => ofRoute.get(route.path)?.get() ?? missing(route),
    invalidate: (route, token) => ofRoute.get(route.path)?.invalidate(token),
    close() {
      client.close();
      void undici?.then(({ agent }) => agent.destroy()).catch(() => {});
    },
  };
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
  const problems = checkSettings({ url, key }, names);
  const found = [problems.url, problems.key].filter((problem) => problem !== undefined);
  if (found.length === 0) return { url: url as string, key: key as string };
  throw new ProxyError(
    problems.url === undefined ? "BTL_PROXY_TOKEN" : "BTL_PROXY_CONFIG",
    found.map((problem) => `${problem} (used by ${paths.join(", ")})`).join("; "),
  );
}

function missing(route: ProxyRoute): Promise<string> {
  return Promise.reject(
    new ProxyError("BTL_PROXY_CREDENTIAL", `route ${route.path} has no tokman token source`),
  );
}
