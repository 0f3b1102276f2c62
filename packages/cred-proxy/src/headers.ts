/**
 * Header rewriting both ways. Toward the upstream: hop-by-hop headers and every name listed in
 * `Connection` go, every client credential goes, `Host` comes from the route, and then the
 * route's credential is set. Toward the client: hop-by-hop headers go and `Location` is mapped
 * back onto the route prefix when it points into the route's own upstream.
 */

import { HOP_BY_HOP_HEADERS } from "@bottle/manifest/policy";
import type { ProxyRoute } from "./routes.ts";

type ProxyAuth = ProxyRoute["auth"];

/** Client credentials, compared after lowercasing and removing `-`, `_` and `.`. */
const CREDENTIAL_NAMES: ReadonlySet<string> = new Set([
  "authorization",
  "proxyauthorization",
  "cookie",
  "xapikey",
  "privatetoken",
]);

/** Headers a client must not set toward the upstream for other reasons. */
const DROPPED_TOWARD_UPSTREAM: ReadonlySet<string> = new Set([
  "host",
  "forwarded",
  "x-real-ip",
  // Answered by the proxy itself (see the server's checkContinue handler); undici refuses it.
  "expect",
]);

function squash(name: string): string {
  return name.toLowerCase().replace(/[-_.]/g, "");
}

const NO_NAMES: ReadonlySet<string> = new Set();
/** The usual `Connection` value: it lists only a name that is hop-by-hop anyway. */
const KEEP_ALIVE = /^\s*keep-alive\s*$/i;

/** The names a `Connection` header lists (lowercased); `values` are its field values. */
export function connectionTokens(values: readonly string[]): ReadonlySet<string> {
  if (values.length === 0 || (values.length === 1 && KEEP_ALIVE.test(values[0] ?? ""))) {
    return NO_NAMES;
  }
  const names = new Set<string>();
  for (const value of values)
    for (const token of value.split(",")) {
      const name = token.trim().toLowerCase();
      if (name !== "") names.add(name);
    }
  return names;
}

/**
 * True when `name` is a client credential for this route: `Authorization`, `Cookie`,
 * `Proxy-Authorization`, `x-api-key` in any spelling (`X_Api_Key`, `x.api.key`), and the
 * route's own credential header.
 */
export function isClientCredential(name: string, auth: ProxyAuth): boolean {
  const squashed = squash(name);
  if (CREDENTIAL_NAMES.has(squashed)) return true;
  return "header" in auth && squashed === squash(auth.header);
}

/** Method-override headers, squashed as {@link isClientCredential} compares names. */
const METHOD_OVERRIDES: ReadonlySet<string> = new Set([
  "xhttpmethodoverride",
  "xhttpmethod",
  "xmethodoverride",
]);

/**
 * True when the client sent a method-override header in any spelling: an upstream honouring
 * one would run another method than the one a route's allow rules checked.
 */
export function overridesMethod(rawHeaders: readonly string[]): boolean {
  for (let i = 0; i < rawHeaders.length; i += 2)
    if (METHOD_OVERRIDES.has(squash(rawHeaders[i] ?? ""))) return true;
  return false;
}

/** The `[name, value]` carrying the route's credential. */
export function credentialHeader(auth: ProxyAuth, token: string): [string, string] {
  if ("header" in auth) return [auth.header, token];
  if (auth.scheme === "Basic") {
    const basic = Buffer.from(`${auth.username}:${token}`).toString("base64");
    return ["authorization", `Basic ${basic}`];
  }
  return ["authorization", `${auth.scheme} ${token}`];
}

/**
 * The headers sent upstream, as a flat `[name, value, …]` list, from the client's raw headers.
 * SECURITY: the credential is added after all stripping, so `Connection: x-api-key` can remove
 * only the client's copy; it is set exactly once (overwrite, never append).
 */
export function upstreamHeaders(
  rawHeaders: readonly string[],
  route: ProxyRoute,
  token: string,
): string[] {
  const connection: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2)
    if (rawHeaders[i]?.toLowerCase() === "connection") connection.push(rawHeaders[i + 1] ?? "");
  const listed = connectionTokens(connection);
  const out: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] ?? "";
    const lower = name.toLowerCase();
    if (HOP_BY_HOP_HEADERS.has(lower) || listed.has(lower)) continue;
    if (DROPPED_TOWARD_UPSTREAM.has(lower) || lower.startsWith("x-forwarded-")) continue;
    if (isClientCredential(lower, route.auth)) continue;
    out.push(name, rawHeaders[i + 1] ?? "");
  }
  out.push("host", route.host);
  out.push(...credentialHeader(route.auth, token));
  return out;
}

/** Response headers as undici hands them over: lowercased names, repeated ones as arrays. */
export type ResponseHeaders = Record<string, string | string[] | undefined>;

/**
 * The headers sent back to the client: hop-by-hop and `Connection`-listed names removed,
 * `Set-Cookie` removed, `Location` mapped by {@link rewriteLocation}, and the URLs of a `Link`
 * header (pagination, RFC 8288) mapped onto `proxyBase` (`http://<the client's Host>`) when they
 * point into the route's upstream, so page-following clients stay on the proxy.
 */
export function clientHeaders(
  headers: ResponseHeaders,
  route: ProxyRoute,
  proxyBase?: string,
): ResponseHeaders {
  const connection = headers.connection;
  const listed = connectionTokens(
    connection === undefined ? [] : Array.isArray(connection) ? connection : [connection],
  );
  const out: ResponseHeaders = Object.create(null);
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (value === undefined || HOP_BY_HOP_HEADERS.has(lower) || listed.has(lower)) continue;
    // SECURITY: the proxy never forwards the client's cookies, so a cookie set by the upstream
    // (a session bound to the injected credential) has no use on the agent's side.
    if (lower === "set-cookie") continue;
    if (lower === "location" && typeof value === "string") {
      out[lower] = rewriteLocation(value, route);
      continue;
    }
    if (lower === "link" && proxyBase !== undefined) {
      const links = Array.isArray(value) ? value : [value];
      out[lower] = links.map((link) => rewriteLink(link, route, proxyBase));
      continue;
    }
    out[lower] = value;
  }
  return out;
}

/**
 * Maps a `Location` that points into the route's upstream (same origin, under the base path)
 * onto the route prefix (`/gh-api/…`). Anything else (another host, another scheme, a path
 * outside the base, a relative reference) is returned untouched: the client may follow it, the
 * proxy never does and sends no credential there.
 */
export function rewriteLocation(location: string, route: ProxyRoute): string {
  // Relative references (`next`, `?page=2`) resolve against the proxied URL already.
  if (!/^(?:[A-Za-z][A-Za-z0-9+.-]*:|\/)/.test(location)) return location;
  let url: URL;
  try {
    url = new URL(location, `${route.origin}/`);
  } catch {
    return location;
  }
  if (url.origin !== route.origin) return location;
  const base = route.basePath;
  if (base !== "" && url.pathname !== base && !url.pathname.startsWith(`${base}/`)) return location;
  const rest = url.pathname.slice(base.length).replace(/^\//, "");
  return `${route.path}${rest}${url.search}${url.hash}`;
}

/** Maps each `<url>` of a `Link` field value that points into the route's upstream onto `proxyBase`. */
export function rewriteLink(value: string, route: ProxyRoute, proxyBase: string): string {
  return value.replace(/<([^<>]*)>/g, (whole, url: string) => {
    if (!/^https?:\/\//i.test(url)) return whole;
    const mapped = rewriteLocation(url, route);
    return mapped === url ? whole : `<${proxyBase}${mapped}>`;
  });
}
