/**
 * Logging for bottle: pino JSON lines on stderr, created only by entrypoints. Libraries take
 * the structural `Logger` below and default to `silentLogger`, so they never import pino.
 */
import { createHash } from "node:crypto";
import { pino } from "pino";

/** What a library needs of a logger (pino's shape, a structural subset). */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child(bindings: Record<string, unknown>): Logger;
}

const noop = (): void => {};

/** A logger that drops everything: the default of every library. */
export const silentLogger: Logger = Object.freeze({
  debug: noop,
  info: noop,
  warn: noop,
  error: noop,
  child: () => silentLogger,
});

/**
 * SECURITY: paths pino censors in every record. This is a second line of defence: code never
 * hands a secret to the logger in the first place (log `fingerprint(secret)` instead).
 */
export const REDACT_PATHS: readonly string[] = Object.freeze([
  "req.headers.authorization",
  'req.headers["proxy-authorization"]',
  'req.headers["x-api-key"]',
  "req.headers.cookie",
  'res.headers["set-cookie"]',
  "token",
  "secret",
  "password",
  "*.token",
  "*.secret",
  "*.password",
]);

/** Options of `createLogger`. */
export interface CreateLoggerOptions {
  /** Component name, logged as `name` (for example `bottle-gate`). */
  readonly name: string;
  /** Minimum level (default `info`). */
  readonly level?: "debug" | "info" | "warn" | "error" | "silent";
  /** Where lines go: a file descriptor (default 2, stderr) or a writable stream. */
  readonly destination?: number | NodeJS.WritableStream;
}

/** Creates the process logger: JSON lines, redacted, on stderr. Call only from entrypoints. */
export function createLogger(options: CreateLoggerOptions): Logger {
  const destination =
    typeof options.destination === "object"
      ? options.destination
      : pino.destination({ dest: options.destination ?? 2, sync: true });
  return pino(
    {
      name: options.name,
      level: options.level ?? "info",
      redact: { paths: [...REDACT_PATHS], censor: "[redacted]" },
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

/**
 * A short, stable, non-reversible name for a secret, safe to log: `sha256:` and the first
 * 12 hex digits of its SHA-256 digest.
 */
export function fingerprint(secret: string | Uint8Array): string {
  return `sha256:${createHash("sha256").update(secret).digest("hex").slice(0, 12)}`;
}
