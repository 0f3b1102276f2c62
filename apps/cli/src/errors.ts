/** The error table of the bottle CLI (manifest errors keep their own codes and exit codes). */
import { BottleError, COMMON_ERRORS, defineErrors } from "@bottle/errors";

export const { table: CLI_ERRORS, codes } = defineErrors({
  BTL_CLI_USAGE: {
    status: 400,
    exit: 2,
    meaning: "The command line is wrong: an unknown command or option, or a missing argument.",
  },
  BTL_CLI_NOT_CONFIRMED: {
    status: 400,
    exit: 2,
    meaning: "The preflight was declined, or there was no terminal to ask and no --yes.",
  },
  BTL_CLI_NAME_TAKEN: {
    status: 409,
    exit: 2,
    meaning: "A bottle of that name is running.",
  },
  BTL_CLI_NO_BOTTLE: {
    status: 404,
    exit: 2,
    meaning: "No bottle of that name.",
  },
  BTL_CLI_UNSUPPORTED: {
    status: 400,
    exit: 2,
    meaning: "The manifest asks for something this backend cannot do.",
  },
  BTL_CLI_STATE: {
    status: 500,
    exit: 3,
    meaning: "The state directory cannot be used, or a record in it is unreadable.",
  },
  BTL_CLI_SIDECAR: {
    status: 502,
    exit: 4,
    meaning: "A sidecar did not start, or stopped while the bottle ran.",
  },
  BTL_CLI_TEARDOWN: {
    status: 500,
    exit: 5,
    meaning: "Part of a teardown failed (a deploy key not revoked, a process not stopped).",
  },
  BTL_CLI_AGENT_ENV: {
    status: 400,
    exit: 2,
    meaning:
      "The manifest's agent.env changes a variable bottle sets to route the agent through its sidecars.",
  },
  BTL_CLI_AGENT_CONFIG: {
    status: 400,
    exit: 2,
    meaning:
      "The agent's side cannot be rendered: a bad gate or proxy URL or gate token, a git-gate plan made for another gate URL, or two rules rewriting one git URL.",
  },
  BTL_CLI_SANDBOX_SPEC: {
    status: 400,
    exit: 2,
    meaning: "The sandbox's description cannot make a sandbox (a path, port, variable or command).",
  },
  BTL_CLI_SANDBOX_PATH: {
    status: 500,
    exit: 3,
    meaning:
      "A host directory of the sandbox is missing, not a directory, too open, or not the caller's.",
  },
  BTL_CLI_SANDBOX_ARCH: {
    status: 500,
    exit: 3,
    meaning:
      "The sandbox's seccomp filter does not know this CPU architecture (x64 and arm64 only).",
  },
  BTL_CLI_SANDBOX_BWRAP: {
    status: 500,
    exit: 3,
    meaning: "bubblewrap (bwrap) 0.8.0 or later is not installed.",
  },
  BTL_CLI_SANDBOX_START: {
    status: 500,
    exit: 125,
    meaning: "bwrap ended without starting the sandbox, or the agent did not start in time.",
  },
  BTL_CLI_SANDBOX_EXITED: {
    status: 500,
    exit: 125,
    meaning: "The sandbox ended before its agent's process could be seen.",
  },
  BTL_CLI_SANDBOX_FORWARDER: {
    status: 500,
    exit: 125,
    meaning: "Inside the sandbox, the port forwarder could not start, so the agent did not.",
  },
  BTL_CLI_SANDBOX_STOP: {
    status: 500,
    exit: 5,
    meaning: "A process of the sandbox was still running after SIGKILL.",
  },
  BTL_CLI_DOCKER_UNREACHABLE: {
    status: 502,
    exit: 3,
    meaning:
      "No container engine answers on DOCKER_HOST's unix socket (or /var/run/docker.sock), or DOCKER_HOST is not a unix socket.",
  },
  BTL_CLI_DOCKER_IMAGE: {
    status: 500,
    exit: 3,
    meaning:
      "The container engine has no image of that name (a sidecar's, the forwarder's or agent.image).",
  },
  BTL_CLI_DOCKER_AGENT: {
    status: 500,
    exit: 125,
    meaning:
      "The agent's container could not start: its workspace belongs to root, or the forwarder container did not listen.",
  },
  ...COMMON_ERRORS,
});

/** An error of the CLI itself. */
export class CliError extends BottleError {
  constructor(code: keyof typeof CLI_ERRORS, message: string, options: { cause?: unknown } = {}) {
    super(code, message, CLI_ERRORS[code], options);
    this.name = "CliError";
  }
}
