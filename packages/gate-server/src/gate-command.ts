/**
 * The gate's flags, for every command line that serves a gate: `bottle-gate`, and commands
 * that serve repositories of their own (`bottle-git-gate entrypoint`). Defined here once, with
 * their defaults, their help and the `createGateServer` options they give.
 */
import type { Logger } from "@bottle/log";
import {
  type CommonDefaults,
  type CommonFlags,
  DEFAULT_PORTS,
  serverLimits,
} from "@bottle/sidecar";
import { type Command, Option } from "commander";
import type { GateServerOptions } from "./server.ts";

/** The gate's flags (beside the common ones) whatever serves the repositories. */
export interface GateFlags extends CommonFlags {
  readonly tokenFile: string;
  readonly adminToken?: string;
  readonly inetd?: boolean;
}

/** The gate's defaults for the common flags: port 9419, 32 requests at once. */
export const GATE_DEFAULTS: CommonDefaults = {
  port: DEFAULT_PORTS.gate,
  maxConcurrent: 32,
  help: { maxConcurrent: "requests served at once; up to 8x more wait, beyond that 503" },
};

/** Help after the options: the listeners in order, and the environment. */
export const GATE_HELP = `
Listeners (first that applies): --inetd (one connection on fd 0, systemd Accept=yes);
a socket passed by systemd (LISTEN_FDS); --socket PATH (mode 0600); --bind/--port.

Environment:
  BOTTLE_GATE_ADMIN_TOKEN  admin token (preferred to --admin-token, which other users can see in ps)`;

/** Adds `--token-file` (required), `--admin-token` and `--inetd` (which excludes `--socket`). */
export function gateOptions(command: Command): Command {
  return command
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
    );
}

/**
 * The options of `createGateServer` the flags and the environment give: the token file, the
 * admin token (`--admin-token`, with a warning since `ps` shows it, or BOTTLE_GATE_ADMIN_TOKEN),
 * the limits, the logger and PATH. The repositories are the caller's.
 */
export function gateServerOptions(
  flags: GateFlags,
  env: Readonly<Record<string, string | undefined>>,
  log: Logger,
): Omit<GateServerOptions, "basePath"> {
  if (flags.adminToken)
    log.warn(
      {},
      "--admin-token is visible to other users in the process list; prefer BOTTLE_GATE_ADMIN_TOKEN",
    );
  const adminToken = flags.adminToken ?? env.BOTTLE_GATE_ADMIN_TOKEN;
  return {
    tokenFile: flags.tokenFile,
    logger: log,
    ...serverLimits(flags),
    ...(env.PATH ? { path: env.PATH } : {}),
    ...(adminToken ? { adminToken } : {}),
  };
}
