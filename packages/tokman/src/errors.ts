/** The error table of @bottle/tokman. */
import { COMMON_ERRORS, defineErrors, errorClass } from "@bottle/errors";

export const { table: TOKMAN_ERRORS, codes } = defineErrors({
  BTL_TOKMAN_CONFIG: {
    status: 500,
    exit: 2,
    meaning:
      "The configuration is invalid: a malformed file, an unknown key, a private key or encryption key file that is missing or group/world readable.",
  },
  BTL_TOKMAN_BAD_REQUEST: {
    status: 400,
    exit: 2,
    meaning: "A malformed request: bad repository name, `min_ttl` or `permissions`.",
  },
  BTL_TOKMAN_UNAUTHENTICATED: {
    status: 401,
    exit: 1,
    meaning: "No caller key, or one that matches no configured caller.",
  },
  BTL_TOKMAN_SCOPE_DENIED: {
    status: 403,
    exit: 1,
    meaning:
      "The caller's policy does not cover this repository or these permissions, or GitHub refused the down-scoped token (422).",
  },
  BTL_TOKMAN_NOT_INSTALLED: {
    status: 404,
    exit: 1,
    meaning: "The GitHub App is not installed on this repository (cached briefly).",
  },
  BTL_TOKMAN_SUSPENDED: {
    status: 423,
    exit: 1,
    meaning: "The app's installation is suspended.",
  },
  BTL_TOKMAN_RATE_LIMITED: {
    status: 429,
    exit: 1,
    meaning: "GitHub's rate limit is exhausted; `reset_at` and `Retry-After` say when to retry.",
  },
  BTL_TOKMAN_UPSTREAM_UNAVAILABLE: {
    status: 503,
    exit: 1,
    meaning: "GitHub could not be reached or answered 5xx after the retries.",
  },
  BTL_TOKMAN_MISCONFIGURED: {
    status: 502,
    exit: 1,
    meaning:
      "GitHub refused the app's own credentials (401 after clock-skew correction): wrong app id, client id or private key.",
  },
  BTL_TOKMAN_NOT_FOUND: {
    status: 404,
    exit: 1,
    meaning: "No such endpoint.",
  },
  BTL_TOKMAN_STORE: {
    status: 500,
    exit: 3,
    meaning: "The token store cannot be opened or read (a wrong encryption key, a corrupt file).",
  },
  BTL_TOKMAN_BUSY: {
    status: 503,
    exit: 1,
    meaning:
      "More requests in flight than `--max-in-flight` allows; retry after the `Retry-After` seconds.",
  },
  BTL_TOKMAN_LISTEN: {
    status: 500,
    exit: 4,
    meaning:
      "tokman cannot listen: the address is in use, or the socket path is a live socket or another file.",
  },
  BTL_TOKMAN_TOO_MANY_CONNECTIONS: {
    status: 503,
    exit: 1,
    meaning:
      "A new connection beyond `--max-connections` was closed at once, without an answer; logged with the counts.",
  },
  BTL_TOKMAN_CLIENT_CONFIG: {
    status: 500,
    exit: 2,
    meaning:
      "The client's settings are invalid: tokman's URL (https, or http to a loopback host), the caller key, the repository, the permissions or a timing option.",
  },
  BTL_TOKMAN_UNREACHABLE: {
    status: 502,
    exit: 1,
    meaning:
      "The client could not reach tokman (connection refused, timeout, TLS), or was closed while asking.",
  },
  BTL_TOKMAN_BAD_ANSWER: {
    status: 502,
    exit: 1,
    meaning:
      "tokman's answer was not one the client accepts: another status without a tokman code (a redirect is never followed), more than 64 KiB, no usable token, or a token that expires within a minute.",
  },
  ...COMMON_ERRORS,
});

export type TokmanErrorCode = keyof typeof TOKMAN_ERRORS;

/** An error of tokman; `resetAt` is set for BTL_TOKMAN_RATE_LIMITED. */
export class TokmanError extends errorClass(TOKMAN_ERRORS) {
  readonly resetAt: Date | undefined;
  constructor(
    code: TokmanErrorCode,
    message: string,
    options: { cause?: unknown; resetAt?: Date } = {},
  ) {
    super(code, message, options.cause === undefined ? {} : { cause: options.cause });
    this.resetAt = options.resetAt;
  }
}
