/** The error table of @bottle/gate-tokens: one row per stable code (documented in the README). */
import { COMMON_ERRORS, defineErrors, errorClass } from "@bottle/errors";

export const { table: TOKEN_ERRORS, codes } = defineErrors({
  BTL_TOKENS_INVALID_INPUT: {
    status: 400,
    exit: 2,
    meaning: "A project, task, scope, expiry, selector, option or argument is not valid.",
  },
  BTL_TOKENS_MISSING: {
    status: 503,
    exit: 3,
    meaning: "The token file does not exist (yet): nothing can be verified.",
  },
  BTL_TOKENS_FILE_MODE: {
    status: 503,
    exit: 3,
    meaning:
      "The token file is readable by group or others, or its directory is not 0700 (group or others have any access).",
  },
  BTL_TOKENS_CORRUPT: {
    status: 503,
    exit: 3,
    meaning: "The token file is not a valid token file; it is left untouched.",
  },
  BTL_TOKENS_IO: {
    status: 503,
    exit: 3,
    meaning: "The token file or its directory cannot be read or written.",
  },
  BTL_TOKENS_LOCKED: {
    status: 503,
    exit: 3,
    meaning: "Another writer held the lock for too long, or the lock was lost mid-change.",
  },
  BTL_TOKENS_NOT_FOUND: {
    status: 404,
    exit: 1,
    meaning: "No token matched the revoke selector; nothing was written.",
  },
  BTL_TOKENS_DENIED: {
    status: 401,
    exit: 1,
    meaning: "The token is malformed, unknown (or revoked), or expired.",
  },
  ...COMMON_ERRORS,
});

/** A gate-tokens error code. */
export type TokenErrorCode = keyof typeof TOKEN_ERRORS;

/**
 * The one error class of @bottle/gate-tokens; match on `code`.
 * SECURITY: messages name files, ids, projects and tasks, never a token or a digest.
 */
export class TokenStoreError extends errorClass(TOKEN_ERRORS) {}
