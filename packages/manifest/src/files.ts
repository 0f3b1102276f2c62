/** Resolution and checks of the secret files a manifest names (identities, app keys). */
import { statSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import type { PathKey, RawIssue } from "./issues.ts";

/** Where relative and `~/` paths resolve. */
export interface PathBase {
  readonly baseDir: string;
  readonly homedir: string;
}

/** `~/x` → home, relative → the manifest's directory, absolute stays. */
export function resolvePath(path: string, base: PathBase): string {
  if (path === "~") return base.homedir;
  if (path.startsWith("~/")) return resolve(base.homedir, path.slice(2));
  return isAbsolute(path) ? resolve(path) : resolve(base.baseDir, path);
}

/**
 * Checks that a secret file exists, is a regular file and is not readable by group or
 * others. SECURITY: a world-readable key has already leaked to every local user.
 */
export function checkSecretFile(
  absolute: string,
  path: readonly PathKey[],
  what: string,
): RawIssue | undefined {
  let mode: number;
  try {
    const stat = statSync(absolute);
    if (!stat.isFile())
      return {
        code: "BTL_MANIFEST_FILE",
        path,
        message: `${what} ${absolute} is not a regular file`,
      };
    mode = stat.mode & 0o777;
  } catch (error) {
    const reason =
      (error as NodeJS.ErrnoException).code === "ENOENT" ? "does not exist" : "cannot be read";
    return { code: "BTL_MANIFEST_FILE", path, message: `${what} ${absolute} ${reason}` };
  }
  if ((mode & 0o077) !== 0) {
    const octal = mode.toString(8).padStart(4, "0");
    return {
      code: "BTL_MANIFEST_FILE_MODE",
      path,
      message: `${what} ${absolute} is readable by group or others (mode ${octal}); run: chmod 600 ${absolute}`,
    };
  }
  return undefined;
}
