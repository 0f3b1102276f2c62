/** The `bottle-git-gate` command line: plan, init, the two hooks, scan, entrypoint, revoke-keys. */
import { openSync } from "node:fs";
import { createRequire } from "node:module";
import { isBottleError } from "@bottle/errors";
import { createLogger, type Logger } from "@bottle/log";
import { gitEnv } from "@bottle/secret-scan/git";
import { commanderExit, type SidecarProcess, withOutput } from "@bottle/sidecar";
import { Command, Option } from "commander";
import { asGitGateError, GIT_GATE_ERRORS } from "./errors.ts";
import type { HookContext } from "./hooks.ts";
import type { StageFlags, StageIo } from "./stage.ts";

// Each command loads what it needs when it runs: the access hook runs before every fetch and
// must not pay for the scanner, the manifest parser or the SSH library.

/** What the process gives the program; `cli.ts` passes the real ones. */
export interface GitGateProcess extends Omit<SidecarProcess, "argv"> {
  readonly argv: readonly string[];
  readonly cwd: string;
  readonly stdin: NodeJS.ReadableStream & { isTTY?: boolean };
}

const require = createRequire(import.meta.url);
const VERSION = (require("../package.json") as { version: string }).version;

const EXIT_CODES = `
Exit codes:
  0  success (scan: no secrets)
  1  refused or failed: secrets found, upstream unreachable or refusing, policy
  2  invalid options, manifest or state; a credential missing; preflight declined
  3  the scanner crashed or timed out (the push is rejected)

Errors print as CODE: message; codes are stable (see the README).`;

/** Runs `bottle-git-gate` with the process's arguments; returns the exit code. */
export async function runGitGate(proc: GitGateProcess): Promise<number> {
  let exitCode = 0;
  const log = (name: string, file?: string) =>
    createLogger({
      name: `bottle-git-gate ${name}`,
      level: (proc.env.BOTTLE_GIT_GATE_LOG_LEVEL as "info" | undefined) ?? "info",
      destination: file === undefined ? proc.stderr : openSync(file, "a", 0o600),
    });
  const say = (text: string) => proc.stderr.write(`${text}\n`);
  const program = new Command("bottle-git-gate")
    .description(
      "The git gate: fetch-through mirrors, a secret-scanning pre-receive hook, and forwarding of clean pushes with a credential the agent never sees.",
    )
    .version(VERSION, "-V, --version")
    .addHelpText("after", EXIT_CODES);
  withOutput(program, proc, "BTL_GITGATE_CONFIG");

  const stageCommand = (name: string, description: string) =>
    program
      .command(name)
      .description(description)
      .requiredOption("--manifest <file>", "the bottle manifest (YAML or JSON)")
      .requiredOption("--stage <dir>", "the stage directory (created 0700)")
      .option("--gate-url <url>", "the gate as the agent reaches it", "http://127.0.0.1:9419");

  stageCommand("plan", "print what init would write (no side effects, no secret values)")
    .option("--json", "the whole plan as JSON")
    .action(async (flags: StageFlags) => {
      const { planStage, describePlan } = await import("./stage.ts");
      const plan = await planStage(flags, stageIo());
      proc.stdout.write(flags.json ? `${JSON.stringify(plan, null, 2)}\n` : describePlan(plan));
    });

  stageCommand(
    "init",
    "write the plan, store credentials, provision deploy keys, create and fetch the mirrors",
  )
    .option("-y, --yes", "create the deploy keys listed in the preflight without asking")
    .action(async (flags: StageFlags) => {
      const { initStage, describePlan } = await import("./stage.ts");
      const plan = await initStage(flags, stageIo());
      proc.stdout.write(describePlan(plan));
    });

  stageCommand(
    "entrypoint",
    "init, then run the gate server with the access hook and hooks directory",
  )
    .option("-y, --yes", "create the deploy keys listed in the preflight without asking")
    .argument(
      "[gate-options...]",
      "the gate's options after --, e.g. -- --token-file F --port 9419 (list: entrypoint … -- --help)",
    )
    .action(async (gateArgs: string[], flags: StageFlags) => {
      const [{ runEntrypoint }, { initStage }] = await Promise.all([
        import("./entrypoint.ts"),
        import("./stage.ts"),
      ]);
      exitCode = await runEntrypoint(proc, {
        gateArgs,
        version: VERSION,
        init: () => initStage(flags, stageIo()),
      });
    });

  // The two hooks: run by bottle-gate and by git, with the gate's state directory; they log to
  // its gate.log and write their reasons for the git client on stderr.
  const hookCommand = (
    name: "access-hook" | "pre-receive",
    description: string,
    run: (ctx: HookContext) => Promise<number>,
  ) =>
    program
      .command(name)
      .description(description)
      .requiredOption("--state <dir>", "the gate's state directory (<stage>/git-gate)")
      .action(async (flags: { state: string }) => {
        exitCode = await run({
          stateDir: flags.state,
          env: proc.env,
          cwd: proc.cwd,
          out: (line) => proc.stderr.write(`${line}\n`),
          logger: log(name, `${flags.state}/gate.log`),
        });
      });

  hookCommand(
    "access-hook",
    "refresh the mirror in GIT_DIR from its upstream (run by bottle-gate before upload-pack)",
    async (ctx) => (await import("./hooks.ts")).runAccessHook(ctx),
  );
  hookCommand(
    "pre-receive",
    "git's pre-receive hook: scan the commits a push adds, forward a clean push upstream",
    async (ctx) =>
      (await import("./hooks.ts")).runPreReceive({ ...ctx, stdin: await readAll(proc.stdin) }),
  );

  program
    .command("scan")
    .description("scan the commits of a range for secrets (the scanner on its own)")
    .requiredOption("--range <range>", "commits to scan: A..B, A...B or one revision")
    .option("--repo <dir>", "the repository (default: the current directory)")
    .option("--state <dir>", "take rules and allowlist from this gate's configuration")
    .addOption(
      new Option("--scanner <name>", "which scanner").choices(["auto", "builtin", "gitleaks"]),
    )
    .option("--json", "findings as JSON")
    .action(
      async (flags: {
        range: string;
        repo?: string;
        state?: string;
        scanner?: "auto" | "builtin" | "gitleaks";
        json?: boolean;
      }) => {
        const [{ describeScan, formatFindings, scanRange }, { readGateConfig }] = await Promise.all(
          [import("@bottle/secret-scan"), import("./state.ts")],
        );
        const config = flags.state ? readGateConfig(flags.state) : undefined;
        const result = await scanRange({
          env: gitEnv(proc.env),
          cwd: flags.repo ?? proc.cwd,
          range: flags.range,
          scanner: flags.scanner ?? config?.scan.scanner ?? "auto",
          rules: config?.scan.rules ?? [],
          allowlist: config?.scan.allowlist ?? [],
          ...(config === undefined ? {} : { maxObjectBytes: config.scan.maxBlobBytes }),
        });
        if (flags.json) proc.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
        else if (result.findings.length > 0)
          proc.stdout.write(`${formatFindings(result.findings).join("\n")}\n`);
        say(describeScan(result));
        exitCode = result.findings.length > 0 ? GIT_GATE_ERRORS.BTL_GITGATE_SECRETS_FOUND.exit : 0;
      },
    );

  program
    .command("revoke-keys")
    .description("revoke the deploy keys init provisioned (run after the sidecars stopped)")
    .requiredOption("--stage <dir>", "the stage directory")
    .action(async (flags: { stage: string }) => {
      const { revokeDeployKeys } = await import("./deploy-keys.ts");
      const { revoked, alreadyGone } = await revokeDeployKeys({
        stateDir: `${flags.stage}/git-gate`,
        env: proc.env,
        logger: log("revoke-keys"),
      });
      say(
        `revoked ${revoked.length} deploy key(s)${alreadyGone.length ? `, ${alreadyGone.length} already gone` : ""}`,
      );
    });

  function stageIo(): StageIo {
    return {
      env: proc.env,
      cwd: proc.cwd,
      stdin: proc.stdin,
      stderr: proc.stderr,
      say,
      logger: log("init"),
    };
  }

  try {
    await program.parseAsync([...proc.argv], { from: "user" });
  } catch (raw) {
    const error = asGitGateError(raw);
    const exit = commanderExit(error, GIT_GATE_ERRORS.BTL_GITGATE_CONFIG.exit);
    if (exit !== undefined) return exit;
    if (isBottleError(error)) {
      proc.stderr.write(`${error.code}: ${error.message}\n`);
      return error.exitCode;
    }
    (log("bottle-git-gate") as Logger).error({ err: error }, "unexpected failure");
    return 1;
  }
  return exitCode;
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Buffer));
  return Buffer.concat(chunks).toString("utf8");
}
