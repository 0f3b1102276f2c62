/** Tokens themselves: their shape, how a new one is drawn, and the digest the file stores. */
import { createHash, randomBytes as cryptoRandomBytes } from "node:crypto";
import { TokenStoreError } from "./errors.ts";

/** Every token starts with this, so secret scanners (bottle's own included) recognise one. */
export const TOKEN_PREFIX = "bottle_gt_";

/** Random bytes per token: 24 bytes = 192 bits, 32 base64url characters. */
const TOKEN_BYTES = 24;
/** Random bytes per record id: 8 bytes = 16 hex digits. */
const ID_BYTES = 8;

/** A token as `create` issues it. */
const ISSUED = /^bottle_gt_[A-Za-z0-9_-]{32}$/;
/**
 * A token of the legacy plain format, which predates the prefix: 16 to 512 token68-like
 * characters. Kept so that a legacy file's tokens still verify after migration.
 */
const LEGACY = /^[A-Za-z0-9._~+/=-]{16,512}$/;

/** Where randomness comes from (`crypto.randomBytes` unless a test injects its own). */
export type RandomBytes = (size: number) => Buffer;

/**
 * True when `token` could be a token at all, decided from its text alone (no file access):
 * with the prefix it must be exactly what `create` issues; without it, a legacy token.
 */
export function isWellFormed(token: string): boolean {
  return token.startsWith(TOKEN_PREFIX) ? ISSUED.test(token) : LEGACY.test(token);
}

/** `sha256:<64 hex>` of a token: the only form in which the file holds it. */
export function digestToken(token: string): string {
  return `sha256:${createHash("sha256").update(token, "utf8").digest("hex")}`;
}

function draw(random: RandomBytes, size: number): Buffer {
  const bytes = random(size);
  if (!Buffer.isBuffer(bytes) || bytes.length !== size) {
    throw new TokenStoreError(
      "BTL_TOKENS_INVALID_INPUT",
      `Expected randomBytes(${size}) to return ${size} bytes`,
    );
  }
  return bytes;
}

/** A new token: the prefix and 24 random bytes, base64url. Throws BTL_TOKENS_INVALID_INPUT. */
export function newToken(random: RandomBytes = cryptoRandomBytes): string {
  return TOKEN_PREFIX + draw(random, TOKEN_BYTES).toString("base64url");
}

/** A new record id, drawn independently of the token. Throws BTL_TOKENS_INVALID_INPUT. */
export function newId(random: RandomBytes = cryptoRandomBytes): string {
  return `gt_${draw(random, ID_BYTES).toString("hex")}`;
}
