/** The `bottle-tokman` command line: serve, new-key, hash-key. */
import { createHash, randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import { isBottleError } from "@bottle/errors";
import { createLogger } from "@bottle/log";
import { DEFAULT_PORTS, intOption, withOutput } from "@bottle/sidecar";
import { Command, CommanderError, Option } from "commander";
import { loadConfig } from "./config.ts";
import { TOKMAN_ERRORS } from "./errors.ts";
import { createTokman } from "./server.ts";

/** What the process gives the program; `cli.ts` passes the real ones. */
export interface TokmanProcess {
  readonly argv: readonly string[];
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stdin: NodeJS.ReadableStream;
  readonly stdout: { write(text: string): unknown };
  readonly stderr: NodeJS.WritableStream;
  onSignal(signal: "SIGTERM" | "SIGINT", handler: () => void): void;
}

const require = createRequire(import.meta.url);
const VERSION = (require("../package.json") as { version: string }).version;

const HELP_AFTER = `
Environment:
  BOTTLE_TOKMAN_CONFIG  the configuration file (instead of --config)

Exit codes:
  0  stopped cleanly / done
  1  internal error
  2  invalid options or configuration
  3  the token store cannot be opened
  4  cannot listen (address in use, socket path taken)`;

/** Runs the command line; resolves to the exit code. */
export async function runTokman(proc: TokmanProcess): Promise<number> {
  const exitCode = 0;
  const program = new Command("bottle-tokman")
    .description(
      "Broker of GitHub App installation tokens: minted once, down-scoped, renewed, audited.",
    )
    .version(VERSION, "-V, --version")
    .addHelpText("after", HELP_AFTER);
  withOutput(program, proc, "BTL_TOKMAN_CONFIG");

  program
    .command("serve")
    .description("serve GET /api/<namespace>/<repository> until SIGTERM")
    .option("--config <file>", "the configuration (YAML or JSON)")
    .option("--host <addr>", "address to listen on", "127.0.0.1")
    .option("--port <n>", "TCP port (0: any free port)", intOption(0, 65535), DEFAULT_PORTS.tokman)
    .option("--socket <path>", "listen on a unix socket (mode 0600) instead")
    .option(
      "--max-in-flight <n>",
      "requests handled at once; beyond that 503 with Retry-After",
      intOption(1, 65_536),
      64,
    )
    .addOption(
      new Option("--log-level <level>", "log level")
        .choices(["debug", "info", "warn", "error"])
        .default("info"),
    )
    .action(
      async (flags: {
        config?: string;
        host: string;
        port: number;
        socket?: string;
        maxInFlight: number;
        logLevel: "info";
      }) => {
        const file = flags.config ?? proc.env.BOTTLE_TOKMAN_CONFIG;
        if (!file)
          throw new CommanderError(
            2,
            "tokman.config",
            "--config or BOTTLE_TOKMAN_CONFIG is required",
          );
        const log = createLogger({
          name: "bottle-tokman",
          level: flags.logLevel,
          destination: proc.stderr,
        });
        const tokman = createTokman({
          config: loadConfig(file),
          logger: log,
          maxInFlight: flags.maxInFlight,
        });
        const url = await tokman.listen(
          flags.socket ? { path: flags.socket } : { host: flags.host, port: flags.port },
        );
        log.info({ url }, "listening");
        await new Promise<void>((resolve) => {
          const stop = (signal: string) => {
            log.info({ signal }, "shutting down");
            void tokman.close().then(resolve);
          };
          proc.onSignal("SIGTERM", () => stop("SIGTERM"));
          proc.onSignal("SIGINT", () => stop("SIGINT"));
        });
        log.info({}, "stopped");
      },
    );

  program
    .command("new-key")
    .description(
      "print a new caller key on stdout, and the key_sha256 for the configuration on stderr",
    )
    .action(() => {
      const key = `btk_${randomBytes(24).toString("base64url")}`;
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
      if (key === "") throw new CommanderError(2, "tokman.key", "no key on stdin");
      proc.stdout.write(`${createHash("sha256").update(key).digest("hex")}\n`);
    });

  try {
    await program.parseAsync([...proc.argv], { from: "user" });
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.exitCode !== 0 && !error.code.startsWith("commander."))
        proc.stderr.write(`BTL_TOKMAN_CONFIG: ${error.message}\n`);
      return error.exitCode === 0 ? 0 : TOKMAN_ERRORS.BTL_TOKMAN_CONFIG.exit;
    }
    if (isBottleError(error)) {
      proc.stderr.write(`${error.code}: ${error.message}\n`);
      return error.exitCode;
    }
    proc.stderr.write(`BTL_INTERNAL: ${(error as Error).message}\n`);
    return 1;
  }
  return exitCode;
}
