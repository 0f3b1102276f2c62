/** What a token is scoped to: permission levels and names, shared by tokman and its client. */

export const LEVELS = ["read", "write", "admin"] as const;
export type Level = (typeof LEVELS)[number];
/** GitHub App permissions: name → level (e.g. `{ contents: "write", metadata: "read" }`). */
export type Permissions = Readonly<Record<string, Level>>;

/** A GitHub App permission name (`contents`, `pull_requests`). */
export const PERMISSION = /^[a-z][a-z_]{0,63}$/;
/** A GitHub owner or repository name, as tokman's API takes it. */
export const REPOSITORY_PART = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;

/** `contents:read,metadata:read`, sorted by name: tokman's `permissions` query parameter. */
export function permissionsQuery(permissions: Permissions): string {
  return Object.entries(permissions)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, level]) => `${name}:${level}`)
    .join(",");
}
