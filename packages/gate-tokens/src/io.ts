/**
 * Reading and changing the token file safely: mode checks on every read, and every change as
 * lock → read → validate → change → atomic write (0600, fsync) → directory fsync → unlock.
 */
import {
  chmodSync,
  closeSync,
  fstatSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  realpathSync,
  statSync,
} from "node:fs";
import { dirname } from "node:path";
import lockfile from "proper-lockfile";
import writeFileAtomic from "write-file-atomic";
import { TokenStoreError } from "./errors.ts";
import { parseTokenFile, type StoredRecord, serializeTokenFile, type TokenFile } from "./format.ts";

/** Larger files are refused before parsing (a token record is about 250 bytes). */
const MAX_FILE_BYTES = 16 * 1024 * 1024;
/** proper-lockfile refuses a stale time under 2 s. */
export const MIN_STALE_MS = 2_000;
export const DEFAULT_STALE_MS = 10_000;

const octal = (mode: number) => (mode & 0o777).toString(8).padStart(4, "0");

/**
 * SECURITY: the directory is 0700. Group or others that can write it can swap the file (and the
 * lock); that can search or list it see the lock, the temporary files and when tokens change.
 * Any bit of 0o077 is refused, like a file they can read.
 */
function checkDirectory(dir: string): void {
  let mode: number;
  try {
    mode = statSync(dir).mode;
  } catch (error) {
    throw new TokenStoreError("BTL_TOKENS_IO", `cannot stat ${dir}`, { cause: error });
  }
  if ((mode & 0o077) !== 0) {
    throw new TokenStoreError(
      "BTL_TOKENS_FILE_MODE",
      `${dir} is open to group or others (mode ${octal(mode)}); run chmod 700 ${dir}`,
    );
  }
}

/**
 * Reads and parses the token file, or returns `undefined` when it does not exist. Throws
 * BTL_TOKENS_FILE_MODE (the file readable by group or others, or its directory not 0700),
 * BTL_TOKENS_CORRUPT, BTL_TOKENS_IO.
 */
export function readTokenFile(file: string): TokenFile | undefined {
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new TokenStoreError("BTL_TOKENS_IO", `cannot open ${file}`, { cause: error });
  }
  try {
    // fstat the descriptor we read, so the mode checked is the mode of the bytes parsed.
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new TokenStoreError("BTL_TOKENS_IO", `${file} is not a file`);
    if ((stat.mode & 0o077) !== 0) {
      throw new TokenStoreError(
        "BTL_TOKENS_FILE_MODE",
        `${file} is readable by group or others (mode ${octal(stat.mode)}); run chmod 600 ${file}`,
      );
    }
    checkDirectory(dirname(file));
    if (stat.size > MAX_FILE_BYTES) {
      throw new TokenStoreError("BTL_TOKENS_CORRUPT", `${file} is larger than 16 MiB`);
    }
    let source: string;
    try {
      source = readFileSync(fd, "utf8");
    } catch (error) {
      throw new TokenStoreError("BTL_TOKENS_IO", `cannot read ${file}`, { cause: error });
    }
    return parseTokenFile(source, file, stat.mtime);
  } finally {
    closeSync(fd);
  }
}

/** Lock tuning. A crashed writer's lock is taken over once it is `staleMs` old. */
export interface LockOptions {
  readonly staleMs?: number;
  readonly retries?: number;
}

/** A change: the new records and a result. It throws to write nothing. */
export type Change<T> = (current: TokenFile) => { records: readonly StoredRecord[]; result: T };

/**
 * Runs `change` under the file's lock and writes its records atomically. The directory is
 * created 0700 when missing. Nothing is written when reading fails or `change` throws.
 * Throws BTL_TOKENS_FILE_MODE, BTL_TOKENS_CORRUPT, BTL_TOKENS_IO, BTL_TOKENS_LOCKED, and
 * whatever `change` throws.
 */
export async function updateTokenFile<T>(
  file: string,
  change: Change<T>,
  options: LockOptions = {},
): Promise<T> {
  const dir = dirname(file);
  try {
    // The umask can only narrow 0700; chmod makes a directory created here exactly 0700.
    if (mkdirSync(dir, { recursive: true, mode: 0o700 }) !== undefined) chmodSync(dir, 0o700);
  } catch (error) {
    throw new TokenStoreError("BTL_TOKENS_IO", `cannot create ${dir}`, { cause: error });
  }
  checkDirectory(dir);
  const stale = options.staleMs ?? DEFAULT_STALE_MS;
  let compromised: Error | undefined;
  let release: () => Promise<void>;
  try {
    // `realpath: false` and an explicit lock path: the token file need not exist yet.
    release = await lockfile.lock(file, {
      realpath: false,
      lockfilePath: `${file}.lock`,
      stale,
      update: Math.floor(stale / 2),
      // Enough attempts (10 ms growing to 200 ms apart) to outwait two stale periods.
      retries: {
        retries: options.retries ?? Math.ceil((2 * stale) / 200) + 20,
        factor: 1.2,
        minTimeout: 10,
        maxTimeout: 200,
        randomize: true,
      },
      // proper-lockfile's default throws from a timer and would crash the host process.
      onCompromised: (error) => {
        compromised = error;
      },
    });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code === "ELOCKED" ? "LOCKED" : "IO";
    throw new TokenStoreError(`BTL_TOKENS_${code}`, `cannot lock ${file}`, { cause: error });
  }
  try {
    const current = readTokenFile(file) ?? { records: [], legacy: false };
    const next = change(current);
    // The lock went stale under us (a stalled event loop): another writer may be in; back off.
    if (compromised !== undefined) {
      throw new TokenStoreError("BTL_TOKENS_LOCKED", `lost the lock on ${file}`, {
        cause: compromised,
      });
    }
    try {
      await writeFileAtomic(file, serializeTokenFile(next.records), { mode: 0o600, fsync: true });
      fsyncDirectory(file);
    } catch (error) {
      throw new TokenStoreError("BTL_TOKENS_IO", `cannot write ${file}`, { cause: error });
    }
    return next.result;
  } finally {
    await release().catch(() => {});
  }
}

/** fsync the directory of the (real) file so that the rename itself survives a crash. */
function fsyncDirectory(file: string): void {
  const fd = openSync(dirname(realpathSync(file)), "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
