/**
 * The gate's private files: written atomically (a temp file beside, fsync, rename), and read
 * only when group and others can neither read nor write them. SECURITY: 0600 by default; a file
 * or directory that group or others can get at is refused, never used.
 */
import { randomBytes } from "node:crypto";
import {
  chmodSync,
  closeSync,
  fstatSync,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  writeSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { GitGateError } from "./errors.ts";

const octal = (mode: number) => (mode & 0o777).toString(8).padStart(4, "0");

/** Writes `content` to a temp file beside `path` with `mode`, fsyncs, renames over `path`. */
export function writeFileSafely(path: string, content: string, mode = 0o600): void {
  const temp = join(dirname(path), `.${randomBytes(6).toString("hex")}.tmp`);
  const fd = openSync(temp, "wx", mode);
  try {
    writeSync(fd, content);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  chmodSync(temp, mode);
  renameSync(temp, path);
}

/**
 * Reads a private file: refuses (BTL_GITGATE_STATE, or `code`) one that group or others can
 * read or write, or whose directory they can write.
 */
export function readPrivateFile(
  path: string,
  what: string,
  code: "BTL_GITGATE_STATE" | "BTL_GITGATE_CREDENTIAL" = "BTL_GITGATE_STATE",
): string {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (error) {
    throw new GitGateError(code, `cannot read ${what} (${path}): ${(error as Error).message}`, {
      cause: error,
    });
  }
  try {
    const mode = fstatSync(fd).mode;
    if ((mode & 0o077) !== 0) {
      throw new GitGateError(
        code,
        `${what} ${path} is accessible to group or others (mode ${octal(mode)}); run chmod 600 ${path}`,
      );
    }
    const dirMode = statSync(dirname(path)).mode;
    if ((dirMode & 0o022) !== 0) {
      throw new GitGateError(
        code,
        `the directory of ${what} is writable by group or others (mode ${octal(dirMode)})`,
      );
    }
    return readFileSync(fd, "utf8");
  } finally {
    closeSync(fd);
  }
}
