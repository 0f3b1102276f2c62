/**
 * The gitleaks v8 runner. gitleaks reads exactly the text the built-in scanner reads (the
 * batches of scan.ts, written under neutral names into a private directory): `gitleaks dir`
 * over those files. So gitleaks adds its rules to every byte the gate scans (raw commit and tag
 * objects, tree entry names, whole blobs), and no path allowlist of its configuration (the
 * default one skips `node_modules/`, `package-lock.json`, images, `go.sum`, …) can match: no
 * file it reads has the pushed path. Needs gitleaks 8.19 or later (the `dir` command,
 * `--ignore-gitleaks-allow`); an older one exits with an unknown-command error, which fails the
 * scan closed.
 */
import { constants } from "node:fs";
import { access, mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, delimiter, isAbsolute, join } from "node:path";
import { ScanError } from "./errors.ts";
import { oneLine, run } from "./run.ts";

/** A finding of gitleaks in one of the files of a {@link GitleaksWorkspace}. */
export interface GitleaksFinding {
  /** The file's name, as given to {@link GitleaksWorkspace.write}. */
  readonly name: string;
  /** 1-based line in that file. */
  readonly line: number;
  readonly rule: string;
  /** SECURITY: the raw secret; redacted by the caller before it leaves the scan. */
  readonly secret: string;
}

const MAX_REPORT_BYTES = 64 * 1024 * 1024;

// The default rules, and nothing read from the scanned files: with --config given, gitleaks
// ignores a `.gitleaks.toml` and the GITLEAKS_CONFIG* variables. Its default path allowlist
// stays in force but never matches the neutral file names written here.
const CONFIG = `title = "bottle git-gate"\n\n[extend]\nuseDefault = true\n`;

/**
 * A private directory (0700) of text files for one gitleaks run: `write` each text under a
 * neutral name, then `run` once, then `remove`.
 */
export class GitleaksWorkspace {
  readonly #dir: string;
  readonly #input: string;
  readonly #writes: Promise<void>[] = [];

  private constructor(dir: string) {
    this.#dir = dir;
    this.#input = join(dir, "in");
  }

  /** Creates the directory (mkdtemp: 0700; the files hold raw pushed text). */
  static async create(): Promise<GitleaksWorkspace> {
    const workspace = new GitleaksWorkspace(await mkdtemp(join(tmpdir(), "bottle-gitleaks-")));
    await mkdir(workspace.#input, { mode: 0o700 });
    return workspace;
  }

  /** Writes `text` as the file `name` (a plain name such as `batch-000001.txt`). */
  write(name: string, text: string): void {
    const write = writeFile(join(this.#input, name), text, { mode: 0o600 });
    write.catch(() => {}); // awaited in run()
    this.#writes.push(write);
  }

  /**
   * Runs gitleaks over every file written. SECURITY: `--ignore-gitleaks-allow` (a
   * `gitleaks:allow` comment is an in-band bypass), an empty `--gitleaks-ignore-path`, our own
   * `--config`. Throws `ScanError` BTL_SCAN_FAILED when gitleaks cannot start,
   * exits non-zero, times out, or writes a report that cannot be read.
   */
  async run(options: {
    readonly executable: string;
    readonly env: Readonly<Record<string, string>>;
    readonly timeoutMs: number;
  }): Promise<GitleaksFinding[]> {
    try {
      await Promise.all(this.#writes);
    } catch (error) {
      throw failed("cannot write gitleaks' input", error);
    }
    if (this.#writes.length === 0) return [];
    if (options.timeoutMs <= 0) throw failed("gitleaks timed out");
    const config = join(this.#dir, "gitleaks.toml");
    const report = join(this.#dir, "report.json");
    await writeFile(config, CONFIG, { mode: 0o600 });
    const args = [
      "dir",
      "--config",
      config,
      "--gitleaks-ignore-path",
      this.#dir,
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
        cwd: this.#input,
        timeoutMs: options.timeoutMs,
        maxOutputBytes: 16 * 1024 * 1024,
      });
    } catch (error) {
      throw failed(`cannot run gitleaks: ${(error as Error).message}`, error);
    }
    if (result.timedOut) throw failed(`gitleaks timed out after ${options.timeoutMs} ms`);
    if (result.code !== 0) {
      const how =
        result.code === null ? `was killed by ${result.signal}` : `exited with ${result.code}`;
      throw failed(`gitleaks ${how}: ${oneLine(result.stderr, 300)}`);
    }
    return readReport(report);
  }

  /** Removes the directory and everything in it. */
  async remove(): Promise<void> {
    await Promise.allSettled(this.#writes);
    await rm(this.#dir, { recursive: true, force: true });
  }
}

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

/** The environment minus GITLEAKS_* (config paths and contents must not come from there). */
function childEnv(env: Readonly<Record<string, string>>): Record<string, string> {
  const copy: Record<string, string> = Object.create(null);
  for (const [name, value] of Object.entries(env)) {
    if (!name.toUpperCase().startsWith("GITLEAKS_")) copy[name] = value;
  }
  return copy;
}

/** Reads a gitleaks JSON report into findings; every field is checked. */
export async function readReport(path: string): Promise<GitleaksFinding[]> {
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
    const { RuleID: rule, File: file, StartLine: line, Secret: secret, Match: match } = item;
    if (
      typeof rule !== "string" ||
      rule === "" ||
      typeof file !== "string" ||
      typeof secret !== "string" ||
      !Number.isSafeInteger(line) ||
      (line as number) < 0
    ) {
      throw failed(`gitleaks report entry ${index} lacks RuleID, File, StartLine or Secret`);
    }
    const shown = secret !== "" ? secret : typeof match === "string" ? match : "";
    return { name: basename(file), line: Math.max(1, line as number), rule, secret: shown };
  });
}

function failed(message: string, cause?: unknown): ScanError {
  return new ScanError("BTL_SCAN_FAILED", message, cause === undefined ? {} : { cause });
}
