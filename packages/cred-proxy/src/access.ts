/**
 * What a route lets through, decided on the checked raw target before any upstream is
 * contacted: git pushes only where the route opts in.
 */

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
