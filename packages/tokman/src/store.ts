/**
 * Where minted tokens are kept between requests. The broker talks to the `TokenStore`
 * interface only, so a store shared by several replicas (Redis, PostgreSQL) can take the place
 * of these two: in memory (the default) and SQLite (`node:sqlite`), where tokens survive a
 * restart and are encrypted at rest with AES-256-GCM.
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { chmodSync, closeSync, openSync } from "node:fs";
import { DatabaseSync } from "node:sqlite";
import type { Permissions } from "./config.ts";
import { TokmanError } from "./errors.ts";

/** A cached token under its key (app, installation, repositories, permissions). */
export interface StoredToken {
  readonly key: string;
  readonly token: string;
  readonly expiresAt: Date;
  readonly permissions: Permissions;
}

/** What the broker needs of a store. Implementations must be safe to call concurrently. */
export interface TokenStore {
  get(key: string): StoredToken | undefined;
  set(entry: StoredToken): void;
  delete(key: string): void;
  /** The keys of every entry. */
  keys(): string[];
  /** Removes entries that expired before `now`. */
  prune(now: Date): void;
  close(): void;
}

/** A store in this process's memory. */
export function createMemoryStore(): TokenStore {
  const entries = new Map<string, StoredToken>();
  return {
    get: (key) => entries.get(key),
    set: (entry) => void entries.set(entry.key, entry),
    delete: (key) => void entries.delete(key),
    keys: () => [...entries.keys()],
    prune(now) {
      for (const [key, entry] of entries) if (entry.expiresAt <= now) entries.delete(key);
    },
    close: () => entries.clear(),
  };
}

/**
 * A SQLite store at `file` (created 0600). Each token is sealed with AES-256-GCM under `key`
 * (32 bytes), with the cache key as additional data so a row cannot be moved to another key.
 * Throws BTL_TOKMAN_STORE when the file cannot be opened or a row does not decrypt.
 */
export function createSqliteStore(file: string, key: Buffer): TokenStore {
  if (key.length !== 32)
    throw new TokmanError("BTL_TOKMAN_STORE", "the store key must be 32 bytes");
  let db: DatabaseSync;
  try {
    closeSync(openSync(file, "a", 0o600));
    chmodSync(file, 0o600);
    db = new DatabaseSync(file);
    db.exec(`PRAGMA journal_mode = WAL;
      CREATE TABLE IF NOT EXISTS tokens (
        key TEXT PRIMARY KEY,
        sealed BLOB NOT NULL,
        expires_at INTEGER NOT NULL,
        permissions TEXT NOT NULL
      );`);
  } catch (error) {
    throw new TokmanError(
      "BTL_TOKMAN_STORE",
      `cannot open the token store ${file}: ${(error as Error).message}`,
      { cause: error },
    );
  }
  const select = db.prepare("SELECT sealed, expires_at, permissions FROM tokens WHERE key = ?");
  const upsert = db.prepare(
    "INSERT INTO tokens (key, sealed, expires_at, permissions) VALUES (?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET sealed = excluded.sealed, expires_at = excluded.expires_at, permissions = excluded.permissions",
  );
  const remove = db.prepare("DELETE FROM tokens WHERE key = ?");
  const allKeys = db.prepare("SELECT key FROM tokens");
  const prune = db.prepare("DELETE FROM tokens WHERE expires_at <= ?");

  const seal = (entryKey: string, token: string): Buffer => {
    const iv = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", key, iv);
    cipher.setAAD(Buffer.from(entryKey));
    const body = Buffer.concat([cipher.update(token, "utf8"), cipher.final()]);
    return Buffer.concat([iv, cipher.getAuthTag(), body]);
  };
  const open = (entryKey: string, sealed: Uint8Array): string => {
    const data = Buffer.from(sealed);
    try {
      const decipher = createDecipheriv("aes-256-gcm", key, data.subarray(0, 12));
      decipher.setAAD(Buffer.from(entryKey));
      decipher.setAuthTag(data.subarray(12, 28));
      return Buffer.concat([decipher.update(data.subarray(28)), decipher.final()]).toString("utf8");
    } catch (error) {
      throw new TokmanError(
        "BTL_TOKMAN_STORE",
        "a stored token does not decrypt: wrong store key or a corrupt row",
        { cause: error },
      );
    }
  };

  return {
    get(entryKey) {
      const row = select.get(entryKey) as
        | { sealed: Uint8Array; expires_at: number; permissions: string }
        | undefined;
      if (row === undefined) return undefined;
      return {
        key: entryKey,
        token: open(entryKey, row.sealed),
        expiresAt: new Date(row.expires_at),
        permissions: JSON.parse(row.permissions) as Permissions,
      };
    },
    set(entry) {
      upsert.run(
        entry.key,
        seal(entry.key, entry.token),
        entry.expiresAt.getTime(),
        JSON.stringify(entry.permissions),
      );
    },
    delete(entryKey) {
      remove.run(entryKey);
    },
    keys() {
      return (allKeys.all() as Array<{ key: string }>).map((row) => row.key);
    },
    prune(now) {
      prune.run(now.getTime());
    },
    close() {
      db.close();
    },
  };
}
