export type { RefUpdate } from "./commits.ts";
export { commitsInRange, newCommits, newTagObjects, parseRefUpdates } from "./commits.ts";
export type { DeployKeyRecord, DeployKeyRequest } from "./deploy-keys.ts";
export {
  deployKeyTitle,
  formatDeployKeyPreflight,
  provisionDeployKeys,
  readDeployKeys,
  revokeDeployKeys,
} from "./deploy-keys.ts";
export type { GitGateErrorCode } from "./errors.ts";
export { codes, GIT_GATE_ERRORS, GitGateError } from "./errors.ts";
export type { Finding } from "./findings.ts";
export { formatFindings, redact } from "./findings.ts";
export type { ClassifiedUpdate } from "./forward.ts";
export { forwardPush } from "./forward.ts";
export type { HookContext } from "./hooks.ts";
export { runAccessHook, runPreReceive } from "./hooks.ts";
export type { RefreshResult } from "./mirror.ts";
export { initMirror, refreshMirror } from "./mirror.ts";
export type {
  GateConfig,
  GitGatePlan,
  PlannedCredential,
  PlannedFile,
  PlannedRepo,
  PlannedScan,
  PlannedTimeouts,
  PrepareOptions,
  PushAccess,
} from "./plan.ts";
export { prepareGitGate, upstreamSpellings } from "./plan.ts";
export type { ScanOptions, ScanResult, ScanRuleSpec } from "./scan.ts";
export { scanCommits } from "./scan.ts";
export { readGateConfig, writePlan } from "./state.ts";
