/**
 * `@bottle/manifest/policy`: the rules every sidecar shares with the manifest, in one place, so
 * that a manifest that validates never makes a sidecar refuse to start. Light on purpose: no
 * schema library and no YAML parser are loaded through this entry.
 */
export { CREDENTIAL_SHAPE, isCredentialValue, MAX_CREDENTIAL_CHARS } from "./credentials.ts";
export type { IssueLike, PathKey } from "./format-issues.ts";
export { dottedPath, formatIssues, issuePath } from "./format-issues.ts";
export {
  FORBIDDEN_CREDENTIAL_HEADERS,
  HEADER_NAME,
  HOP_BY_HOP_HEADERS,
  isCredentialHeader,
} from "./headers.ts";
export type { GitUrl, HttpUrlOptions } from "./urls.ts";
export { checkHttpUrl, isLoopbackHost, parseGitUrl } from "./urls.ts";
