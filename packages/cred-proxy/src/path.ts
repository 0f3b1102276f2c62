/**
 * Request-target confinement. SECURITY: the raw target is checked and refused, never normalised:
 * WHATWG URL parsing collapses `%2e%2e`, and resolving `//evil.test/x` against the upstream base
 * replaces the host. The upstream path is built by concatenation of validated pieces only.
 */
import type { ProxyRoute } from "./routes.ts";

/** Why a target was refused: a fixed word for the log, never the target itself. */
export type TargetProblem =
  | "absolute-form"
  | "fragment"
  | "control character"
  | "non-ASCII"
  | "backslash"
  | "malformed escape"
  | "encoded slash"
  | "encoded control character"
  | "empty segment"
  | "dot segment";

/** A split, checked origin-form target; `query` is undefined when there is no `?`. */
export type TargetCheck =
  | { readonly ok: true; readonly path: string; readonly query: string | undefined }
  | { readonly ok: false; readonly problem: TargetProblem };

/** A dot segment after decoding `%2e` in any case: `.`, `..`, `%2e`, `.%2E`, `%2e%2e`. */
const DOT_SEGMENT = /^(?:\.|%2e){1,2}$/i;
/**
 * An npm scoped package name as npm requests it (`@scope%2fname`, registry API): the one place
 * an encoded slash is a name, not a path. Both halves are plain npm name characters.
 */
const NPM_SCOPED = /^@[a-z0-9][a-z0-9._~-]*%2f[a-z0-9][a-z0-9._~-]*$/i;

/**
 * Checks a raw request target (`req.url`). Refuses absolute-form and `*`, fragments, control
 * and non-ASCII characters anywhere, and in the path: backslashes, malformed `%` escapes,
 * `%2f`/`%5c`, encoded control characters, empty segments (`//`) and dot segments. The query
 * is kept verbatim.
 */
export function checkTarget(target: string): TargetCheck {
  if (!target.startsWith("/")) return refused("absolute-form");
  for (let i = 0; i < target.length; i++) {
    const c = target.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f) return refused("control character");
    if (c > 0x7e) return refused("non-ASCII");
    if (c === 0x23) return refused("fragment");
  }
  const q = target.indexOf("?");
  const path = q === -1 ? target : target.slice(0, q);
  const query = q === -1 ? undefined : target.slice(q + 1);
  const problem = checkPath(path);
  if (problem !== undefined) return refused(problem);
  return { ok: true, path, query };
}

/** The problem of a raw path of printable ASCII, or undefined when it is confined. */
function checkPath(path: string): TargetProblem | undefined {
  if (path.includes("\\")) return "backslash";
  const segments = path.slice(1).split("/");
  for (const segment of segments) {
    for (let i = segment.indexOf("%"); i !== -1; i = segment.indexOf("%", i + 1)) {
      const hex = segment.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return "malformed escape";
      const byte = Number.parseInt(hex, 16);
      if (byte === 0x5c || (byte === 0x2f && !NPM_SCOPED.test(segment))) return "encoded slash";
      if (byte < 0x20 || byte === 0x7f) return "encoded control character";
    }
  }
  for (const [index, segment] of segments.entries()) {
    // A trailing slash leaves one empty last segment; `//` anywhere else is refused.
    if (segment === "" && index !== segments.length - 1) return "empty segment";
    if (DOT_SEGMENT.test(segment)) return "dot segment";
  }
  return undefined;
}

function refused(problem: TargetProblem): TargetCheck {
  return { ok: false, problem };
}

/**
 * The upstream request path for a checked `path` under `route`: base path + `/` + the part
 * after the route prefix + `?` + the raw query. Throws a plain Error when `path` is not under
 * the route's prefix (a caller bug).
 */
export function upstreamPath(route: ProxyRoute, path: string, query: string | undefined): string {
  if (!path.startsWith(route.path)) throw new Error("path is not under the route's prefix");
  const rest = path.slice(route.path.length);
  return `${route.basePath}/${rest}${query === undefined ? "" : `?${query}`}`;
}

/** SECURITY: true only when origin + `requestPath` still names the route's own origin. */
export function staysOnOrigin(route: ProxyRoute, requestPath: string): boolean {
  if (!requestPath.startsWith("/") || requestPath.startsWith("//")) return false;
  try {
    return new URL(`${route.origin}${requestPath}`).origin === route.origin;
  } catch {
    return false;
  }
}
