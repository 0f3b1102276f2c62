export type { RouteAllow } from "./allow.ts";
export type { ManifestErrorCode, ManifestIssue } from "./errors.ts";
export { codes, formatIssue, MANIFEST_ERRORS, ManifestError } from "./errors.ts";
export type { ParseOptions } from "./parse.ts";
export { loadManifest, MAX_MANIFEST_BYTES, parseManifest } from "./parse.ts";
export type { GitUrl } from "./policy.ts";
export {
  checkHttpUrl,
  HOP_BY_HOP_HEADERS,
  isCredentialHeader,
  isCredentialValue,
  isLoopbackHost,
  MAX_CREDENTIAL_CHARS,
  parseGitUrl,
} from "./policy.ts";
export type {
  GithubAppRoute,
  Route,
  RouteTokman,
  TokenRefRoute,
  TokenSlot,
} from "./routes.ts";
export { expandRoutes, resolveTokenValues, tokenSlots } from "./routes.ts";
export type {
  GithubAppTokenSpec,
  Manifest,
  RepoSpec,
  Role,
  RouteAuth,
  RouteSpec,
  TokenSpec,
} from "./schema.ts";
export { EXCLUSIVE_ROLES, ManifestSchema, ROLES } from "./schema.ts";
