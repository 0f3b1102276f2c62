/** The `bottle-gate-tokens` command line. Tokens go to stdout only; everything else to stderr. */
import { createRequire } from "node:module";
import { isBottleError } from "@bottle/errors";
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { TOKEN_ERRORS } from "./errors.ts";
import type { Scope, TokenRecord } from "./format.ts";
import { createTokenStore, type RevokeSelector } from "./store.ts";

/** What the process gives the program; `cli.ts` passes the real ones. */
export interface TokensIo {
  readonly stdout: { write(text: string): unknown };
  readonly stderr: { write(text: string): unknown };
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Reads standard input to the end (for `verify`: tokens never travel in argv). */
  readStdin(): Promise<string>;
}

const require = createRequire(import.meta.url);
const VERSION = (require("../package.json") as { version: string }).version;

const EXIT_CODES = `
Exit codes:
  0  done
  1  verify: the token is refused; revoke: no token matched
  2  invalid arguments
  3  the token file is missing, too open, corrupt, locked or unwritable

The token file may also be given as BOTTLE_GATE_TOKEN_FILE.`;

const describe = (r: TokenRecord) =>
  `${r.id}  project=${r.project}  task=${r.task}  scopes=${r.scopes.join(",")}  created=${r.created}  expires=${r.expires ?? "never"}`;

/** Runs the command line and returns the exit code. */
export async function runTokensCli(argv: readonly string[], io: TokensIo): Promise<number> {
  let exitCode = 0;
  const fileOption = () =>
    new Option("--token-file <file>", "the token file")
      .env("BOTTLE_GATE_TOKEN_FILE")
      .makeOptionMandatory();
  const program = new Command("bottle-gate-tokens")
    .description(
      "Create, list, revoke and verify per-task gate tokens (stored only as SHA-256 digests).",
    )
    .version(VERSION, "-V, --version")
    .addHelpText("after", EXIT_CODES)
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
      outputError: (text, write) =>
        write(`BTL_TOKENS_INVALID_INPUT: ${text.replace(/^error: /, "")}`),
    });
  // The variable stands in for the flag (commander would read process.env; this reads `io.env`).
  const fromEnv = io.env.BOTTLE_GATE_TOKEN_FILE;
  const args =
    fromEnv !== undefined && !argv.includes("--token-file") && argv.length > 0
      ? [...argv, "--token-file", fromEnv]
      : argv;

  program
    .command("create")
    .description("create a token for a task; prints the token (only) on stdout, once")
    .addOption(fileOption())
    .requiredOption("--project <slug>", "the project the token reaches")
    .requiredOption("--task <name>", "the task it belongs to (revoke by it later)")
    .addOption(
      new Option("--scope <scope...>", "what it may do")
        .choices(["read", "write"])
        .default(["read", "write"]),
    )
    .option("--expires-in <seconds>", "lifetime in seconds (default: until revoked)", (value) => {
      const n = Number(value);
      if (!Number.isInteger(n) || n <= 0)
        throw new InvalidArgumentError("expected a positive whole number of seconds");
      return n;
    })
    .addHelpText("after", EXIT_CODES)
    .action(
      async (o: {
        tokenFile: string;
        project: string;
        task: string;
        scope: Scope[];
        expiresIn?: number;
      }) => {
        const store = createTokenStore({ file: o.tokenFile });
        const { token, record } = await store.create({
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
    .description("list tokens (ids, projects, tasks, scopes; never a token or digest)")
    .addOption(fileOption())
    .option("--project <slug>", "only this project")
    .option("--task <name>", "only this task")
    .option("--json", "print JSON")
    .addHelpText("after", EXIT_CODES)
    .action(async (o: { tokenFile: string; project?: string; task?: string; json?: boolean }) => {
      const records = await createTokenStore({ file: o.tokenFile }).list({
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
    .description(
      "revoke by --id, by --task (optionally within --project), or every token of --project",
    )
    .addOption(fileOption())
    .option("--id <id>", "one token")
    .option("--task <name>", "every token of a task")
    .option("--project <slug>", "every token of a project (or narrows --task)")
    .addHelpText("after", EXIT_CODES)
    .action(async (o: { tokenFile: string; id?: string; task?: string; project?: string }) => {
      let selector: RevokeSelector;
      if (o.id !== undefined && o.task === undefined && o.project === undefined)
        selector = { id: o.id };
      else if (o.id === undefined && o.task !== undefined)
        selector = { task: o.task, ...(o.project !== undefined ? { project: o.project } : {}) };
      else if (o.id === undefined && o.project !== undefined) selector = { project: o.project };
      else {
        io.stderr.write(
          "BTL_TOKENS_INVALID_INPUT: give --id, or --task [--project], or --project\n",
        );
        exitCode = TOKEN_ERRORS.BTL_TOKENS_INVALID_INPUT.exit;
        return;
      }
      const removed = await createTokenStore({ file: o.tokenFile }).revoke(selector);
      io.stdout.write(removed.map((r) => `revoked ${describe(r)}\n`).join(""));
    });

  program
    .command("verify")
    .description("check a token read from stdin (never from the command line)")
    .addOption(fileOption())
    .addHelpText("after", EXIT_CODES)
    .action(async (o: { tokenFile: string }) => {
      const token = (await io.readStdin()).trim();
      const result = await createTokenStore({ file: o.tokenFile }).verify(token);
      if (result.ok) {
        io.stdout.write(`${describe(result.record)}\n`);
      } else {
        io.stderr.write(`BTL_TOKENS_DENIED: the token is ${result.reason}\n`);
        exitCode = TOKEN_ERRORS.BTL_TOKENS_DENIED.exit;
      }
    });

  try {
    await program.parseAsync([...args], { from: "user" });
  } catch (error) {
    if (error instanceof CommanderError)
      return error.exitCode === 0 ? 0 : TOKEN_ERRORS.BTL_TOKENS_INVALID_INPUT.exit;
    if (isBottleError(error)) {
      io.stderr.write(`${error.code}: ${error.message}\n`);
      return error.exitCode;
    }
    io.stderr.write("BTL_INTERNAL: internal error\n");
    return 1;
  }
  return exitCode;
}
