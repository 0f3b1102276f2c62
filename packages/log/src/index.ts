export type { CreateLoggerOptions, Logger } from "./logger.ts";
export {
  BUFFER_LIMIT,
  createLogger,
  fingerprint,
  REDACT_PATHS,
  redactRecord,
  silentLogger,
} from "./logger.ts";
