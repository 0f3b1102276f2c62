export type {
  Finding,
  RefUpdate,
  ScanOptions,
  ScanResult,
  ScanRuleSpec,
} from "@bottle/secret-scan";
export {
  commitsInRange,
  formatFindings,
  newCommits,
  newTagObjects,
  parseRefUpdates,
  redact,
  scanCommits,
} from "@bottle/secret-scan";
export type { DeployKeyRecord, DeployKeyRequest } from "./deploy-keys.ts";
export {
  deployKeyTitle,
  formatDeployKeyPreflight,
  provisionDeployKeys,
  readDeployKeys,
  revokeDeployKeys,
} from "./deploy-keys.ts";
export type { GitGateErrorCode } from "./errors.ts";
export { asGitGateError, codes, GIT_GATE_ERRORS, GitGateError } from "./errors.ts";
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
export { checkRefs } from "./refs.ts";
export type { StageFlags, StageIo } from "./stage.ts";
export { describePlan, initStage, planStage } from "./stage.ts";
export { readGateConfig, writePlan } from "./state.ts";
