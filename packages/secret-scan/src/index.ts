export type { NewObjectsOptions, ObjectInfo, PushOptions, RefUpdate } from "./commits.ts";
export {
  commitsInRange,
  isZeroOid,
  newCommits,
  newObjects,
  newTagObjects,
  PUSHABLE_REFS,
  parseRefUpdates,
  ZERO_OID,
} from "./commits.ts";
export type { ScanErrorCode } from "./errors.ts";
export { codes, SCAN_ERRORS, ScanError } from "./errors.ts";
export {
  COMMIT_HEADER,
  COMMIT_MESSAGE,
  MAX_OBJECT_BYTES,
  PUSHED_BLOB,
  REF_NAME,
  TAG_HEADER,
  TAG_MESSAGE,
} from "./feed.ts";
export type { Finding } from "./findings.ts";
export { fingerprintOf, formatFindings, printable, redact } from "./findings.ts";
export type { ScanProcess } from "./program.ts";
export { runScan } from "./program.ts";
export type { ScanRangeOptions } from "./range.ts";
export { describeScan, scanRange } from "./range.ts";
export type { ScanRuleSpec } from "./rules.ts";
export { BUILTIN_RULES } from "./rules.ts";
export type { GitOptions, RunOptions, RunResult } from "./run.ts";
export { git, gitEnv, NO_GRAFTS, oneLine, run } from "./run.ts";
export type { ScanOptions, ScanResult } from "./scan.ts";
export { scanCommits } from "./scan.ts";
