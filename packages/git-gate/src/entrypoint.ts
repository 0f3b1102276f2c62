/**
 * `bottle-git-gate entrypoint`: init the stage, then serve it with gate-server's
 * `createGateServer` on the sidecar runtime (listeners, `listening` record, ready descriptor,
 * signals, exit codes), with the plan's mirrors, access hook and hooks directory.
 */
import { createGateServer } from "@bottle/gate-server";
import type { Logger } from "@bottle/log";
import {
  type CommonFlags,
  DEFAULT_PORTS,
  runSidecar,
  type SidecarProcess,
  serveInetd,
  serverLimits,
} from "@bottle/sidecar";
import { Option } from "commander";
import { asGitGateError, GitGateError } from "./errors.ts";
import type { GitGatePlan } from "./plan.ts";

/** The gate's options after `--`. */
interface GateFlags extends CommonFlags {
  tokenFile: string;
  adminToken?: string;
  inetd?: boolean;
}

/** bottle-gate's options the entrypoint sets itself, or that only make sense in the background. */
const OWN_OPTIONS = [
  "--base-path",
  "--access-hook",
  "--hooks-dir",
  "--detach",
  "--pid-file",
  "--log-file",
];

const HELP_AFTER = `
Listeners (first that applies): --inetd (one connection on fd 0, systemd Accept=yes);
a socket passed by systemd (LISTEN_FDS); --socket PATH (mode 0600); --bind/--port.

Environment:
  BOTTLE_GATE_ADMIN_TOKEN  admin token (preferred to --admin-token, which other users can see in ps)

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
      defaults: {
        port: DEFAULT_PORTS.gate,
        maxConcurrent: 32,
        help: { maxConcurrent: "requests served at once; up to 8x more wait, beyond that 503" },
      },
      options: (command) =>
        command
          .requiredOption(
            "--token-file <file>",
            "gate token file (bottle-gate-tokens); re-read when it changes",
          )
          .option(
            "--admin-token <token>",
            "token with access to every project (prefer BOTTLE_GATE_ADMIN_TOKEN)",
          )
          .addOption(
            new Option(
              "--inetd",
              "serve the one connection on fd 0 (systemd Accept=yes), then exit",
            ).conflicts("socket"),
          ),
      help: HELP_AFTER,
      start: async (flags, log) => {
        const plan = await options.init().catch((error: unknown) => {
          throw asGitGateError(error);
        });
        const gate = createGateServer({
          basePath: plan.basePath,
          tokenFile: flags.tokenFile,
          accessHook: plan.accessHook,
          hooksDir: plan.hooksDir,
          logger: log,
          ...serverLimits(flags),
          ...(proc.env.PATH ? { path: proc.env.PATH } : {}),
          ...adminToken(flags, proc.env, log),
        });
        return flags.inetd ? serveInetd(gate, { onSignal: proc.onSignal, logger: log }) : gate;
      },
    },
  );
}

/** `--admin-token`, or BOTTLE_GATE_ADMIN_TOKEN; the flag, visible in `ps`, with a warning. */
function adminToken(
  flags: GateFlags,
  env: SidecarProcess["env"],
  log: Logger,
): { adminToken?: string } {
  if (flags.adminToken)
    log.warn(
      {},
      "--admin-token is visible to other users in the process list; prefer BOTTLE_GATE_ADMIN_TOKEN",
    );
  const token = flags.adminToken ?? env.BOTTLE_GATE_ADMIN_TOKEN;
  return token ? { adminToken: token } : {};
}
