/** Reading and writing the token file safely: mode checks, lock, atomic write, directory fsync. */
import {
  closeSync,
  fstatSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  statSync,
} from "node:fs";
import { dirname } from "node:path";
import lockfile from "proper-lockfile";
import writeFileAtomic from "write-file-atomic";
import { TokenStoreError } from "./errors.ts";
import { parseTokenFile, serializeTokenFile, type TokenFile } from "./format.ts";

/** File identity used to notice a change: mtime, size, inode, and mode (a chmod must count). */
export interface FileStamp {
  readonly mtimeMs: number;
  readonly size: number;
  readonly ino: number;
  readonly mode: number;
}

/**
 * Reads and parses the token file, or `undefined` when it does not exist. SECURITY: a file
 * readable by group or others, or in a directory writable by them, is refused.
 */
export function readTokenFile(file: string): { contents: TokenFile; stamp: FileStamp } | undefined {
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new TokenStoreError("BTL_TOKENS_IO", `cannot open ${file}`, { cause: error });
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new TokenStoreError("BTL_TOKENS_IO", `${file} is not a regular file`);
    checkModes(file, stat.mode);
    const text = readFileSync(fd, "utf8");
    return {
      contents: parseTokenFile(text, file, stat.mtime),
      stamp: { mtimeMs: stat.mtimeMs, size: stat.size, ino: stat.ino, mode: stat.mode },
    };
  } finally {
    closeSync(fd);
  }
}

function checkModes(file: string, mode: number): void {
  if ((mode & 0o077) !== 0) {
    const octal = (mode & 0o777).toString(8).padStart(4, "0");
    throw new TokenStoreError(
      "BTL_TOKENS_FILE_MODE",
      `${file} is readable by group or others (mode ${octal}); run chmod 600 ${file}`,
    );
  }
  const dirMode = statSync(dirname(file)).mode;
  if ((dirMode & 0o022) !== 0) {
    throw new TokenStoreError(
      "BTL_TOKENS_FILE_MODE",
      `the directory of ${file} is writable by group or others; run chmod 700 ${dirname(file)}`,
    );
  }
}

/** Lock options: a crashed writer's lock goes stale after `staleMs`. */
export interface LockOptions {
  readonly staleMs?: number;
  readonly retries?: number;
}

/**
 * Runs `change` under the file's lock: read → change → atomic write (mode 0600, fsync) →
 * directory fsync. The directory is created 0700 when missing. Nothing is written when
 * `change` returns `undefined` or throws.
 */
export async function updateTokenFile<T>(
  file: string,
  change: (current: TokenFile) => { records: TokenFile["records"]; result: T } | undefined,
  options: LockOptions = {},
): Promise<T | undefined> {
  const dir = dirname(file);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw new TokenStoreError("BTL_TOKENS_IO", `cannot create ${dir}`, { cause: error });
  }
  let release: () => Promise<void>;
  try {
    release = await lockfile.lock(file, {
      realpath: false,
      lockfilePath: `${file}.lock`,
      stale: options.staleMs ?? 10_000,
      update: Math.max(1000, Math.floor((options.staleMs ?? 10_000) / 2)),
      retries: { retries: options.retries ?? 100, factor: 1.2, minTimeout: 10, maxTimeout: 200 },
      onCompromised: () => {}, // the write below is atomic either way
    });
  } catch (error) {
    throw new TokenStoreError("BTL_TOKENS_LOCKED", `could not lock ${file}`, { cause: error });
  }
  try {
    const current = readTokenFile(file)?.contents ?? { records: [], legacy: false };
    const next = change(current);
    if (next === undefined) return undefined;
    try {
      await writeFileAtomic(file, serializeTokenFile(next.records), { mode: 0o600, fsync: true });
      fsyncDirectory(dir);
    } catch (error) {
      throw new TokenStoreError("BTL_TOKENS_IO", `cannot write ${file}`, { cause: error });
    }
    return next.result;
  } finally {
    await release().catch(() => {});
  }
}

/** fsync the directory so the rename itself survives a crash. */
function fsyncDirectory(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
