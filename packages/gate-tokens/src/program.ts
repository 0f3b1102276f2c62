/** The `bottle-gate-tokens` command line. Tokens go to stdout only; everything else to stderr. */
import { createRequire } from "node:module";
import { reportFailure, withOutput } from "@bottle/sidecar";
import { Command, InvalidArgumentError, Option } from "commander";
import { TOKEN_ERRORS, TokenStoreError } from "./errors.ts";
import type { Scope, TokenRecord } from "./format.ts";
import { MAX_EXPIRES_IN_SECONDS } from "./options.ts";
import { createTokenStore, type RevokeSelector } from "./store.ts";

/** Where the program reads and writes; `cli.ts` passes the process's own. */
export interface TokensIo {
  readonly stdout: { write(text: string): unknown };
  readonly stderr: { write(text: string): unknown };
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Reads standard input to the end (for `verify`: tokens never travel in argv). */
  readStdin(): Promise<string>;
}

const require = createRequire(import.meta.url);
const VERSION = (require("../package.json") as { version: string }).version;
const ENV_FILE = "BOTTLE_GATE_TOKEN_FILE";
/** `verify` reads at most this much of stdin as a token; more is malformed. */
const MAX_STDIN_CHARS = 4096;

const EXIT_CODES = `
Exit codes:
  0  success
  1  verify: the token is refused (BTL_TOKENS_DENIED); revoke: nothing matched
     (BTL_TOKENS_NOT_FOUND); or an internal error (BTL_INTERNAL)
  2  invalid arguments (BTL_TOKENS_INVALID_INPUT)
  3  the token file is missing, too open, corrupt, locked or unwritable

Errors print as CODE: message (codes are stable; see the README).
The token file may also be given as ${ENV_FILE}.`;

const describe = (r: TokenRecord) =>
  `${r.id}  project=${r.project}  task=${r.task}  scopes=${r.scopes.join(",")}  created=${r.created}  expires=${r.expires ?? "never"}`;

/** Runs the command line with `argv` (without node and script); returns the exit code. */
export async function runTokensCli(argv: readonly string[], io: TokensIo): Promise<number> {
  let exitCode = 0;
  const envFile = io.env[ENV_FILE] || undefined;
  // The variable is a default read from `io.env` (commander's `.env()` would read process.env).
  const fileOption = () =>
    new Option("--token-file <file>", `the token file (default: $${ENV_FILE})`).default(envFile);
  const store = (o: { tokenFile?: string }) => {
    if (o.tokenFile === undefined || o.tokenFile === "") {
      throw new TokenStoreError(
        "BTL_TOKENS_INVALID_INPUT",
        `give --token-file FILE or set ${ENV_FILE}`,
      );
    }
    return createTokenStore({ file: o.tokenFile });
  };

  const program = new Command("bottle-gate-tokens")
    .description("Create, list, revoke and verify per-task gate tokens (stored only as digests).")
    .version(VERSION, "-V, --version", "print the version")
    .helpOption("-h, --help", "show help")
    .helpCommand("help [command]", "show help for a command")
    .addHelpText("after", EXIT_CODES);
  // SECURITY: commander quotes stray arguments; a token pasted there is not echoed back.
  withOutput(program, io, "BTL_TOKENS_INVALID_INPUT", redact);

  program
    .command("create")
    .description("create a token; prints the token (and only the token) on stdout, once")
    .addOption(fileOption())
    .requiredOption("--project <slug>", "the project the token reaches")
    .requiredOption("--task <name>", "the task it belongs to (revoke by it later)")
    .addOption(
      new Option("--scope <scope...>", "what it may do: read (fetch), write (push)")
        .choices(["read", "write"])
        .default(["read", "write"], "read write"),
    )
    .option("--expires-in <seconds>", "lifetime in seconds (default: until revoked)", (value) => {
      const n = Number(value);
      if (!/^\d+$/.test(value) || n < 1 || n > MAX_EXPIRES_IN_SECONDS) {
        throw new InvalidArgumentError(
          `expected a whole number of seconds from 1 to ${MAX_EXPIRES_IN_SECONDS}`,
        );
      }
      return n;
    })
    .addHelpText("after", EXIT_CODES)
    .action(
      async (o: {
        tokenFile?: string;
        project: string;
        task: string;
        scope: Scope[];
        expiresIn?: number;
      }) => {
        const { token, record } = await store(o).create({
          project: o.project,
          task: o.task,
          scopes: o.scope,
          ...(o.expiresIn !== undefined ? { expiresInSeconds: o.expiresIn } : {}),
        });
        io.stdout.write(`${token}\n`);
        io.stderr.write(`created ${describe(record)}\n`);
      },
    );

  program
    .command("list")
    .description("list tokens: ids, projects, tasks, scopes and times (never a token or digest)")
    .addOption(fileOption())
    .option("--project <slug>", "only this project")
    .option("--task <name>", "only this task")
    .option("--json", "print a JSON array")
    .addHelpText("after", EXIT_CODES)
    .action(async (o: { tokenFile?: string; project?: string; task?: string; json?: boolean }) => {
      const records = await store(o).list({
        ...(o.project !== undefined ? { project: o.project } : {}),
        ...(o.task !== undefined ? { task: o.task } : {}),
      });
      io.stdout.write(
        o.json
          ? `${JSON.stringify(records, null, 2)}\n`
          : records.map((r) => `${describe(r)}\n`).join(""),
      );
    });

  program
    .command("revoke")
    .description("revoke by --id, by --task (optionally within --project), or a whole --project")
    .addOption(fileOption())
    .option("--id <id>", "one token")
    .option("--task <name>", "every token of a task")
    .option("--project <slug>", "every token of a project (or narrows --task)")
    .addHelpText("after", EXIT_CODES)
    .action(async (o: { tokenFile?: string; id?: string; task?: string; project?: string }) => {
      const removed = await store(o).revoke(revokeSelector(o));
      io.stdout.write(removed.map((r) => `revoked ${describe(r)}\n`).join(""));
    });

  program
    .command("verify")
    .description("check a token read from stdin (never from the command line)")
    .addOption(fileOption())
    .addHelpText("after", EXIT_CODES)
    .allowExcessArguments()
    .action(async (o: { tokenFile?: string }, command: Command) => {
      if (command.args.length > 0) {
        // SECURITY: argv is visible to every local user (ps, /proc); do not quote it back.
        throw new TokenStoreError(
          "BTL_TOKENS_INVALID_INPUT",
          "verify reads the token from stdin, never from the command line",
        );
      }
      const tokens = store(o);
      const input = (await io.readStdin()).trim();
      const result = await tokens.verify(input.length > MAX_STDIN_CHARS ? "" : input);
      if (result.ok) {
        io.stdout.write(`${describe(result.record)}\n`);
      } else {
        io.stderr.write(`BTL_TOKENS_DENIED: the token is ${result.reason}\n`);
        exitCode = TOKEN_ERRORS.BTL_TOKENS_DENIED.exit;
      }
    });

  try {
    await program.parseAsync([...argv], { from: "user" });
  } catch (error) {
    exitCode = report(error, io);
  }
  return exitCode;
}

/** Hides anything token-shaped in a message that quotes the command line. */
function redact(text: string): string {
  return text.replace(/bottle_gt_[A-Za-z0-9_-]*/g, "bottle_gt_[redacted]");
}

/** The selector `revoke` was given: exactly one of the three forms. */
function revokeSelector(o: { id?: string; task?: string; project?: string }): RevokeSelector {
  if (o.id !== undefined && o.task === undefined && o.project === undefined) return { id: o.id };
  if (o.id === undefined && o.task !== undefined) {
    return { task: o.task, ...(o.project !== undefined ? { project: o.project } : {}) };
  }
  if (o.id === undefined && o.project !== undefined) return { project: o.project };
  throw new TokenStoreError(
    "BTL_TOKENS_INVALID_INPUT",
    "give --id ID, or --task TASK [--project PROJECT], or --project PROJECT",
  );
}

/** Prints an error as `CODE: message` and returns the exit code. */
function report(error: unknown, io: TokensIo): number {
  return reportFailure(error, { stderr: io.stderr, debug: io.env.BOTTLE_DEBUG === "1" });
}
