/** The `bottle-tokman` command line: serve, new-key, hash-key. */
import { createHash } from "node:crypto";
import { createRequire } from "node:module";
import type { CommonFlags, SidecarProcess } from "@bottle/sidecar";
import {
  commonOptions,
  DEFAULT_PORTS,
  intOption,
  reportFailure,
  serveSidecar,
  withOutput,
} from "@bottle/sidecar";
import { Command, Option } from "commander";
import { newCallerKey } from "./client.ts";
import { loadConfig } from "./config.ts";
import { TokmanError } from "./errors.ts";
import { createTokman } from "./server.ts";

/** What the process gives the program; `cli.ts` passes the real ones. */
export interface TokmanProcess extends SidecarProcess {
  readonly stdin: NodeJS.ReadableStream;
}

interface ServeFlags extends CommonFlags {
  config?: string;
  revokeOnStop?: boolean;
  /** The former names of `--bind` and `--max-concurrent`. */
  host?: string;
  maxInFlight?: number;
}

const require = createRequire(import.meta.url);
const VERSION = (require("../package.json") as { version: string }).version;

const HELP_AFTER = `
Environment:
  BOTTLE_TOKMAN_CONFIG  the configuration file (instead of --config)

Exit codes:
  0  stopped cleanly / done
  1  internal error, or requests cut by a second signal or after the 30 s grace period
  2  invalid options or configuration
  3  the token store cannot be opened
  4  cannot listen (address in use, socket path taken)`;

/** Runs the command line; resolves to the exit code. */
export async function runTokman(proc: TokmanProcess): Promise<number> {
  let exitCode = 0;
  const program = withOutput(new Command("bottle-tokman"), proc, "BTL_TOKMAN_CONFIG")
    .description(
      "Broker of GitHub App installation tokens: minted once, down-scoped, renewed, audited.",
    )
    .version(VERSION, "-V, --version")
    .addHelpText("after", HELP_AFTER);

  const serve = program
    .command("serve")
    .description("serve GET /api/<namespace>/<repository> until SIGTERM")
    .option("--config <file>", "the configuration (YAML or JSON)")
    .option(
      "--revoke-on-stop",
      "revoke every token it holds when it stops (a tokman serving one bottle)",
    );
  commonOptions(serve, {
    port: DEFAULT_PORTS.tokman,
    maxConcurrent: 64,
    idleTimeout: 60,
    help: { maxConcurrent: "requests handled at once; beyond that 503 with Retry-After" },
  })
    // The former names of --bind and --max-concurrent, kept working.
    .addOption(new Option("--host <addr>", "the same as --bind").conflicts(["bind", "socket"]))
    .addOption(
      new Option("--max-in-flight <n>", "the same as --max-concurrent")
        .argParser(intOption(1, 65_536))
        .conflicts("maxConcurrent"),
    )
    .action(async ({ host, maxInFlight, ...rest }: ServeFlags) => {
      const flags = {
        ...rest,
        bind: host ?? rest.bind,
        maxConcurrent: maxInFlight ?? rest.maxConcurrent,
      };
      exitCode = await serveSidecar(proc, flags, {
        name: "bottle-tokman",
        start: (_flags, log) => {
          const file = flags.config ?? proc.env.BOTTLE_TOKMAN_CONFIG;
          if (!file)
            throw new TokmanError(
              "BTL_TOKMAN_CONFIG",
              "--config or BOTTLE_TOKMAN_CONFIG is required",
            );
          return createTokman({
            config: loadConfig(file),
            logger: log,
            maxInFlight: flags.maxConcurrent,
            maxConnections: flags.maxConnections,
            idleTimeoutMs: flags.idleTimeout * 1000,
            revokeOnClose: flags.revokeOnStop === true,
          });
        },
      });
    });

  program
    .command("new-key")
    .description(
      "print a new caller key on stdout, and the key_sha256 for the configuration on stderr",
    )
    .action(() => {
      const key = newCallerKey();
      proc.stdout.write(`${key}\n`);
      proc.stderr.write(`key_sha256: ${createHash("sha256").update(key).digest("hex")}\n`);
    });

  program
    .command("hash-key")
    .description("read a caller key on stdin and print its key_sha256 (keys never go in argv)")
    .action(async () => {
      const chunks: Buffer[] = [];
      for await (const chunk of proc.stdin) chunks.push(Buffer.from(chunk as Buffer));
      const key = Buffer.concat(chunks).toString("utf8").trim();
      if (key === "") throw new TokmanError("BTL_TOKMAN_CONFIG", "no key on stdin");
      proc.stdout.write(`${createHash("sha256").update(key).digest("hex")}\n`);
    });

  try {
    await program.parseAsync([...proc.argv], { from: "user" });
  } catch (error) {
    return reportFailure(error, proc);
  }
  return exitCode;
}
