/** What every command of the `bottle` CLI shares: its I/O, the exit-code help, error reports. */
import { isBottleError } from "@bottle/errors";
import { formatIssue, type ManifestError } from "@bottle/manifest";
import { reportFailure } from "@bottle/sidecar";

/** Where the CLI reads and writes; `cli.ts` passes the process's own. */
export interface CliIo {
  readonly stdout: { write(text: string): unknown; isTTY?: boolean };
  readonly stderr: { write(text: string): unknown; isTTY?: boolean };
  readonly env: Readonly<Record<string, string | undefined>>;
  /** The commands that run a bottle need these; `cli.ts` passes the process's own. */
  readonly process?: CliProcess;
}

/** The process-level parts of the I/O, for `up`, `run`, `down`, `ps` and `logs`. */
export interface CliProcess {
  readonly stdin: NodeJS.ReadStream;
  readonly stdout: NodeJS.WriteStream;
  readonly cwd: string;
  /** Calls `handler` on SIGINT, SIGTERM and SIGHUP until the returned function is called. */
  onSignal(handler: (signal: NodeJS.Signals) => void): () => void;
}

/** A command's view of the run: its I/O and the worst exit code seen so far. */
export interface CommandContext {
  readonly io: CliIo;
  /** Records an exit code; the run exits with the worst one. */
  exit(code: number): void;
}

export const EXIT_CODES = `
Exit codes:
  0  success
  1  internal error (a bug; rerun with BOTTLE_DEBUG=1 for the stack)
  2  invalid manifest or command line, or the preflight not confirmed
  3  environment: a file or variable the manifest names is missing or unsafe,
     or the state directory cannot be used
  4  a sidecar did not start, or stopped while the agent ran
  5  part of a teardown failed (the message says what to run again)
  bottle run exits with the agent's own exit code (128+N when a signal N ended it)

Errors print as CODE: message (codes are stable; see the README).`;

/** `--no-file-checks`, shared by the commands that load a manifest. */
export const FILE_CHECKS = {
  flag: "--no-file-checks",
  help: "do not check that identity and key files exist with mode 0600",
} as const;

/** Prints an error as `CODE: message` lines and returns the exit code. */
export function report(error: unknown, io: CliIo): number {
  if (isBottleError(error) && Array.isArray((error as ManifestError).issues)) {
    const { issues, filename } = error as ManifestError;
    for (const issue of issues) io.stderr.write(`${issue.code}: ${formatIssue(issue, filename)}\n`);
    return error.exitCode;
  }
  return reportFailure(error, { stderr: io.stderr, debug: io.env.BOTTLE_DEBUG === "1" });
}
