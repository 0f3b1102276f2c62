/**
 * The verifier servers use: synchronous, one `stat` per call, the file re-read only when its
 * mtime, size, inode or mode changed. While the file is missing, unreadable, too open or corrupt,
 * every token is denied (`unavailable`) and `state()` says why.
 */
import { statSync } from "node:fs";
import { isBottleError } from "@bottle/errors";
import { fingerprint, type Logger, silentLogger } from "@bottle/log";
import type { StoredRecord } from "./format.ts";
import { type FileStamp, readTokenFile } from "./io.ts";
import { type VerifyResult, verifyAgainst } from "./store.ts";

/** The verifier's view of the file. */
export type VerifierState =
  | { readonly ok: true; readonly tokens: number }
  | { readonly ok: false; readonly code: string; readonly message: string };

/** A reloading verifier. */
export interface TokenVerifier {
  verify(token: string): VerifyResult | { readonly ok: false; readonly reason: "unavailable" };
  state(): VerifierState;
}

/** Creates a verifier over `file`. Never throws: problems become the `unavailable` state. */
export function createTokenVerifier(options: {
  file: string;
  now?: () => Date;
  logger?: Logger;
}): TokenVerifier {
  const log = options.logger ?? silentLogger;
  const now = options.now ?? (() => new Date());
  let stamp: FileStamp | undefined;
  let records: readonly StoredRecord[] = [];
  let state: VerifierState = { ok: false, code: "BTL_TOKENS_MISSING", message: "not read yet" };

  function refresh(): void {
    let current: FileStamp | undefined;
    try {
      const s = statSync(options.file);
      current = { mtimeMs: s.mtimeMs, size: s.size, ino: s.ino, mode: s.mode };
    } catch {
      current = undefined;
    }
    if (
      current &&
      stamp &&
      current.mtimeMs === stamp.mtimeMs &&
      current.size === stamp.size &&
      current.ino === stamp.ino &&
      current.mode === stamp.mode
    )
      return;
    const before = state;
    try {
      const read = readTokenFile(options.file);
      if (read === undefined) {
        stamp = undefined;
        records = [];
        state = {
          ok: false,
          code: "BTL_TOKENS_MISSING",
          message: `${options.file} does not exist`,
        };
      } else {
        stamp = read.stamp;
        records = read.contents.records;
        state = { ok: true, tokens: records.length };
      }
    } catch (error) {
      stamp = undefined;
      records = [];
      state = isBottleError(error)
        ? { ok: false, code: error.code, message: error.message }
        : { ok: false, code: "BTL_TOKENS_IO", message: `cannot read ${options.file}` };
    }
    if (state.ok) log.info({ tokens: state.tokens }, "token file loaded");
    else if (before.ok || before.code !== state.code)
      log.warn(
        { code: state.code, reason: state.message },
        "token file unavailable: denying every token",
      );
  }

  return {
    verify(token) {
      refresh();
      if (!state.ok) return { ok: false, reason: "unavailable" };
      const result = verifyAgainst(records, token, now());
      if (!result.ok && result.reason !== "malformed")
        log.debug({ token: fingerprint(token), reason: result.reason }, "token refused");
      return result;
    },
    state() {
      refresh();
      return state;
    },
  };
}
