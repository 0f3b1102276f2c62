export type { AgentSide, AgentSideInput } from "./agent-side.ts";
export { PLACEHOLDER_KEY, QUIET_SWITCHES, renderAgentSide } from "./agent-side.ts";
export { CLI_ERRORS, CliError, codes } from "./errors.ts";
export { formatPlan } from "./format.ts";
export type { EnvState, Plan } from "./plan.ts";
export { describeAuth, hostKeyFingerprint, planBottle } from "./plan.ts";
export type { CliIo } from "./program.ts";
export { runCli } from "./program.ts";
export type { TokmanCallerPlan, TokmanPlan } from "./tokman.ts";
