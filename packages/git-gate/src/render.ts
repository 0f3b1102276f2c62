/**
 * Rendering of values into gitconfig files, shell scripts and known_hosts lines. SECURITY: every
 * value is checked (no newline, NUL or other control character) before it is quoted, so no value
 * can end a line, a quoted string or a command and start another.
 */
import { GitGateError } from "./errors.ts";

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** Throws `GitGateError` BTL_GITGATE_UNSAFE_VALUE when `value` is empty or holds a control character. */
export function assertRenderable(value: string, what: string): string {
  if (value === "" || CONTROL.test(value)) {
    throw new GitGateError(
      "BTL_GITGATE_UNSAFE_VALUE",
      `Expected ${what} to be non-empty without newlines, NUL or control characters`,
    );
  }
  return value;
}

/** A POSIX shell word: single quotes, each `'` written as `'\''`. */
export function shellQuote(value: string, what: string): string {
  return `'${assertRenderable(value, what).replaceAll("'", `'\\''`)}'`;
}

/**
 * A gitconfig value or subsection name in double quotes: `\` and `"` escaped (git-config(1),
 * "Syntax"). Newlines are refused rather than escaped.
 */
export function gitConfigQuote(value: string, what: string): string {
  return `"${assertRenderable(value, what).replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
}

/** One gitconfig section with quoted subsection and values: `[url "…"]\n\tinsteadOf = "…"`. */
export function renderConfigSection(
  section: string,
  subsection: string | undefined,
  entries: ReadonlyArray<readonly [key: string, value: string]>,
): string {
  const head =
    subsection === undefined
      ? `[${section}]`
      : `[${section} ${gitConfigQuote(subsection, `${section} subsection`)}]`;
  const body = entries.map(([key, value]) => `\t${key} = ${gitConfigQuote(value, key)}`);
  return [head, ...body].join("\n");
}

const KEY_TYPE =
  /^(?:ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(?:256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com)$/;
const KEY_BLOB = /^[A-Za-z0-9+/]+={0,3}$/;
const HOST = /^[A-Za-z0-9.:-]+$/;

/**
 * A known_hosts line for `host[:port]` pinning `hostKey` (`type base64 [comment]`): the comment
 * is dropped, a non-22 port is written `[host]:port` (sshd(8), "SSH_KNOWN_HOSTS FILE FORMAT").
 * Throws BTL_GITGATE_NO_HOST_KEY when the key is not a public key line.
 */
export function knownHostsLine(host: string, port: number | undefined, hostKey: string): string {
  const [type = "", blob = ""] = hostKey.trim().split(/\s+/);
  if (!KEY_TYPE.test(type) || !KEY_BLOB.test(blob)) {
    throw new GitGateError(
      "BTL_GITGATE_NO_HOST_KEY",
      "Expected the pinned host key to be an OpenSSH public key line (`ssh-ed25519 AAAA…`)",
    );
  }
  const bare = host.replace(/^\[(.*)\]$/, "$1");
  if (!HOST.test(bare)) {
    throw new GitGateError(
      "BTL_GITGATE_UNSAFE_VALUE",
      "Expected the upstream host to be a plain host name",
    );
  }
  const name = port === undefined || port === 22 ? bare : `[${bare}]:${port}`;
  return `${name} ${type} ${blob}`;
}
