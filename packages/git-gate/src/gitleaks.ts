/**
 * The gitleaks v8 runner: `gitleaks git` over exactly the pushed commits, its JSON report
 * mapped to findings (the raw secret is redacted on read and never kept). Needs gitleaks
 * 8.19 or later (the `git` command, `--ignore-gitleaks-allow`); an older one exits with an
 * unknown-flag error, which fails the scan closed.
 */
import { constants } from "node:fs";
import { access, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, isAbsolute, join } from "node:path";
import { GitGateError } from "./errors.ts";
import { redact } from "./findings.ts";
import { oneLine, run } from "./run.ts";
import type { BatchFinding } from "./scanner.ts";

/** Options of {@link runGitleaks}. */
export interface GitleaksOptions {
  readonly env: Readonly<Record<string, string>>;
  readonly cwd?: string;
  readonly commits: readonly string[];
  /** The gitleaks executable. */
  readonly executable: string;
  readonly timeoutMs: number;
}

/** Commits per gitleaks run: keeps `--log-opts` far below the argument size limit. */
export const COMMITS_PER_RUN = 1000;
const MAX_REPORT_BYTES = 64 * 1024 * 1024;

// The default rules, and nothing read from the scanned repository: with --config given,
// gitleaks ignores a `.gitleaks.toml` in the repository and the GITLEAKS_CONFIG* variables.
const CONFIG = `title = "bottle git-gate"\n\n[extend]\nuseDefault = true\n`;

/**
 * Returns the absolute path of an executable `gitleaks` in `pathVariable` (a `PATH` value),
 * or `undefined`. Relative `PATH` entries are ignored.
 */
export async function findGitleaks(pathVariable: string | undefined): Promise<string | undefined> {
  for (const dir of (pathVariable ?? "").split(delimiter)) {
    if (!isAbsolute(dir)) continue;
    const candidate = join(dir, "gitleaks");
    try {
      await access(candidate, constants.X_OK);
      if ((await stat(candidate)).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * Runs gitleaks on `commits` (in runs of {@link COMMITS_PER_RUN}) and returns its findings.
 * SECURITY: `--ignore-gitleaks-allow` (a `gitleaks:allow` comment is an in-band bypass), an
 * empty `--gitleaks-ignore-path`, and our own `--config`. Throws `GitGateError`
 * BTL_GITGATE_SCANNER_FAILED when gitleaks cannot start, exits non-zero, times out, or writes
 * a report that cannot be read.
 */
export async function runGitleaks(options: GitleaksOptions): Promise<BatchFinding[]> {
  if (options.commits.length === 0) return [];
  const deadline = Date.now() + options.timeoutMs;
  // mkdtemp creates the directory 0700: the report holds raw secrets until it is read.
  const dir = await mkdtemp(join(tmpdir(), "bottle-gitleaks-"));
  try {
    const config = join(dir, "gitleaks.toml");
    await writeFile(config, CONFIG, { mode: 0o600 });
    const findings: BatchFinding[] = [];
    for (let from = 0; from < options.commits.length; from += COMMITS_PER_RUN) {
      const commits = options.commits.slice(from, from + COMMITS_PER_RUN);
      const report = join(dir, `report-${from}.json`);
      await runOnce(options, commits, config, dir, report, deadline - Date.now());
      findings.push(...(await readReport(report)));
      await rm(report, { force: true });
    }
    return findings;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function runOnce(
  options: GitleaksOptions,
  commits: readonly string[],
  config: string,
  dir: string,
  report: string,
  timeoutMs: number,
): Promise<void> {
  if (timeoutMs <= 0) throw failed("gitleaks timed out");
  const args = [
    "git",
    `--log-opts=--no-walk=unsorted ${commits.join(" ")}`,
    "--config",
    config,
    "--gitleaks-ignore-path",
    dir,
    "--ignore-gitleaks-allow",
    "--report-format",
    "json",
    "--report-path",
    report,
    "--no-banner",
    "--no-color",
    "--exit-code",
    "0",
    "--log-level",
    "error",
    ".",
  ];
  let result: Awaited<ReturnType<typeof run>>;
  try {
    result = await run(options.executable, args, {
      env: childEnv(options.env),
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
      timeoutMs,
      maxOutputBytes: 16 * 1024 * 1024,
    });
  } catch (error) {
    throw failed(`cannot run gitleaks: ${(error as Error).message}`, error);
  }
  if (result.timedOut) throw failed(`gitleaks timed out after ${timeoutMs} ms`);
  if (result.code !== 0) {
    const how =
      result.code === null ? `was killed by ${result.signal}` : `exited with ${result.code}`;
    throw failed(`gitleaks ${how}: ${oneLine(result.stderr, 300)}`);
  }
}

/** The environment minus GITLEAKS_* (config paths and contents must not come from there). */
function childEnv(env: Readonly<Record<string, string>>): Record<string, string> {
  const copy: Record<string, string> = Object.create(null);
  for (const [name, value] of Object.entries(env)) {
    if (!name.toUpperCase().startsWith("GITLEAKS_")) copy[name] = value;
  }
  return copy;
}

/** Reads a gitleaks JSON report into findings; every field is checked, the secret redacted. */
export async function readReport(path: string): Promise<BatchFinding[]> {
  let text: string;
  try {
    const size = (await stat(path)).size;
    if (size > MAX_REPORT_BYTES) throw new Error(`report of ${size} bytes`);
    text = await readFile(path, "utf8");
  } catch (error) {
    throw failed("gitleaks wrote no readable report", error);
  }
  let report: unknown;
  try {
    report = JSON.parse(text);
  } catch (error) {
    throw failed("gitleaks wrote a report that is not JSON", error);
  }
  if (!Array.isArray(report)) throw failed("gitleaks wrote a report that is not a list");
  return report.map((entry: unknown, index) => {
    const item = (typeof entry === "object" && entry !== null ? entry : {}) as Record<
      string,
      unknown
    >;
    const {
      RuleID: rule,
      File: file,
      StartLine: line,
      Commit: commit,
      Secret: secret,
      Match: match,
    } = item;
    if (
      typeof rule !== "string" ||
      rule === "" ||
      typeof file !== "string" ||
      typeof commit !== "string" ||
      typeof secret !== "string" ||
      !Number.isSafeInteger(line) ||
      (line as number) < 0
    ) {
      throw failed(
        `gitleaks report entry ${index} lacks RuleID, File, StartLine, Commit or Secret`,
      );
    }
    const shown = secret !== "" ? secret : typeof match === "string" ? match : "";
    return { commit, file, line: line as number, rule, redacted: redact(shown) };
  });
}

function failed(message: string, cause?: unknown): GitGateError {
  return new GitGateError(
    "BTL_GITGATE_SCANNER_FAILED",
    message,
    cause === undefined ? {} : { cause },
  );
}
