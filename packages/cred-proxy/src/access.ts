/**
 * What a route lets through, decided on the checked raw target before any upstream is
 * contacted: git pushes only where the route opts in, and, on a route with allow rules, only
 * the methods and paths a rule names.
 */
import type { RouteAllow } from "@bottle/manifest/allow";

/** `%XX` escapes decoded to single characters, repeated until nothing changes (never throws). */
function decode(text: string): string {
  let out = text;
  for (let round = 0; round < 4 && out.includes("%"); round++) {
    const next = out.replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) =>
      String.fromCharCode(Number.parseInt(hex, 16)),
    );
    if (next === out) break;
    out = next;
  }
  return out;
}

/**
 * True for a git push: a path whose last segment is `git-receive-pack`, or a query with a
 * `service` parameter naming `receive-pack` (the `info/refs` advertisement of a push).
 * SECURITY: compared after decoding escapes (repeatedly), ignoring case, `;` parameters and a
 * trailing slash, with the query split on `&` and `;`: when in doubt, it is a push.
 * `path` is the raw path under the route prefix, `query` the raw query (without `?`).
 */
export function isGitPush(path: string, query: string | undefined): boolean {
  const segments = path.split("/").filter((segment) => segment !== "");
  const last = decode(segments.at(-1) ?? "").toLowerCase();
  if (last.split(";")[0]?.trim() === "git-receive-pack") return true;
  if (query === undefined) return false;
  for (const pair of query.split(/[&;]/)) {
    const equals = pair.indexOf("=");
    const name = decode((equals === -1 ? pair : pair.slice(0, equals)).replaceAll("+", " "));
    const value = equals === -1 ? "" : decode(pair.slice(equals + 1).replaceAll("+", " "));
    if (name.trim().toLowerCase() === "service" && value.toLowerCase().includes("receive-pack"))
      return true;
  }
  return false;
}

/**
 * True when a rule names `method` and one of its globs matches `path` (the raw path under the
 * route, leading `/`, no query) as a whole, segment by segment: `*` is one segment, `**` any
 * number (none included), anything else literal, compared as sent (no decoding, case-sensitive).
 * One trailing slash of `path` is ignored.
 */
export function isAllowed(rules: readonly RouteAllow[], method: string, path: string): boolean {
  const trimmed = path.length > 1 && path.endsWith("/") ? path.slice(0, -1) : path;
  const segments = trimmed === "/" ? [] : trimmed.slice(1).split("/");
  return rules.some(
    (rule) =>
      rule.methods.some((m) => m === method) &&
      rule.paths.some((glob) => matchGlob(glob.slice(1).split("/"), segments)),
  );
}

/**
 * Glob segments against path segments, in O(glob × path) steps whatever the number of `**`:
 * `reach[j]` says whether the glob segments so far match the first `j` path segments.
 */
function matchGlob(glob: readonly string[], path: readonly string[]): boolean {
  let reach = path.map(() => false);
  reach.push(false);
  reach[0] = true;
  for (const part of glob) {
    const next = reach.map(() => false);
    for (let j = 0; j <= path.length; j++) {
      next[j] =
        part === "**"
          ? reach[j] === true || (j > 0 && next[j - 1] === true)
          : j > 0 && reach[j - 1] === true && (part === "*" || part === path[j - 1]);
    }
    reach = next;
  }
  return reach[path.length] === true;
}
