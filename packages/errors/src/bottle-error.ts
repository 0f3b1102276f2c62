/**
 * The one error base of bottle. Every error that crosses a package boundary is a
 * `BottleError` carrying a stable `BTL_<AREA>_<REASON>` code; callers match on the code.
 */

// SECURITY: a registry-wide symbol, so that the brand survives duplicated copies of this
// package in one process (a bare `instanceof` would not).
const BRAND = Symbol.for("bottle.error");

/** One row of a package's error table: what a code means and how it surfaces. */
export interface ErrorSpec {
  /** HTTP status a server answers with when this error ends a request. */
  readonly status: number;
  /** Process exit code a CLI ends with when this error ends the command. */
  readonly exit: number;
  /** What the code means, one sentence (documented in the package README). */
  readonly meaning: string;
}

/** A package's error table: code → spec. Codes are never reused once retired. */
export type ErrorTable = Readonly<Record<string, ErrorSpec>>;

/** Options for a `BottleError`. */
export interface BottleErrorOptions {
  /** The error this one wraps; kept, never exposed in `toJSON`. */
  readonly cause?: unknown;
  /** Structured, non-secret details for programmatic callers (never serialised). */
  readonly details?: Readonly<Record<string, unknown>>;
}

/** Base class: `code`, `status`, `exitCode`, optional `details` and `cause`. */
export class BottleError extends Error {
  readonly code: string;
  readonly status: number;
  readonly exitCode: number;
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(
    code: string,
    message: string,
    spec: Pick<ErrorSpec, "status" | "exit">,
    options: BottleErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    // A package's class (`class ProxyError extends errorClass(…)`) names its errors.
    this.name = new.target.name || "BottleError";
    this.code = code;
    this.status = spec.status;
    this.exitCode = spec.exit;
    this.details = options.details;
    Object.defineProperty(this, BRAND, { value: true });
  }

  /** SECURITY: only the code and the message; never the cause, details or paths. */
  toJSON(): { code: string; message: string } {
    return { code: this.code, message: this.message };
  }
}

/** True when `value` is a `BottleError` from any copy of this package (and has `code`, if given). */
export function isBottleError(value: unknown, code?: string): value is BottleError {
  if (typeof value !== "object" || value === null) return false;
  if ((value as Record<symbol, unknown>)[BRAND] !== true) return false;
  return code === undefined || (value as BottleError).code === code;
}

/** The table every package shares: errors nobody anticipated. */
export const COMMON_ERRORS = Object.freeze({
  BTL_INTERNAL: {
    status: 500,
    exit: 1,
    meaning: "An unexpected failure; the detail is in the log, never in the answer.",
  },
} satisfies ErrorTable);

/**
 * Freezes a package's error table and derives its `codes` object (`codes.X === "X"`).
 * Throws a plain `Error` at load time when a code does not follow `BTL_<AREA>_<REASON>`.
 */
export function defineErrors<T extends ErrorTable>(
  table: T,
): { readonly table: Readonly<T>; readonly codes: { readonly [K in keyof T]: K } } {
  const codes: Record<string, string> = Object.create(null);
  for (const code of Object.keys(table)) {
    if (!/^BTL_(?:INTERNAL|[A-Z0-9]+(?:_[A-Z0-9]+)+)$/.test(code)) {
      throw new Error(`Expected error code \`${code}\` to match BTL_<AREA>_<REASON>`);
    }
    codes[code] = code;
  }
  return {
    table: Object.freeze({ ...table }),
    codes: Object.freeze(codes) as { readonly [K in keyof T]: K },
  };
}

/**
 * Wraps anything thrown into a `BottleError`: bottle errors pass through unchanged,
 * everything else becomes `BTL_INTERNAL` with a generic message and the original as `cause`.
 */
export function toBottleError(error: unknown): BottleError {
  if (isBottleError(error)) return error;
  return new BottleError("BTL_INTERNAL", "internal error", COMMON_ERRORS.BTL_INTERNAL, {
    cause: error,
  });
}
