/**
 * The only requests the gate routes: git's smart-HTTP endpoints. Everything else is 404 before
 * authentication. Paths are checked character by character and refused, never normalised.
 */

/** What a request asks for, once its path and method are known to be smart HTTP. */
export interface GitRoute {
  readonly project: string;
  /** `undefined` for the single-repository layout `/<project>.git/…`. */
  readonly repo: string | undefined;
  /** Repository path relative to the base path: `<project>.git` or `<project>/<repo>.git`. */
  readonly repoPath: string;
  /** The part after the repository: `/info/refs`, `/git-upload-pack`, … (CGI PATH_INFO suffix). */
  readonly endpoint: "/info/refs" | "/git-upload-pack" | "/git-receive-pack" | "/HEAD";
  readonly service: "git-upload-pack" | "git-receive-pack";
  /** `write` for receive-pack (push), `read` for everything else. */
  readonly scope: "read" | "write";
  /** The raw query string (only `service=…` on info/refs). */
  readonly query: string;
}

const PROJECT = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const REPO = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$/;
const SERVICES = new Set(["git-upload-pack", "git-receive-pack"]);

/**
 * Parses a request target into a route, or `undefined` (answer 404). SECURITY: no percent
 * escapes, backslashes, empty or dot segments, and repository names from a small alphabet.
 */
export function parseGitRoute(method: string, target: string): GitRoute | undefined {
  if (!target.startsWith("/") || /[%\\\s\u0000-\u001f\u007f-\uffff]/.test(target)) return undefined;
  const q = target.indexOf("?");
  const path = q === -1 ? target : target.slice(0, q);
  const query = q === -1 ? "" : target.slice(q + 1);
  const match =
    /^\/(?:([^/]+)\/)?([^/]+)\.git(\/info\/refs|\/git-upload-pack|\/git-receive-pack|\/HEAD)$/.exec(
      path,
    );
  if (!match) return undefined;
  const [, first, name = "", endpoint = ""] = match;
  const project = first ?? name;
  const repo = first === undefined ? undefined : name;
  if (!PROJECT.test(project)) return undefined;
  if (repo !== undefined && (!REPO.test(repo) || repo.includes("..") || repo.endsWith(".git"))) {
    return undefined;
  }
  const repoPath = repo === undefined ? `${project}.git` : `${project}/${repo}.git`;
  const ep = endpoint as GitRoute["endpoint"];
  if (ep === "/info/refs") {
    const service = /^service=(git-upload-pack|git-receive-pack)$/.exec(query)?.[1];
    if ((method !== "GET" && method !== "HEAD") || service === undefined) return undefined;
    return route(project, repo, repoPath, ep, service as GitRoute["service"], query);
  }
  if (ep === "/HEAD") {
    if ((method !== "GET" && method !== "HEAD") || query !== "") return undefined;
    return route(project, repo, repoPath, ep, "git-upload-pack", "");
  }
  const service = ep.slice(1);
  if (method !== "POST" || query !== "" || !SERVICES.has(service)) return undefined;
  return route(project, repo, repoPath, ep, service as GitRoute["service"], "");
}

function route(
  project: string,
  repo: string | undefined,
  repoPath: string,
  endpoint: GitRoute["endpoint"],
  service: GitRoute["service"],
  query: string,
): GitRoute {
  const scope = service === "git-receive-pack" ? "write" : "read";
  return { project, repo, repoPath, endpoint, service, scope, query };
}
