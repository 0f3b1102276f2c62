/** The error table of @bottle/gate-server. */
import { COMMON_ERRORS, defineErrors, errorClass } from "@bottle/errors";

export const { table: GATE_ERRORS, codes } = defineErrors({
  BTL_GATE_CONFIG: {
    status: 500,
    exit: 2,
    meaning: "The gate's options are invalid (paths, port, hook command, listener choice).",
  },
  BTL_GATE_LISTEN: {
    status: 500,
    exit: 3,
    meaning: "The gate cannot listen: address in use, socket path taken, or no inherited socket.",
  },
  BTL_GATE_NOT_FOUND: {
    status: 404,
    exit: 1,
    meaning:
      "Not a smart-HTTP git endpoint, or no such repository (answered before auth for bad paths).",
  },
  BTL_GATE_UNAUTHENTICATED: {
    status: 401,
    exit: 1,
    meaning: "No, malformed, unknown, revoked or expired token.",
  },
  BTL_GATE_FORBIDDEN: {
    status: 403,
    exit: 1,
    meaning:
      "A valid token for another project, or without the scope (read for fetch, write for push).",
  },
  BTL_GATE_HOOK_REFUSED: {
    status: 403,
    exit: 1,
    meaning: "The access hook refused the fetch; its reason is shown to the git client.",
  },
  BTL_GATE_TOKENS_UNAVAILABLE: {
    status: 503,
    exit: 1,
    meaning: "The token file is missing, unreadable, too open or malformed: every token is denied.",
  },
  BTL_GATE_BUSY: {
    status: 503,
    exit: 1,
    meaning: "Too many requests at once; retry after the `Retry-After` seconds.",
  },
  BTL_GATE_TOO_MANY_CONNECTIONS: {
    status: 503,
    exit: 1,
    meaning:
      "Too many open connections (`--max-connections`): new ones are closed unanswered and logged.",
  },
  BTL_GATE_SHUTTING_DOWN: {
    status: 503,
    exit: 1,
    meaning: "The gate is stopping (SIGTERM); in-flight requests finish, new ones are refused.",
  },
  ...COMMON_ERRORS,
});

/** An error of the gate server. */
export class GateError extends errorClass(GATE_ERRORS) {}
