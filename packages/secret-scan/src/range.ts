/** A range of a repository, scanned: what `bottle-scan` and `bottle-git-gate scan` run. */
import { commitsInRange } from "./commits.ts";
import { type ScanOptions, type ScanResult, scanCommits } from "./scan.ts";

/** Options of {@link scanRange}: {@link ScanOptions} with a range instead of commits. */
export type ScanRangeOptions = Omit<ScanOptions, "commits" | "tags" | "refs" | "since"> & {
  /** `A..B`, `A...B` or one revision (see `commitsInRange`). */
  readonly range: string;
};

/**
 * Scans the commits of `range` and what they add beyond their parents outside the range.
 * Throws `ScanError` BTL_SCAN_CONFIG (bad range), BTL_SCAN_GIT, and what `scanCommits` throws.
 */
export async function scanRange(options: ScanRangeOptions): Promise<ScanResult> {
  const { range, ...rest } = options;
  const base = { env: options.env, ...(options.cwd === undefined ? {} : { cwd: options.cwd }) };
  const commits = await commitsInRange({ ...base, range });
  return scanCommits({ ...rest, commits, since: "parents" });
}

/** One line about a finished scan, for a human on stderr. */
export function describeScan(result: ScanResult): string {
  const allowed = result.allowed.length > 0 ? `, ${result.allowed.length} allowlisted` : "";
  return `scanned ${result.commits} commit(s), ${result.objects} object(s), ${result.bytes} bytes with ${result.scanner} in ${result.durationMs} ms: ${result.findings.length} finding(s)${allowed}`;
}
