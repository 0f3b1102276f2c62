/** The error table of @bottle/manifest: one row per stable code (documented in the README). */
import { defineErrors, errorClass } from "@bottle/errors";

export const { table: MANIFEST_ERRORS, codes } = defineErrors({
  BTL_MANIFEST_READ: {
    status: 400,
    exit: 3,
    meaning: "The manifest file cannot be read (missing, a directory, or permission denied).",
  },
  BTL_MANIFEST_TOO_LARGE: {
    status: 413,
    exit: 2,
    meaning: "The manifest is larger than the size cap (1 MiB); it was not parsed.",
  },
  BTL_MANIFEST_PARSE: {
    status: 400,
    exit: 2,
    meaning: "The text is not valid YAML or JSON, or uses a YAML feature the manifest refuses.",
  },
  BTL_MANIFEST_DUPLICATE_KEY: {
    status: 400,
    exit: 2,
    meaning: "A mapping holds the same key twice.",
  },
  BTL_MANIFEST_VERSION: {
    status: 400,
    exit: 2,
    meaning: "`version` is missing or not a version this release reads (only 1).",
  },
  BTL_MANIFEST_UNKNOWN_KEY: {
    status: 400,
    exit: 2,
    meaning: "A key the manifest does not define (a typo must not become a silent default).",
  },
  BTL_MANIFEST_MISSING_KEY: {
    status: 400,
    exit: 2,
    meaning: "A required key is absent.",
  },
  BTL_MANIFEST_INVALID: {
    status: 400,
    exit: 2,
    meaning: "A value has the wrong type or format.",
  },
  BTL_MANIFEST_CREDENTIAL_ENV: {
    status: 400,
    exit: 2,
    meaning: "`agent.env` names a variable that looks like a credential.",
  },
  BTL_MANIFEST_HOST_KEY: {
    status: 400,
    exit: 2,
    meaning: "An SSH upstream has no pinned host key, or the key is not an OpenSSH public key.",
  },
  BTL_MANIFEST_CONFLICT: {
    status: 400,
    exit: 2,
    meaning: "Two declarations collide (names, route paths, exclusive roles or token uses).",
  },
  BTL_MANIFEST_REFERENCE: {
    status: 400,
    exit: 2,
    meaning: "A reference names something the manifest does not declare.",
  },
  BTL_MANIFEST_FILE: {
    status: 400,
    exit: 3,
    meaning: "A file the manifest names (identity, private key) is missing or not a file.",
  },
  BTL_MANIFEST_FILE_MODE: {
    status: 400,
    exit: 3,
    meaning: "A secret file the manifest names is readable by group or others.",
  },
  BTL_MANIFEST_TOKEN_UNSET: {
    status: 500,
    exit: 3,
    meaning: "A `token_ref` environment variable is not set.",
  },
  BTL_MANIFEST_TOKEN_EMPTY: {
    status: 500,
    exit: 3,
    meaning: "A `token_ref` environment variable is set but empty.",
  },
  BTL_MANIFEST_TOKEN_INVALID: {
    status: 500,
    exit: 3,
    meaning: "A `token_ref` value is not 1 to 8192 printable ASCII characters without spaces.",
  },
});

/** A manifest error code. */
export type ManifestErrorCode = keyof typeof MANIFEST_ERRORS;

/** One problem found in a manifest: where it is and what is wrong. */
export interface ManifestIssue {
  readonly code: ManifestErrorCode;
  /** Dotted path of the offending value (`git_gate.repos.api.url`); empty for the whole file. */
  readonly path: string;
  readonly message: string;
  /** 1-based position in the source text, when known. */
  readonly line?: number;
  readonly column?: number;
}

/**
 * Every manifest problem, thrown as one error listing all issues found. `code` is the code of
 * the first issue; `issues` holds them all. SECURITY: messages never carry secret values.
 */
export class ManifestError extends errorClass(MANIFEST_ERRORS) {
  readonly issues: readonly ManifestIssue[];
  readonly filename: string | undefined;

  constructor(
    issues: readonly ManifestIssue[],
    filename?: string,
    options: { cause?: unknown } = {},
  ) {
    const first = issues[0];
    if (first === undefined) throw new TypeError("ManifestError needs at least one issue");
    super(first.code, issues.map((i) => formatIssue(i, filename)).join("\n"), options);
    this.issues = Object.freeze([...issues]);
    this.filename = filename;
  }
}

/** `file:line:col: path: message` — the one-line form of an issue. */
export function formatIssue(issue: ManifestIssue, filename?: string): string {
  let where = filename ?? "";
  if (issue.line !== undefined)
    where += `${where ? ":" : "line "}${issue.line}:${issue.column ?? 1}`;
  const path = issue.path === "" ? "" : `${issue.path}: `;
  return `${where ? `${where}: ` : ""}${path}${issue.message}`;
}
