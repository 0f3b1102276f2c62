/** The `bottle-tokman` command line: serve, new-key, hash-key. */
import { createHash, randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import { createLogger } from "@bottle/log";
import {
  type CommonFlags,
  commonOptions,
  DEFAULT_PORTS,
  intOption,
  listenTargetFrom,
  type OnSignal,
  reportFailure,
  serveUntilStopped,
  withOutput,
} from "@bottle/sidecar";
import { Command, Option } from "commander";
import { loadConfig } from "./config.ts";
import { TokmanError } from "./errors.ts";
import { createTokman } from "./server.ts";

/** What the process gives the program; `cli.ts` passes the real ones. */
export interface TokmanProcess {
  readonly argv: readonly string[];
  readonly env: Readonly<Record<string, string | undefined>>;
  /** This process's id: a socket passed by systemd (LISTEN_PID) is taken only when it matches. */
  readonly pid?: number;
  readonly stdin: NodeJS.ReadableStream;
  readonly stdout: { write(text: string): unknown };
  readonly stderr: NodeJS.WritableStream;
  onSignal: OnSignal;
}

interface ServeFlags extends CommonFlags {
  config?: string;
  /** The former spellings of `--bind` and `--max-concurrent`. */
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

  const serveCommand = program
    .command("serve")
    .description("serve GET /api/<namespace>/<repository> until SIGTERM")
    .option("--config <file>", "the configuration (YAML or JSON)");
  commonOptions(serveCommand, {
    port: DEFAULT_PORTS.tokman,
    maxConcurrent: 64,
    idleTimeout: 60,
    help: { maxConcurrent: "requests handled at once; beyond that 503 with Retry-After" },
  })
    .addOption(
      new Option("--host <addr>", "the same as --bind (its former name)").conflicts([
        "bind",
        "socket",
      ]),
    )
    .addOption(
      new Option("--max-in-flight <n>", "the same as --max-concurrent (its former name)")
        .argParser(intOption(1, 65_536))
        .conflicts("maxConcurrent"),
    )
    .action(async (flags: ServeFlags) => {
      exitCode = await serve(proc, flags);
    });

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

/** `serve`: tokman until a signal stops it; resolves to the exit code. */
async function serve(proc: TokmanProcess, flags: ServeFlags): Promise<number> {
  const file = flags.config ?? proc.env.BOTTLE_TOKMAN_CONFIG;
  if (!file)
    throw new TokmanError("BTL_TOKMAN_CONFIG", "--config or BOTTLE_TOKMAN_CONFIG is required");
  const log = createLogger({
    name: "bottle-tokman",
    level: flags.logLevel,
    destination: proc.stderr,
  });
  try {
    const tokman = createTokman({
      config: loadConfig(file),
      logger: log,
      maxInFlight: flags.maxInFlight ?? flags.maxConcurrent,
      maxConnections: flags.maxConnections,
      idleTimeoutMs: flags.idleTimeout * 1000,
    });
    return await serveUntilStopped(tokman, {
      target: listenTargetFrom(
        { ...flags, bind: flags.host ?? flags.bind },
        proc.env,
        proc.pid ?? -1,
      ),
      env: proc.env,
      onSignal: proc.onSignal,
      logger: log,
    });
  } catch (error) {
    return reportFailure(error, { stderr: proc.stderr, logger: log });
  }
}
