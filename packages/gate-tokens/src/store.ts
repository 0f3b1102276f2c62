/** The token store: create, list, revoke and verify, every change under the file's lock. */
import { timingSafeEqual } from "node:crypto";
import { TokenStoreError } from "./errors.ts";
import {
  digestToken,
  isWellFormed,
  newId,
  newToken,
  PROJECT,
  publicRecord,
  type Scope,
  type StoredRecord,
  TASK,
  type TokenFile,
  type TokenRecord,
} from "./format.ts";
import { type LockOptions, readTokenFile, updateTokenFile } from "./io.ts";

/** Options of `createTokenStore`. */
export interface TokenStoreOptions extends LockOptions {
  readonly file: string;
  readonly now?: () => Date;
  readonly randomBytes?: (size: number) => Buffer;
}

/** Which tokens `revoke` removes. */
export type RevokeSelector =
  | { readonly id: string }
  | { readonly task: string; readonly project?: string }
  | { readonly project: string };

/** The outcome of `verify`. */
export type VerifyResult =
  | { readonly ok: true; readonly record: TokenRecord }
  | { readonly ok: false; readonly reason: "malformed" | "unknown" | "expired" };

/** The store API. */
export interface TokenStore {
  create(input: {
    project: string;
    task: string;
    scopes?: readonly Scope[];
    expiresInSeconds?: number;
  }): Promise<{ token: string; record: TokenRecord }>;
  list(filter?: { project?: string; task?: string }): Promise<readonly TokenRecord[]>;
  revoke(selector: RevokeSelector): Promise<readonly TokenRecord[]>;
  verify(token: string): Promise<VerifyResult>;
}

/**
 * Creates a store over one token file. Throws `TokenStoreError`: BTL_TOKENS_INVALID_INPUT,
 * BTL_TOKENS_FILE_MODE, BTL_TOKENS_CORRUPT, BTL_TOKENS_IO, BTL_TOKENS_LOCKED.
 */
export function createTokenStore(options: TokenStoreOptions): TokenStore {
  const now = options.now ?? (() => new Date());
  const file = options.file;

  return {
    async create(input) {
      const scopes = [...new Set(input.scopes ?? ["read", "write"])].sort() as Scope[];
      checkInput(input.project, input.task, scopes, input.expiresInSeconds);
      const token = newToken(options.randomBytes);
      const created = now();
      const expires =
        input.expiresInSeconds === undefined
          ? null
          : new Date(created.getTime() + input.expiresInSeconds * 1000).toISOString();
      const record: StoredRecord = {
        id: newId(options.randomBytes),
        digest: digestToken(token),
        project: input.project,
        task: input.task,
        scopes,
        created: created.toISOString(),
        expires,
      };
      await updateTokenFile(
        file,
        (current) => ({ records: [...current.records, record], result: undefined }),
        options,
      );
      return { token, record: publicRecord(record) };
    },

    async list(filter = {}) {
      const records = readTokenFile(file)?.contents.records ?? [];
      return records
        .filter(
          (r) =>
            (filter.project === undefined || r.project === filter.project) &&
            (filter.task === undefined || r.task === filter.task),
        )
        .map(publicRecord);
    },

    async revoke(selector) {
      const matches = selectorMatcher(selector);
      const removed = await updateTokenFile(
        file,
        (current: TokenFile) => {
          const gone = current.records.filter(matches);
          if (gone.length === 0) return undefined;
          return {
            records: current.records.filter((r) => !matches(r)),
            result: gone.map(publicRecord),
          };
        },
        options,
      );
      if (removed === undefined)
        throw new TokenStoreError("BTL_TOKENS_NOT_FOUND", "no token matched");
      return removed;
    },

    async verify(token) {
      const contents = readTokenFile(file)?.contents;
      if (contents === undefined)
        throw new TokenStoreError("BTL_TOKENS_MISSING", `${file} does not exist`);
      return verifyAgainst(contents.records, token, now());
    },
  };
}

/**
 * Checks `token` against `records`: malformed tokens are refused before any lookup; the digest
 * match is confirmed in constant time; an expiry at or before `now` is expired.
 */
export function verifyAgainst(
  records: readonly StoredRecord[],
  token: string,
  now: Date,
): VerifyResult {
  if (!isWellFormed(token)) return { ok: false, reason: "malformed" };
  const digest = Buffer.from(digestToken(token));
  const record = records.find(
    (r) => r.digest.length === digest.length && timingSafeEqual(Buffer.from(r.digest), digest),
  );
  if (record === undefined) return { ok: false, reason: "unknown" };
  if (record.expires !== null && Date.parse(record.expires) <= now.getTime())
    return { ok: false, reason: "expired" };
  return { ok: true, record: publicRecord(record) };
}

function selectorMatcher(selector: RevokeSelector): (r: StoredRecord) => boolean {
  if ("id" in selector) {
    if (!/^gt_[0-9a-f]{16}$/.test(selector.id))
      throw new TokenStoreError(
        "BTL_TOKENS_INVALID_INPUT",
        "Expected an id like gt_0123456789abcdef",
      );
    return (r) => r.id === selector.id;
  }
  if ("task" in selector) {
    if (!TASK.test(selector.task))
      throw new TokenStoreError("BTL_TOKENS_INVALID_INPUT", "Expected a task name");
    const project = selector.project;
    if (project !== undefined && !PROJECT.test(project))
      throw new TokenStoreError("BTL_TOKENS_INVALID_INPUT", "Expected a project slug");
    return (r) => r.task === selector.task && (project === undefined || r.project === project);
  }
  if (!PROJECT.test(selector.project))
    throw new TokenStoreError("BTL_TOKENS_INVALID_INPUT", "Expected a project slug");
  return (r) => r.project === selector.project;
}

function checkInput(
  project: string,
  task: string,
  scopes: readonly string[],
  expiresIn: number | undefined,
): void {
  const bad = (message: string) => new TokenStoreError("BTL_TOKENS_INVALID_INPUT", message);
  if (!PROJECT.test(project))
    throw bad("Expected the project to be a slug (a-z, 0-9, inner -, at most 63)");
  if (!TASK.test(task))
    throw bad(
      "Expected the task to be 1 to 128 of A-Z a-z 0-9 . _ : - (starting with a letter or digit)",
    );
  if (scopes.length === 0 || scopes.some((s) => s !== "read" && s !== "write"))
    throw bad("Expected scopes among read, write");
  if (
    expiresIn !== undefined &&
    !(Number.isInteger(expiresIn) && expiresIn > 0 && expiresIn <= 366 * 86_400)
  ) {
    throw bad("Expected the expiry to be a whole number of seconds from 1 to one year");
  }
}
