/** The `bottle-scan` command line: the scanner on its own, over a range of a repository. */
import { createRequire } from "node:module";
import { intOption, reportFailure, withOutput } from "@bottle/sidecar";
import { Command, Option } from "commander";
import { SCAN_ERRORS } from "./errors.ts";
import { gitEnv } from "./run.ts";

/** What the process gives the program; `cli.ts` passes the real ones. */
export interface ScanProcess {
  readonly argv: readonly string[];
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
  readonly stdout: { write(text: string): unknown };
  readonly stderr: { write(text: string): unknown };
}

const require = createRequire(import.meta.url);
const VERSION = (require("../package.json") as { version: string }).version;

const HELP_AFTER = `
Examples:
  bottle-scan --range origin/main..HEAD          what a push of HEAD would add
  bottle-scan --range v1.2.0..v1.3.0 --json      findings as JSON
  bottle-scan --range HEAD --scanner builtin     one commit, without gitleaks

It reads what the commits of the range add: their raw objects (every header, the message in
its stored bytes), the names of their new trees, the lines they add, and binary or otherwise
unseen blobs in full. gitleaks (8.19+) runs as well when it is on PATH (--scanner auto).

Exit codes:
  0  no secrets
  1  secrets found (listed on stdout, redacted), or a git error
  2  invalid options or range
  3  the scanner failed (crashed, timed out): nothing counts as scanned`;

/** Runs the command; resolves to the exit code. Errors print as `CODE: message`. */
export async function runScan(proc: ScanProcess): Promise<number> {
  let exitCode = 0;
  const program = new Command("bottle-scan")
    .description("Scan the commits of a git range for secrets, the way bottle's git gate does.")
    .version(VERSION, "-V, --version")
    .requiredOption("--range <range>", "commits to scan: A..B, A...B or one revision")
    .option("--repo <dir>", "the repository (default: the current directory)")
    .addOption(
      new Option("--scanner <name>", "auto: gitleaks as well when on PATH")
        .choices(["auto", "builtin", "gitleaks"])
        .default("auto"),
    )
    .option(
      "--allow <fingerprint...>",
      "finding fingerprints to accept (commit:file:rule:line), reported apart",
    )
    .option(
      "--max-object-bytes <n>",
      "refuse (exit 1) rather than read an object larger than this",
      intOption(1024, 2 ** 40),
      256 * 1024 * 1024,
    )
    .option("--timeout <seconds>", "give up (exit 3) after this long", intOption(1, 86_400), 60)
    .option("--json", "the whole result as JSON on stdout")
    .addHelpText("after", HELP_AFTER)
    .action(async (flags: Flags) => {
      const { scanRange, describeScan } = await import("./range.ts");
      const { formatFindings } = await import("./findings.ts");
      const result = await scanRange({
        env: gitEnv(proc.env),
        cwd: flags.repo ?? proc.cwd,
        range: flags.range,
        scanner: flags.scanner,
        allowlist: flags.allow ?? [],
        maxObjectBytes: flags.maxObjectBytes,
        timeoutMs: flags.timeout * 1000,
      });
      if (flags.json) proc.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      else if (result.findings.length > 0)
        proc.stdout.write(`${formatFindings(result.findings).join("\n")}\n`);
      proc.stderr.write(`${describeScan(result)}\n`);
      exitCode = result.findings.length > 0 ? SCAN_ERRORS.BTL_SCAN_SECRETS_FOUND.exit : 0;
    });
  withOutput(program, proc, "BTL_SCAN_CONFIG");
  try {
    await program.parseAsync([...proc.argv], { from: "user" });
  } catch (error) {
    return reportFailure(error, { stderr: proc.stderr, debug: proc.env.BOTTLE_DEBUG === "1" });
  }
  return exitCode;
}

interface Flags {
  readonly range: string;
  readonly repo?: string;
  readonly scanner: "auto" | "builtin" | "gitleaks";
  readonly allow?: string[];
  readonly maxObjectBytes: number;
  readonly timeout: number;
  readonly json?: boolean;
}
