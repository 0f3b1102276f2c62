/** Header rules shared by the manifest and the proxy. */

/** An HTTP header name (an RFC 9110 token), at most 64 characters. */
export const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$/;

/** Hop-by-hop headers (RFC 9110 §7.6.1, plus the non-standard ones proxies still meet). */
export const HOP_BY_HOP_HEADERS: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/**
 * SECURITY: headers that cannot carry a route's credential: hop-by-hop ones (a downstream hop
 * drops them), framing and routing ones, `cookie`, and the forwarding headers.
 */
const NOT_FOR_CREDENTIALS: ReadonlySet<string> = new Set([
  ...HOP_BY_HOP_HEADERS,
  "host",
  "content-length",
  "content-type",
  "content-encoding",
  "expect",
  "cookie",
  "forwarded",
]);

/** The names (lowercase) a credential header may never have; `x-forwarded-*` neither. */
export const FORBIDDEN_CREDENTIAL_HEADERS: readonly string[] = [...NOT_FOR_CREDENTIALS].sort();

/** True when `name` (any case) may carry a route's credential (`auth: { header: name }`). */
export function isCredentialHeader(name: string): boolean {
  const lower = name.toLowerCase();
  return !NOT_FOR_CREDENTIALS.has(lower) && !lower.startsWith("x-forwarded-");
}
