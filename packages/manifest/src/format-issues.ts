/**
 * One way to report schema issues: `dot.path: message` (changesets' `flattenIssues`), with
 * array indices as `[i]`. Works on valibot's issues without importing valibot.
 */

/** A key of a path: an object key or an array index. */
export type PathKey = string | number;

/** The part of a schema issue (valibot's `BaseIssue`) these functions read. */
export interface IssueLike {
  readonly type?: string;
  readonly expected?: string | null;
  readonly received?: string;
  readonly message: string;
  readonly path?: ReadonlyArray<{ readonly key: unknown }> | undefined;
}

/** `git_gate.repos.api.url`, `routes[2].upstream`; `""` for the whole input. */
export function dottedPath(path: readonly PathKey[]): string {
  let out = "";
  for (const key of path)
    out += typeof key === "number" ? `[${key}]` : out === "" ? key : `.${key}`;
  return out;
}

/** The issue's path as {@link dottedPath} writes it, or `(root)` for the whole input. */
export function issuePath(issue: IssueLike): string {
  const keys = (issue.path ?? []).map((item) =>
    typeof item.key === "number" ? item.key : String(item.key),
  );
  return dottedPath(keys) || "(root)";
}

/**
 * `path: message` for each issue (at most `max`, default 10), joined with `; `. An unknown key
 * reads "is not a known key", a missing one "is required". SECURITY: a default valibot message
 * ("Invalid format: Expected … but received "<the value>"") loses its received part, so a
 * secret in the wrong field is never echoed.
 */
export function formatIssues(issues: readonly IssueLike[], options: { max?: number } = {}): string {
  const max = options.max ?? 10;
  const lines = issues.slice(0, max).map((issue) => `${issuePath(issue)}: ${describe(issue)}`);
  if (issues.length > max) lines.push(`and ${issues.length - max} more`);
  return lines.join("; ");
}

function describe(issue: IssueLike): string {
  if (issue.type === "strict_object" && issue.expected === "never") return "is not a known key";
  if (issue.received === "undefined") return "is required";
  const builtIn = /^Invalid [\w ]+: (Expected .*) but received .*$/s.exec(issue.message);
  return builtIn?.[1] ?? issue.message;
}
