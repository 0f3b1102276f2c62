/** The `bottle` command line, as a function of its arguments and its I/O (no globals). */
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { isBottleError } from "@bottle/errors";
import { expandRoutes, formatIssue, loadManifest, type ManifestError } from "@bottle/manifest";
import { Command, CommanderError } from "commander";
import { CLI_ERRORS } from "./errors.ts";
import { formatPlan } from "./format.ts";
import { planBottle } from "./plan.ts";

/** Where the CLI reads and writes; `cli.ts` passes the process's own. */
export interface CliIo {
  readonly stdout: { write(text: string): unknown };
  readonly stderr: { write(text: string): unknown };
  readonly env: Readonly<Record<string, string | undefined>>;
}

const require = createRequire(import.meta.url);
const VERSION = (require("../package.json") as { version: string }).version;

const EXIT_CODES = `
Exit codes:
  0  success
  1  internal error (a bug; rerun with BOTTLE_DEBUG=1 for the stack)
  2  invalid manifest or command line
  3  environment: a file or variable the manifest names is missing or unsafe

Errors print as CODE: message (codes are stable; see the README).`;

/** Runs the CLI with `argv` (without node and script) and returns the exit code. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  let exitCode = 0;
  const program = new Command("bottle")
    .description("Run AI coding agents in bottles that never hold a real credential.")
    .version(VERSION, "-V, --version", "print the version")
    .helpOption("-h, --help", "show help")
    .helpCommand("help [command]", "show help for a command")
    .showHelpAfterError("(run with --help for usage)")
    .addHelpText("after", EXIT_CODES)
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
      outputError: (text, write) => write(`BTL_CLI_USAGE: ${text.replace(/^error: /, "")}`),
    });

  const fileChecks = "--no-file-checks";
  const fileChecksHelp = "do not check that identity and key files exist with mode 0600";

  program
    .command("validate")
    .description("check manifests: schema, cross-field rules, secret files")
    .argument("<file...>", "manifest files (YAML or JSON)")
    .option(fileChecks, fileChecksHelp)
    .addHelpText("after", EXIT_CODES)
    .action(async (files: string[], options: { fileChecks: boolean }) => {
      // Every file is checked and reported; the exit code is the worst one seen.
      for (const file of files) {
        try {
          const m = await loadManifest(file, { checkFiles: options.fileChecks });
          const repos = Object.keys(m.git_gate?.repos ?? {}).length;
          const routes = expandRoutes(m).length;
          io.stdout.write(
            `ok: ${file} (project ${m.name}: ${repos} repositories, ${routes} proxy routes)\n`,
          );
        } catch (error) {
          exitCode = Math.max(exitCode, report(error, io));
        }
      }
    });

  program
    .command("plan")
    .description(
      "show what the bottle would run: repos, upstreams, routes, host variables (never values)",
    )
    .argument("<file>", "manifest file (YAML or JSON)")
    .option("--json", "print the plan as JSON")
    .option(fileChecks, fileChecksHelp)
    .addHelpText("after", EXIT_CODES)
    .action(async (file: string, options: { json?: boolean; fileChecks: boolean }) => {
      const plan = planBottle(await loadManifest(file, { checkFiles: options.fileChecks }), io.env);
      io.stdout.write(options.json ? `${JSON.stringify(plan, null, 2)}\n` : formatPlan(plan, file));
    });

  program
    .command("schema")
    .description("print the manifest's JSON Schema (for editors and CI)")
    .addHelpText("after", EXIT_CODES)
    .action(async () => {
      io.stdout.write(await readFile(require.resolve("@bottle/manifest/schema.json"), "utf8"));
    });

  try {
    await program.parseAsync([...argv], { from: "user" });
  } catch (error) {
    exitCode = report(error, io);
  }
  return exitCode;
}

/** Prints an error as `CODE: message` lines and returns the exit code. */
function report(error: unknown, io: CliIo): number {
  if (error instanceof CommanderError) {
    // Help and version "errors" are successes; everything else was already printed.
    return error.exitCode === 0 ? 0 : CLI_ERRORS.BTL_CLI_USAGE.exit;
  }
  if (isBottleError(error) && Array.isArray((error as ManifestError).issues)) {
    const { issues, filename } = error as ManifestError;
    for (const issue of issues) io.stderr.write(`${issue.code}: ${formatIssue(issue, filename)}\n`);
    return error.exitCode;
  }
  if (isBottleError(error)) {
    io.stderr.write(`${error.code}: ${error.message}\n`);
    return error.exitCode;
  }
  io.stderr.write("BTL_INTERNAL: internal error\n");
  if (io.env.BOTTLE_DEBUG === "1") io.stderr.write(`${(error as Error)?.stack ?? String(error)}\n`);
  return CLI_ERRORS.BTL_INTERNAL.exit;
}
