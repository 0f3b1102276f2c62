export type { CreateLoggerOptions, Logger } from "./logger.ts";
export { createLogger, fingerprint, REDACT_PATHS, silentLogger } from "./logger.ts";
