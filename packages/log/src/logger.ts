/**
 * Logging for bottle: pino JSON lines on stderr, created only by entrypoints. Libraries take
 * the structural `Logger` below and default to `silentLogger`, so they never import pino.
 */
import { createHash } from "node:crypto";
import { createRequire } from "node:module";
import type { pino as Pino } from "pino";

// pino (and its worker-thread transport machinery) loads with the first logger: a program
// that only hands `silentLogger` to libraries never loads it.
const require = createRequire(import.meta.url);
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
 * SECURITY: paths censored in every record and in child bindings (`*` is any field). This is a second line of defence: code never
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
  /**
   * For a file descriptor: write in the background instead of one blocking write per line
   * (default false). Lines queue while a write is under way and go out together; at most
   * `BUFFER_LIMIT` bytes wait, beyond that lines are dropped and counted, and a warning with the
   * count follows once the destination takes lines again. What is queued is written at exit.
   * For servers that log every request: a slow or stalled stderr then neither blocks them nor
   * grows their memory.
   */
  readonly buffered?: boolean;
}

/** Bytes of log lines a buffered logger holds while its destination is busy. */
export const BUFFER_LIMIT = 8 * 1024 * 1024;

/** Creates the process logger: JSON lines, redacted, on stderr. Call only from entrypoints. */
export function createLogger(options: CreateLoggerOptions): Logger {
  const { pino } = require("pino") as { pino: typeof Pino };
  const buffered = options.buffered === true && typeof options.destination !== "object";
  const destination =
    typeof options.destination === "object"
      ? options.destination
      : pino.destination({
          dest: options.destination ?? 2,
          sync: !buffered,
          ...(buffered ? { maxLength: BUFFER_LIMIT } : {}),
        });
  const root = pino(
    {
      name: options.name,
      level: options.level ?? "info",
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }), log: redactRecord },
    },
    destination,
  );
  if (buffered) reportDrops(destination as unknown as NodeJS.EventEmitter, root);
  return wrap(root);
}

/** pino's logging methods; `child` redacts the bindings, which pino's formatters never see. */
function wrap(logger: Pino.Logger): Logger {
  return {
    debug: logger.debug.bind(logger),
    info: logger.info.bind(logger),
    warn: logger.warn.bind(logger),
    error: logger.error.bind(logger),
    child: (bindings) => wrap(logger.child(redactRecord(bindings))),
  };
}

/** Counts the lines a full buffer dropped and reports them once lines are accepted again. */
function reportDrops(destination: NodeJS.EventEmitter, logger: Pino.Logger): void {
  let dropped = 0;
  let scheduled = false;
  const report = (): void => {
    const count = dropped;
    dropped = 0;
    logger.warn({ dropped: count }, "log lines dropped: the destination was too slow");
    // Still full: that warning was dropped too (and counted); try again later.
    if (dropped > 0) setTimeout(report, 1_000).unref();
    else scheduled = false;
  };
  destination.on("drop", () => {
    dropped++;
    if (scheduled) return;
    scheduled = true;
    setTimeout(report, 1_000).unref();
  });
}

/** One step of a compiled redaction path: a name (or `*`) and what lies below it. */
type RedactTree = Map<string, RedactTree | true>;

/** REDACT_PATHS as a tree: `a.b["c-d"]` → a → b → c-d. */
const REDACT_TREE: RedactTree = (() => {
  const root: RedactTree = new Map();
  for (const path of REDACT_PATHS) {
    const names = [...path.matchAll(/([^.[\]"]+)|\["([^"]+)"\]/g)].map((m) => m[1] ?? m[2] ?? "");
    let node = root;
    names.forEach((name, index) => {
      if (index === names.length - 1) node.set(name, true);
      else {
        const next = node.get(name);
        if (next instanceof Map) node = next;
        else if (next !== true) {
          const created: RedactTree = new Map();
          node.set(name, created);
          node = created;
        }
      }
    });
  }
  return root;
})();

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== "object") return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * A record with every REDACT_PATHS value replaced by `[redacted]`. Copy on write: the caller's
 * object is never changed, and a record with nothing to hide is returned as it is.
 */
export function redactRecord<T extends object>(record: T): T {
  return redactIn(record, REDACT_TREE) as T;
}

function redactIn(value: unknown, tree: RedactTree): unknown {
  if (!isPlainObject(value)) return value;
  const any = tree.get("*");
  let out = value;
  for (const key of Object.keys(value)) {
    const field = value[key];
    if (field === undefined) continue;
    const exact = tree.get(key);
    let next: unknown = field;
    if (exact === true || any === true) next = CENSOR;
    else {
      if (exact !== undefined) next = redactIn(next, exact);
      if (any !== undefined) next = redactIn(next, any);
    }
    if (next !== field) {
      if (out === value) out = { ...value };
      out[key] = next;
    }
  }
  return out;
}

const CENSOR = "[redacted]";
/**
 * A short, stable, non-reversible name for a secret, safe to log: `sha256:` and the first
 * 12 hex digits of its SHA-256 digest.
 */
export function fingerprint(secret: string | Uint8Array): string {
  return `sha256:${createHash("sha256").update(secret).digest("hex").slice(0, 12)}`;
}
