/** The error table of @bottle/git-gate. */
import { COMMON_ERRORS, defineErrors, errorClass, isBottleError } from "@bottle/errors";

export const { table: GIT_GATE_ERRORS, codes } = defineErrors({
  BTL_GITGATE_CONFIG: {
    status: 500,
    exit: 2,
    meaning:
      "Invalid options or plan input: a missing or malformed flag, a repository the plan does not know.",
  },
  BTL_GITGATE_UNSAFE_VALUE: {
    status: 500,
    exit: 2,
    meaning:
      "A value to be rendered into a gitconfig, hook, script or known_hosts line holds a newline, NUL or control character.",
  },
  BTL_GITGATE_NO_HOST_KEY: {
    status: 500,
    exit: 2,
    meaning:
      "An SSH upstream has no pinned host key (or a malformed one): the gate refuses to use it.",
  },
  BTL_GITGATE_STATE: {
    status: 500,
    exit: 2,
    meaning:
      "The gate's state directory or a file in it is missing, malformed, or group/world accessible.",
  },
  BTL_GITGATE_CREDENTIAL: {
    status: 500,
    exit: 2,
    meaning:
      "The forwarding credential is missing: an empty or unset token variable, an unreadable or too open identity file.",
  },
  BTL_GITGATE_UPSTREAM_UNREACHABLE: {
    status: 502,
    exit: 1,
    meaning:
      "The upstream could not be reached or authenticated (connection, timeout, host key, credential); fetches and pushes fail closed.",
  },
  BTL_GITGATE_UPSTREAM_REJECTED: {
    status: 502,
    exit: 1,
    meaning:
      "The upstream refused the forwarded push (non-fast-forward, stale lease, protected branch, hook); its reason is shown.",
  },
  BTL_GITGATE_POLICY: {
    status: 403,
    exit: 1,
    meaning:
      "The push breaks the repository's push policy (force-push or delete where the manifest forbids it).",
  },
  BTL_GITGATE_SECRETS_FOUND: {
    status: 403,
    exit: 1,
    meaning: "The scan found secrets in the commits the push adds; the push is rejected.",
  },
  BTL_GITGATE_REF_REFUSED: {
    status: 403,
    exit: 1,
    meaning:
      "The push updates a ref outside refs/heads/* and refs/tags/* (refs/replace/*, refs/notes/*, …); refused before anything is scanned or forwarded.",
  },
  BTL_GITGATE_OBJECT_TOO_LARGE: {
    status: 403,
    exit: 1,
    meaning:
      "The push holds an object larger than git_gate.scan.max_blob_bytes; it is refused rather than forwarded unread.",
  },
  BTL_GITGATE_SCANNER_FAILED: {
    status: 500,
    exit: 3,
    meaning:
      "The scanner crashed, timed out or gave unreadable output; the push is rejected (fail closed).",
  },
  BTL_GITGATE_LOCKED: {
    status: 503,
    exit: 1,
    meaning: "Another fetch or push held the mirror for too long; try again.",
  },
  BTL_GITGATE_GIT: {
    status: 500,
    exit: 1,
    meaning: "A local git command on the mirror failed (its stderr is in the message).",
  },
  BTL_GITGATE_DEPLOY_KEY: {
    status: 502,
    exit: 1,
    meaning:
      "The forge refused or failed to register a deploy key (authentication, permissions, repository not found).",
  },
  BTL_GITGATE_DEPLOY_KEY_TITLE: {
    status: 409,
    exit: 1,
    meaning:
      "A deploy key with this title (or this key) already exists on the repository (Gitea 422).",
  },
  BTL_GITGATE_DEPLOY_KEY_REVOKE: {
    status: 502,
    exit: 1,
    meaning: "A provisioned deploy key could not be revoked; it is still valid on the forge.",
  },
  BTL_GITGATE_NOT_CONFIRMED: {
    status: 400,
    exit: 2,
    meaning:
      "The deploy-key preflight was declined, or there is no terminal to ask and `--yes` was not given.",
  },
  ...COMMON_ERRORS,
});

export type GitGateErrorCode = keyof typeof GIT_GATE_ERRORS;

/** An error of the git gate. */
export class GitGateError extends errorClass(GIT_GATE_ERRORS) {}

/**
 * The scanner's and the git runner's errors (`@bottle/secret-scan`, `BTL_SCAN_*`) as the gate's
 * published codes, so hooks and commands say what they always said; anything else unchanged.
 */
const FROM_SCAN: Readonly<Record<string, GitGateErrorCode>> = {
  BTL_SCAN_CONFIG: "BTL_GITGATE_CONFIG",
  BTL_SCAN_FAILED: "BTL_GITGATE_SCANNER_FAILED",
  BTL_SCAN_OBJECT_TOO_LARGE: "BTL_GITGATE_OBJECT_TOO_LARGE",
  BTL_SCAN_GIT: "BTL_GITGATE_GIT",
  BTL_SCAN_SECRETS_FOUND: "BTL_GITGATE_SECRETS_FOUND",
};

export function asGitGateError(error: unknown): unknown {
  if (!isBottleError(error)) return error;
  const code = FROM_SCAN[error.code];
  return code === undefined ? error : new GitGateError(code, error.message, { cause: error });
}
