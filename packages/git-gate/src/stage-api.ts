/**
 * `@bottle/git-gate/stage`: what a launcher needs to prepare a gate's stage (the plan, `init`,
 * deploy keys) without loading the scanner or the gate server.
 */
export type { DeployKeyRecord, DeployKeyRequest } from "./deploy-keys.ts";
export { readDeployKeys, revokeDeployKeys } from "./deploy-keys.ts";
export type { GateConfig, PlannedCredential, PlannedRepo } from "./gate-config.ts";
export type { GitGatePlan, PrepareOptions } from "./plan.ts";
export { prepareGitGate } from "./plan.ts";
export type { StageFlags, StageIo } from "./stage.ts";
export { fetchMirrors, initStage, writeStage } from "./stage.ts";
