/**
 * The verifier servers use: synchronous, one `statSync` per call, the file re-read only when
 * its inode, size, mtime, ctime or mode changed. While the file is missing, unreadable, too
 * open or corrupt, every token is denied (`unavailable`) and `state()` says why.
 */
import { type BigIntStats, statSync } from "node:fs";
import { isBottleError } from "@bottle/errors";
import { fingerprint, type Logger, silentLogger } from "@bottle/log";
import { readTokenFile } from "./io.ts";
import { checkVerifierOptions } from "./options.ts";
import { isWellFormed } from "./token.ts";
import { type DigestIndex, indexRecords, type VerifyResult, verifyInIndex } from "./verify.ts";

/** Options of `createTokenVerifier`. */
export interface TokenVerifierOptions {
  /** The token file, as `createTokenStore` writes it. */
  readonly file: string;
  /** The clock (default: the system clock). */
  readonly now?: () => Date;
  /** Where load and denial records go (default: `silentLogger`). Never given a token. */
  readonly logger?: Logger;
}

/** The verifier's view of the file: loaded (with a count), or why not. */
export type VerifierState =
  | { readonly ok: true; readonly tokens: number }
  | { readonly ok: false; readonly code: string; readonly message: string };

/** The outcome of `TokenVerifier.verify`. */
export type VerifierResult = VerifyResult | { readonly ok: false; readonly reason: "unavailable" };

/** A reloading, synchronous verifier. */
export interface TokenVerifier {
  verify(token: string): VerifierResult;
  state(): VerifierState;
}

/** What identifies one version of the file; `missing` when there is none. */
type Stamp = string;

function stampOf(stat: BigIntStats | undefined): Stamp {
  if (stat === undefined) return "missing";
  // ctime moves on every rename over the file and every chmod, even when mtime is restored.
  return [stat.dev, stat.ino, stat.size, stat.mtimeNs, stat.ctimeNs, stat.mode].join(":");
}

/**
 * Creates a verifier over `file`. Throws BTL_TOKENS_INVALID_INPUT for bad options; after that
 * it never throws: file problems become the `unavailable` state.
 */
export function createTokenVerifier(options: TokenVerifierOptions): TokenVerifier {
  const file = checkVerifierOptions(options);
  const log = options.logger ?? silentLogger;
  const now = options.now ?? (() => new Date());
  let seen: Stamp | undefined;
  let index: DigestIndex = new Map();
  let state: VerifierState = { ok: false, code: "BTL_TOKENS_MISSING", message: "not read yet" };

  function refresh(): void {
    let stamp: Stamp;
    try {
      stamp = stampOf(statSync(file, { bigint: true, throwIfNoEntry: false }));
    } catch (error) {
      stamp = `error:${(error as NodeJS.ErrnoException).code ?? "unknown"}`;
    }
    // Unchanged, whatever the outcome last time: a corrupt file is not re-parsed per request.
    if (stamp === seen) return;
    seen = stamp;
    const before = state;
    try {
      const contents = readTokenFile(file);
      if (contents === undefined) {
        index = new Map();
        state = { ok: false, code: "BTL_TOKENS_MISSING", message: `${file} does not exist` };
      } else {
        index = indexRecords(contents.records);
        state = { ok: true, tokens: index.size };
      }
    } catch (error) {
      index = new Map();
      state = isBottleError(error)
        ? { ok: false, code: error.code, message: error.message }
        : { ok: false, code: "BTL_TOKENS_IO", message: `cannot read ${file}` };
    }
    if (state.ok) log.info({ file, tokens: state.tokens }, "token file loaded");
    else if (before.ok || before.code !== state.code || before.message !== state.message) {
      log.warn({ file, code: state.code, reason: state.message }, "token file unavailable");
    }
  }

  return Object.freeze({
    verify(token: string): VerifierResult {
      // Decided from the text alone: garbage never costs a stat or a hash.
      if (typeof token !== "string" || !isWellFormed(token)) {
        return { ok: false, reason: "malformed" };
      }
      refresh();
      if (!state.ok) return { ok: false, reason: "unavailable" };
      const result = verifyInIndex(index, token, now());
      // SECURITY: a fingerprint, never the token.
      if (!result.ok)
        log.debug({ fingerprint: fingerprint(token), reason: result.reason }, "token refused");
      return result;
    },
    state(): VerifierState {
      refresh();
      return state;
    },
  });
}
