/**
 * What the scan reports: findings with a redacted match and a fingerprint, and the lines a
 * pushing client sees (as `remote:` lines) and the gate logs.
 */

/** One secret found in a pushed commit. It never holds the secret itself. */
export interface Finding {
  /** The commit (or tag object) the secret was added in. */
  readonly commit: string;
  /** The path in that commit, or `(commit message)`, `(commit header)`, `(tag message)`. */
  readonly file: string;
  /** 1-based line in the new file (for a binary file: 1 + the newlines before the text). */
  readonly line: number;
  readonly rule: string;
  /** A few leading characters and the length, from {@link redact}. */
  readonly redacted: string;
  readonly fingerprint: string;
}

/**
 * `<commit>:<file>:<rule>:<line>`, gitleaks' fingerprint format, so that an operator can
 * allowlist either scanner's findings. Control characters in the file name are escaped (as in
 * {@link printable}) so the fingerprint can be copied from the client's output.
 */
export function fingerprintOf(finding: {
  readonly commit: string;
  readonly file: string;
  readonly rule: string;
  readonly line: number;
}): string {
  return `${finding.commit}:${printable(finding.file)}:${printable(finding.rule)}:${finding.line}`;
}

const SHOWN = 4;

/**
 * At most the first 4 characters of `secret`, never more than a quarter of it, then `…` and
 * the length: `ghp_…(40 chars)`; control characters among them show as `?`.
 * SECURITY: the only form in which a secret leaves the scanner.
 */
export function redact(secret: string): string {
  const chars = Array.from(secret);
  const shown = Math.min(SHOWN, Math.floor(chars.length / 4));
  const head = chars.slice(0, shown).join("").replace(UNSAFE, "?");
  return `${head}…(${chars.length} ${chars.length === 1 ? "char" : "chars"})`;
}

// C0 and C1 controls, DEL, line and paragraph separators, bidi overrides and isolates, BOM:
// anything that could move the cursor or reorder what a terminal shows after `remote:`.
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/gu;
const ESCAPED = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\\]/gu;

/** `text` with unsafe characters and backslashes escaped (`\n`, `\t`, `\x1b`, `\u202e`, `\\`). */
export function printable(text: string): string {
  return text.replace(ESCAPED, (char) => {
    const named = NAMED[char];
    if (named !== undefined) return named;
    const code = char.charCodeAt(0);
    return code < 0x100
      ? `\\x${code.toString(16).padStart(2, "0")}`
      : `\\u${code.toString(16).padStart(4, "0")}`;
  });
}

const NAMED: Readonly<Record<string, string>> = {
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t",
  "\\": "\\\\",
};

/** At most this many findings are listed; the rest are counted. */
export const MAX_LISTED = 100;

/**
 * The lines shown to the pushing client and logged: a header, one line per finding (at most
 * {@link MAX_LISTED}), then how to proceed. Every line is printable. No findings: no lines.
 */
export function formatFindings(findings: readonly Finding[]): string[] {
  if (findings.length === 0) return [];
  const count = findings.length === 1 ? "1 possible secret" : `${findings.length} possible secrets`;
  const lines = [`bottle-git-gate: push rejected: ${count} in the pushed commits`, ""];
  for (const finding of findings.slice(0, MAX_LISTED)) {
    lines.push(
      `  commit ${printable(finding.commit.slice(0, 12))} ${printable(finding.file)}:${finding.line}` +
        ` ${printable(finding.rule)} ${printable(finding.redacted)}` +
        `  fingerprint ${printable(finding.fingerprint)}`,
    );
  }
  if (findings.length > MAX_LISTED) {
    lines.push(`  … and ${findings.length - MAX_LISTED} more (the gate's log lists them all)`);
  }
  lines.push(
    "",
    "To proceed:",
    "  - remove the secret from every pushed commit (the history, not just the tip: rebase or",
    "    amend the commits above), then push again;",
    "  - treat the secret as leaked and rotate it: it has left your machine;",
    "  - a false positive can only be allowed by an operator, who adds its fingerprint to the",
    "    manifest's git_gate.scan.allowlist.",
  );
  return lines;
}
