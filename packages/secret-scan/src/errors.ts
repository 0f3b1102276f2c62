/** The error table of @bottle/secret-scan. */
import { COMMON_ERRORS, defineErrors, errorClass } from "@bottle/errors";

export const { table: SCAN_ERRORS, codes } = defineErrors({
  BTL_SCAN_CONFIG: {
    status: 500,
    exit: 2,
    meaning:
      "Invalid scan options: a bad rule or regex, a malformed object id or range, gitleaks required but absent.",
  },
  BTL_SCAN_SECRETS_FOUND: {
    status: 403,
    exit: 1,
    meaning: "The scan found secrets in what it read.",
  },
  BTL_SCAN_OBJECT_TOO_LARGE: {
    status: 403,
    exit: 1,
    meaning:
      "An object is larger than the scan reads (`maxObjectBytes`); it is refused, never passed unread.",
  },
  BTL_SCAN_FAILED: {
    status: 500,
    exit: 3,
    meaning:
      "The scanner crashed, timed out or gave unreadable output; nothing counts as scanned (fail closed).",
  },
  BTL_SCAN_GIT: {
    status: 500,
    exit: 1,
    meaning: "A git command failed, timed out, or an object could not be read.",
  },
  ...COMMON_ERRORS,
});

/** A secret-scan error code. */
export type ScanErrorCode = keyof typeof SCAN_ERRORS;

/** The one error class of @bottle/secret-scan; match on `code`. */
export class ScanError extends errorClass(SCAN_ERRORS) {}
