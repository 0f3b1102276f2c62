/** The error table of @bottle/cred-proxy. */
import { COMMON_ERRORS, defineErrors, errorClass } from "@bottle/errors";

export const { table: PROXY_ERRORS, codes } = defineErrors({
  BTL_PROXY_CONFIG: {
    status: 500,
    exit: 2,
    meaning:
      "Invalid options or routes.json: a malformed route, an http:// upstream that is not loopback, TLS verification switched off globally, an unreadable CA file.",
  },
  BTL_PROXY_TOKEN: {
    status: 500,
    exit: 2,
    meaning:
      "A route's token slot (or, for GitHub App routes, tokman's caller key) is unset, empty, or not printable ASCII without whitespace: the proxy does not start.",
  },
  BTL_PROXY_LISTEN: {
    status: 500,
    exit: 3,
    meaning: "The proxy cannot listen: address in use or socket path taken.",
  },
  BTL_PROXY_BAD_PATH: {
    status: 400,
    exit: 1,
    meaning:
      "A refused request target: absolute-form, dot segments (raw or encoded), encoded slashes or backslashes, empty segments, control or non-ASCII characters.",
  },
  BTL_PROXY_NO_ROUTE: {
    status: 404,
    exit: 1,
    meaning: "No route's prefix matches the path.",
  },
  BTL_PROXY_METHOD: {
    status: 405,
    exit: 1,
    meaning: "CONNECT, TRACE and TRACK are refused; so are upgrades (WebSocket).",
  },
  BTL_PROXY_UPSTREAM: {
    status: 502,
    exit: 1,
    meaning:
      "The upstream could not be reached, refused the TLS handshake, or broke the connection.",
  },
  BTL_PROXY_TIMEOUT: {
    status: 504,
    exit: 1,
    meaning: "The upstream stayed silent for longer than the idle timeout.",
  },
  BTL_PROXY_BUSY: {
    status: 503,
    exit: 1,
    meaning: "Too many requests at once.",
  },
  BTL_PROXY_CREDENTIAL: {
    status: 502,
    exit: 1,
    meaning:
      "A GitHub App route's token could not be had from tokman: unreachable, refused (the log names tokman's code), or an unusable answer.",
  },
  BTL_PROXY_PUSH_REFUSED: {
    status: 403,
    exit: 1,
    meaning:
      "A git push (`info/refs?service=git-receive-pack` or `git-receive-pack`) on a route without `git_push`: pushes go through the git gate.",
  },
  BTL_PROXY_NOT_ALLOWED: {
    status: 403,
    exit: 1,
    meaning:
      "The route's allow rules name no rule for this method and path (or the request carries a method-override header).",
  },
  BTL_PROXY_TOO_MANY_CONNECTIONS: {
    status: 503,
    exit: 1,
    meaning:
      "A new connection beyond the cap on open connections (`maxConnections`, `--max-connections`) was closed at once, without an answer; logged with a running count.",
  },
  ...COMMON_ERRORS,
});

export type ProxyErrorCode = keyof typeof PROXY_ERRORS;

/** An error of the credential proxy. */
export class ProxyError extends errorClass(PROXY_ERRORS) {}
