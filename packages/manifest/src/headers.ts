/** Header rules shared by the manifest and the proxy. */

/** An HTTP header name (an RFC 9110 token), at most 64 characters. */
export const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$/;

/** Hop-by-hop headers (RFC 9110 §7.6.1, plus the non-standard ones proxies still meet). */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
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
 * SECURITY: headers that change framing, routing, hop semantics or the client's session cannot
 * carry a route's credential (besides every hop-by-hop header and `x-forwarded-*`).
 */
const NOT_FOR_CREDENTIALS: ReadonlySet<string> = new Set([
  ...HOP_BY_HOP,
  "host",
  "content-length",
  "content-type",
  "content-encoding",
  "expect",
  "cookie",
  "forwarded",
]);

/** The names (lowercase) a credential header may never have; `x-forwarded-*` too. */
export const FORBIDDEN_CREDENTIAL_HEADERS: readonly string[] = [...NOT_FOR_CREDENTIALS].sort();

/**
 * What is wrong with `name` as the header a route sends its credential in (to follow
 * "Expected `header` …"), or undefined. Case-insensitive.
 */
export function checkCredentialHeader(name: string): string | undefined {
  if (!HEADER_NAME.test(name)) return "to be an HTTP header name";
  const lower = name.toLowerCase();
  if (NOT_FOR_CREDENTIALS.has(lower) || lower.startsWith("x-forwarded-"))
    return "to be a header that does not change framing, routing or hop semantics";
  return undefined;
}
