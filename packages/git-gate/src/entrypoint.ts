/**
 * `bottle-git-gate entrypoint`: init the stage, then serve it with gate-server's
 * `createGateServer` on the sidecar runtime (listeners, `listening` record, ready descriptor,
 * signals, exit codes), with the plan's mirrors, access hook and hooks directory.
 */
import {
  createGateServer,
  GATE_DEFAULTS,
  GATE_HELP,
  type GateFlags,
  gateOptions,
  gateServerOptions,
} from "@bottle/gate-server";
import { runSidecar, type SidecarProcess, serveInetd } from "@bottle/sidecar";
import { asGitGateError, GitGateError } from "./errors.ts";
import type { GitGatePlan } from "./plan.ts";

/** bottle-gate's options the entrypoint sets itself, or that only make sense in the background. */
const OWN_OPTIONS = [
  "--base-path",
  "--access-hook",
  "--hooks-dir",
  "--detach",
  "--pid-file",
  "--log-file",
];

const HELP_AFTER = `${GATE_HELP}

Exit codes:
  0  stopped cleanly (SIGTERM or SIGINT; in-flight requests finished)
  1  internal error, or requests cut by a second signal or after the 30 s grace period
  2  invalid options, manifest or state
  3  cannot listen (address in use, socket path taken)`;

/** What the entrypoint needs: the gate's arguments (after `--`), and how to init the stage. */
export interface EntrypointOptions {
  readonly gateArgs: readonly string[];
  readonly version: string;
  /** Writes the plan, stores credentials, creates and fetches the mirrors. */
  init(): Promise<GitGatePlan>;
}

/**
 * Parses the gate's options, inits the stage, and serves until stopped; resolves to the exit
 * code. Throws GitGateError BTL_GITGATE_CONFIG for an option the entrypoint sets itself.
 */
export function runEntrypoint(proc: SidecarProcess, options: EntrypointOptions): Promise<number> {
  const own = options.gateArgs.find((arg) =>
    OWN_OPTIONS.some((name) => arg === name || arg.startsWith(`${name}=`)),
  );
  if (own !== undefined)
    throw new GitGateError(
      "BTL_GITGATE_CONFIG",
      `entrypoint sets --base-path, --access-hook and --hooks-dir itself and runs in the foreground (no --detach, --pid-file or --log-file); remove ${own}`,
    );
  return runSidecar<GateFlags>(
    { ...proc, argv: options.gateArgs },
    {
      name: "bottle-gate",
      description:
        "The gate of `bottle-git-gate entrypoint` (its options go after --): git over smart HTTP from the stage's mirrors, with per-task tokens scoped to the project.",
      version: options.version,
      usageCode: "BTL_GATE_CONFIG",
      defaults: GATE_DEFAULTS,
      options: gateOptions,
      help: HELP_AFTER,
      start: async (flags, log) => {
        const plan = await options.init().catch((error: unknown) => {
          throw asGitGateError(error);
        });
        const gate = createGateServer({
          ...gateServerOptions(flags, proc.env, log),
          basePath: plan.basePath,
          accessHook: plan.accessHook,
          hooksDir: plan.hooksDir,
        });
        return flags.inetd ? serveInetd(gate, { onSignal: proc.onSignal, logger: log }) : gate;
      },
    },
  );
}
