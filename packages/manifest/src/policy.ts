/**
 * The rules every part of bottle applies the same way, in one place (`@bottle/manifest/policy`):
 * upstream URLs, loopback hosts, git upstream URLs, which headers may carry a credential, the
 * hop-by-hop headers, and the shape of a credential value. The manifest validates with them
 * and the sidecars check with them, so a manifest that validates never makes a sidecar refuse
 * to start. Light on purpose: Node builtins only (the proxy loads it on its request path).
 */
import { isIP } from "node:net";

/** True for hosts that can only mean this machine: 127.0.0.0/8, ::1 and `localhost`. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  if (host === "localhost" || host === "::1") return true;
  return isIP(host) === 4 && host.startsWith("127.");
}

const SAFE_PATH = /^(?:\/[A-Za-z0-9._~-]+)*\/?$/;

/**
 * Checks an http(s) base URL; returns what is wrong (to follow "Expected X …") or undefined.
 * SECURITY: https, or http to loopback only; no user info (a credential pasted into a URL),
 * query, fragment, control or non-ASCII characters (a look-alike host), escapes or dot
 * segments. Never echoes the value.
 */
export function checkHttpUrl(value: string): string | undefined {
  if (/[^\x21-\x7e]|\\/.test(value))
    return "to have no spaces, backslashes, control or non-ASCII characters";
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return "to be an absolute URL (https://host[:port][/path])";
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return "to use https://";
  if (url.protocol === "http:" && !isLoopbackHost(url.hostname)) {
    return "to use https:// (http:// is accepted for loopback hosts only)";
  }
  if (url.username !== "" || url.password !== "" || /@/.test(value.split("/")[2] ?? "")) {
    return "to carry no user name or password (put the secret in an environment variable and name it in token_ref)";
  }
  if (url.search !== "" || value.includes("?")) return "to have no query string";
  if (url.hash !== "" || value.includes("#")) return "to have no fragment";
  // The raw path, before URL normalisation collapses dot segments or decodes escapes.
  const slash = value.indexOf("/", value.indexOf("//") + 2);
  const path = slash === -1 ? "" : value.slice(slash);
  if (!SAFE_PATH.test(path) || /(?:^|\/)\.{1,2}(?:\/|$)/.test(path)) {
    return "to have a plain path (letters, digits, `._~-`, no dot segments or escapes)";
  }
  return undefined;
}

/** Hop-by-hop headers (RFC 9110 §7.6.1, plus the non-standard ones proxies still meet). */
export const HOP_BY_HOP_HEADERS: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/**
 * SECURITY: headers that cannot carry a route's credential: hop-by-hop ones (a downstream hop
 * drops them), framing and routing ones, `cookie`, and the forwarding headers.
 */
const NOT_FOR_CREDENTIALS: ReadonlySet<string> = new Set([
  ...HOP_BY_HOP_HEADERS,
  "host",
  "content-length",
  "content-type",
  "content-encoding",
  "expect",
  "cookie",
  "forwarded",
]);

/** True when `name` (any case) may carry a route's credential (`auth: { header: name }`). */
export function isCredentialHeader(name: string): boolean {
  const lower = name.toLowerCase();
  return !NOT_FOR_CREDENTIALS.has(lower) && !lower.startsWith("x-forwarded-");
}

/**
 * The longest credential value a sidecar sends (8 KiB): any token bottle handles fits, and
 * with the rest of a request it stays within Node's 16 KiB header limit.
 */
export const MAX_CREDENTIAL_CHARS = 8192;

/**
 * True for a credential value a sidecar can send in a header: 1 to {@link MAX_CREDENTIAL_CHARS}
 * printable ASCII characters, no whitespace (a CR or LF would inject headers).
 */
export function isCredentialValue(value: unknown): value is string {
  return typeof value === "string" && /^[\x21-\x7e]{1,8192}$/.test(value);
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
      return "to use https:// (http:// is accepted for loopback hosts only)";
    }
    if (transport !== "ssh" && (url.username !== "" || url.password !== "")) {
      return "to carry no user name or password (put the secret in an environment variable and name it in token_ref)";
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
