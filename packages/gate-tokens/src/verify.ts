/** Checking a presented token against the stored digests. */
import { timingSafeEqual } from "node:crypto";
import { publicRecord, type StoredRecord, type TokenRecord } from "./format.ts";
import { digestToken, isWellFormed } from "./token.ts";

/** The outcome of verifying a token. */
export type VerifyResult =
  | { readonly ok: true; readonly record: TokenRecord }
  | { readonly ok: false; readonly reason: "malformed" | "unknown" | "expired" };

/** Records by digest. */
export type DigestIndex = ReadonlyMap<string, StoredRecord>;

/** Indexes records by digest (digests are unique: the parser refuses duplicates). */
export function indexRecords(records: readonly StoredRecord[]): DigestIndex {
  return new Map(records.map((r) => [r.digest, r]));
}

/**
 * Checks `token` against `index`. The caller has already refused malformed tokens (see
 * `isWellFormed`). An expiry at or before `now` is expired.
 */
export function verifyInIndex(index: DigestIndex, token: string, now: Date): VerifyResult {
  if (!isWellFormed(token)) return { ok: false, reason: "malformed" };
  const digest = digestToken(token);
  const record = index.get(digest);
  // SECURITY: the map finds a candidate; the decision is a constant-time compare of digests.
  if (record === undefined || !sameDigest(record.digest, digest)) {
    return { ok: false, reason: "unknown" };
  }
  if (record.expires !== null && Date.parse(record.expires) <= now.getTime()) {
    return { ok: false, reason: "expired" };
  }
  return { ok: true, record: publicRecord(record) };
}

function sameDigest(a: string, b: string): boolean {
  const left = Buffer.from(a, "utf8");
  const right = Buffer.from(b, "utf8");
  return left.length === right.length && timingSafeEqual(left, right);
}
