/** The token store: create, list, revoke and verify; every change under the file's lock. */
import { randomBytes as cryptoRandomBytes } from "node:crypto";
import { TokenStoreError } from "./errors.ts";
import { publicRecord, type Scope, type StoredRecord, type TokenRecord } from "./format.ts";
import { readTokenFile, updateTokenFile } from "./io.ts";
import { checkCreateInput, checkStoreOptions, selectorMatcher } from "./options.ts";
import { digestToken, isWellFormed, newId, newToken, type RandomBytes } from "./token.ts";
import { indexRecords, type VerifyResult, verifyInIndex } from "./verify.ts";

/** Options of `createTokenStore`. */
export interface TokenStoreOptions {
  /** The token file; its directory is created 0700 when missing. */
  readonly file: string;
  /** The clock (default: the system clock). */
  readonly now?: () => Date;
  /** Randomness for tokens and ids (default: `crypto.randomBytes`). */
  readonly randomBytes?: (size: number) => Buffer;
  /** A crashed writer's lock is taken over once it is this old (ms, default 10 000, min 2 000). */
  readonly staleMs?: number;
  /** Lock attempts, 10 to 200 ms apart (default: enough to outwait two stale periods). */
  readonly retries?: number;
}

/** What `create` takes. `scopes` defaults to `["read", "write"]`; no expiry by default. */
export interface CreateTokenInput {
  readonly project: string;
  readonly task: string;
  readonly scopes?: readonly Scope[];
  readonly expiresInSeconds?: number;
}

/** Which tokens `revoke` removes: one id, a task's (within a project), or a project's. */
export type RevokeSelector =
  | { readonly id: string }
  | { readonly task: string; readonly project?: string }
  | { readonly project: string };

/** Filters of `list`; both optional, both must match. */
export interface ListFilter {
  readonly project?: string;
  readonly task?: string;
}

/** A token store over one file. */
export interface TokenStore {
  /** Issues a token; the token is returned once and stored only as a digest. */
  create(input: CreateTokenInput): Promise<{ token: string; record: TokenRecord }>;
  /** The records (never a token or digest), in file order. */
  list(filter?: ListFilter): Promise<readonly TokenRecord[]>;
  /** Removes the matching records and returns them; BTL_TOKENS_NOT_FOUND when none matched. */
  revoke(selector: RevokeSelector): Promise<readonly TokenRecord[]>;
  /** Checks a token; a malformed one is refused without reading the file. */
  verify(token: string): Promise<VerifyResult>;
}

/**
 * Creates a store over one token file. Its methods throw `TokenStoreError` with
 * BTL_TOKENS_INVALID_INPUT, BTL_TOKENS_FILE_MODE, BTL_TOKENS_CORRUPT, BTL_TOKENS_IO,
 * BTL_TOKENS_LOCKED; `revoke` also BTL_TOKENS_NOT_FOUND, `verify` also BTL_TOKENS_MISSING.
 */
export function createTokenStore(options: TokenStoreOptions): TokenStore {
  const file = checkStoreOptions(options);
  const now = options.now ?? (() => new Date());
  const random: RandomBytes = options.randomBytes ?? cryptoRandomBytes;
  const lock = {
    ...(options.staleMs !== undefined ? { staleMs: options.staleMs } : {}),
    ...(options.retries !== undefined ? { retries: options.retries } : {}),
  };

  return Object.freeze({
    async create(input: CreateTokenInput) {
      const { project, task, scopes, expiresInSeconds } = checkCreateInput(input);
      const token = newToken(random);
      const created = now();
      const expires =
        expiresInSeconds === undefined
          ? null
          : new Date(created.getTime() + expiresInSeconds * 1000).toISOString();
      const record = await updateTokenFile(
        file,
        (current) => {
          const digest = digestToken(token);
          // Only an injected generator can repeat a token; a second record would corrupt the file.
          if (current.records.some((r) => r.digest === digest)) {
            throw new TokenStoreError("BTL_INTERNAL", "the new token is already in the file");
          }
          const taken = new Set(current.records.map((r) => r.id));
          let id = newId(random);
          // 64 random bits collide about never; a stuck injected generator must not loop.
          for (let i = 0; taken.has(id) && i < 8; i++) id = newId(random);
          if (taken.has(id)) {
            throw new TokenStoreError("BTL_INTERNAL", "could not draw an unused token id");
          }
          const stored: StoredRecord = {
            id,
            digest,
            project,
            task,
            scopes,
            created: created.toISOString(),
            expires,
          };
          return { records: [...current.records, stored], result: stored };
        },
        lock,
      );
      return { token, record: publicRecord(record) };
    },

    async list(filter: ListFilter = {}) {
      const records = readTokenFile(file)?.records ?? [];
      return records
        .filter(
          (r) =>
            (filter.project === undefined || r.project === filter.project) &&
            (filter.task === undefined || r.task === filter.task),
        )
        .map(publicRecord);
    },

    async revoke(selector: RevokeSelector) {
      const matches = selectorMatcher(selector);
      return updateTokenFile(
        file,
        (current) => {
          const removed = current.records.filter(matches);
          // Throwing here writes nothing: a legacy file stays as it is.
          if (removed.length === 0) {
            throw new TokenStoreError("BTL_TOKENS_NOT_FOUND", "no token matched");
          }
          return {
            records: current.records.filter((r) => !matches(r)),
            result: Object.freeze(removed.map(publicRecord)),
          };
        },
        lock,
      );
    },

    async verify(token: string): Promise<VerifyResult> {
      if (typeof token !== "string" || !isWellFormed(token)) {
        return { ok: false, reason: "malformed" };
      }
      const contents = readTokenFile(file);
      if (contents === undefined) {
        throw new TokenStoreError("BTL_TOKENS_MISSING", `${file} does not exist`);
      }
      return verifyInIndex(indexRecords(contents.records), token, now());
    },
  });
}
