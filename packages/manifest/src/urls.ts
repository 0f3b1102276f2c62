/** URL rules shared by routes, APIs, tokman and git upstreams. */
import { isIP } from "node:net";

/** True for hosts that can only mean this machine: 127.0.0.0/8, ::1 and `localhost`. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  if (host === "localhost" || host === "::1") return true;
  return isIP(host) === 4 && host.startsWith("127.");
}

/** Options of {@link checkHttpUrl}. */
export interface HttpUrlOptions {
  /**
   * Where `http://` is accepted: on loopback hosts only (the default: a credential or a caller
   * key travels to this URL), or anywhere (a URL the agent uses, such as the gate's).
   */
  readonly plainHttp?: "loopback" | "anywhere";
}

const HTTP_LOOPBACK_ONLY = "to use https:// (http:// is accepted for loopback hosts only)";
const NO_USER_INFO =
  "to carry no user name or password (put the secret in an environment variable and name it in token_ref)";

/** A host name or address, and an optional port: nothing else in the authority. */
const AUTHORITY = /^(?:[A-Za-z0-9._~-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/;
/** A base path: plain segments (never starting with a dot), at most one trailing slash. */
const BASE_PATH = /^(?:\/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)*\/?$/;

/**
 * Checks an http(s) base URL; returns what is wrong (to follow "Expected X …") or undefined.
 * SECURITY: https, or http to loopback only (unless `plainHttp: "anywhere"`); printable ASCII;
 * no user info (a credential pasted into a URL), query, fragment, escapes or dot segments,
 * checked on the raw text because URL parsing would silently collapse them. Never echoes the
 * value.
 */
export function checkHttpUrl(value: string, options: HttpUrlOptions = {}): string | undefined {
  if (/[^\x21-\x7e]|\\/.test(value))
    return "to have no spaces, backslashes, control or non-ASCII characters";
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return "to be an absolute URL (https://host[:port][/path])";
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return "to use https://";
  if (url.protocol === "http:" && options.plainHttp !== "anywhere" && !isLoopbackHost(url.hostname))
    return HTTP_LOOPBACK_ONLY;
  const rest = /^https?:\/\/(.*)$/i.exec(value)?.[1] ?? "";
  const authority = /^[^/?#]*/.exec(rest)?.[0] ?? "";
  if (authority.includes("@") || url.username !== "" || url.password !== "") return NO_USER_INFO;
  if (!AUTHORITY.test(authority)) return "to be an absolute URL (https://host[:port][/path])";
  if (value.includes("?")) return "to have no query string";
  if (value.includes("#")) return "to have no fragment";
  if (!BASE_PATH.test(rest.slice(authority.length)))
    return "to have a plain path (letters, digits, `._~-`, no dot segments or escapes)";
  return undefined;
}

/** A git upstream, parsed. */
export interface GitUrl {
  readonly transport: "ssh" | "https" | "http";
  readonly user: string | undefined;
  readonly host: string;
  readonly port: number | undefined;
  /** The repository path as the server sees it (leading `/` for ssh:// and https://). */
  readonly path: string;
}

const HOST =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])$/;
const USER = /^[A-Za-z0-9._-]{1,64}$/;
const REPO_PATH = /^[A-Za-z0-9._~/-]+$/;

/**
 * Parses `ssh://[user@]host[:port]/path`, scp-style `user@host:path` and `https://host/path`
 * (`http://` for loopback hosts). Returns the parsed URL or what is wrong with it.
 */
export function parseGitUrl(value: string): GitUrl | string {
  if (/[\s\u0000-\u001f\u007f-\u009f\\]/.test(value))
    return "to have no spaces, backslashes or control characters";
  // Checked on the raw text: URL parsing would silently collapse `..` and decode escapes.
  if (value.includes("%") || /(?:^|[/:])\.{1,2}(?:\/|$)/.test(value)) {
    return "to have a plain repository path (no dot segments or escapes)";
  }
  const scp = /^([^@/:]+)@([^/:]+):(?!\/\/)(.+)$/.exec(value);
  let parsed: GitUrl;
  if (!value.includes("://") && scp) {
    const [, user = "", host = "", path = ""] = scp;
    parsed = { transport: "ssh", user, host, port: undefined, path };
  } else {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      return "to be ssh://[user@]host[:port]/path, user@host:path or https://host/path";
    }
    const transport = url.protocol.slice(0, -1);
    if (transport !== "ssh" && transport !== "https" && transport !== "http") {
      return "to use ssh://, user@host:path or https://";
    }
    if (transport === "http" && !isLoopbackHost(url.hostname)) {
      return HTTP_LOOPBACK_ONLY;
    }
    if (transport !== "ssh" && (url.username !== "" || url.password !== "")) {
      return NO_USER_INFO;
    }
    if (url.password !== "") return "to carry no password";
    if (url.search !== "" || url.hash !== "" || /[?#]/.test(value))
      return "to have no query or fragment";
    parsed = {
      transport,
      user: url.username === "" ? undefined : decodeURIComponent(url.username),
      host: url.hostname,
      port: url.port === "" ? undefined : Number(url.port),
      path: decodeURIComponent(url.pathname),
    };
  }
  if (!HOST.test(parsed.host)) return "to name a valid host";
  if (parsed.user !== undefined && !USER.test(parsed.user)) return "to have a plain user name";
  if (
    !REPO_PATH.test(parsed.path) ||
    parsed.path === "/" ||
    /(?:^|\/)\.{1,2}(?:\/|$)/.test(parsed.path)
  ) {
    return "to have a plain repository path (no dot segments or escapes)";
  }
  if (parsed.path.startsWith("-") || parsed.host.startsWith("-"))
    return "to not start a host or path with `-`";
  return parsed;
}
