/**
 * The token file: version 1 stores SHA-256 digests only. The older plain format
 * `{"<token>": {"project": …, "task": …}}` is read too and migrated on the next write.
 */
import { createHash, randomBytes as cryptoRandomBytes } from "node:crypto";
import * as v from "valibot";
import { TokenStoreError } from "./errors.ts";

/** Every token starts with this, so secret scanners can recognise one. */
export const TOKEN_PREFIX = "bottle_gt_";
/** What a token may do: `read` fetches, `write` pushes; they are independent. */
export type Scope = "read" | "write";

/** A token as `list` shows it: never the token or its digest. */
export interface TokenRecord {
  readonly id: string;
  readonly project: string;
  readonly task: string;
  readonly scopes: readonly Scope[];
  readonly created: string;
  readonly expires: string | null;
}

/** A record as stored: with the digest. */
export interface StoredRecord extends TokenRecord {
  readonly digest: string;
}

export const PROJECT = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
export const TASK = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const DIGEST = /^sha256:[0-9a-f]{64}$/;
const ID = /^gt_[0-9a-f]{16}$/;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?Z$/;
/** Legacy tokens predate the prefix: any printable ASCII without spaces, 8 to 512 characters. */
const ANY_TOKEN = /^[\x21-\x7e]{8,512}$/;

const RecordSchema = v.strictObject({
  id: v.pipe(v.string(), v.regex(ID)),
  digest: v.pipe(v.string(), v.regex(DIGEST)),
  project: v.pipe(v.string(), v.regex(PROJECT)),
  task: v.pipe(v.string(), v.regex(TASK)),
  scopes: v.pipe(v.array(v.picklist(["read", "write"])), v.minLength(1)),
  created: v.pipe(v.string(), v.regex(ISO)),
  expires: v.nullable(v.pipe(v.string(), v.regex(ISO))),
});
const FileSchema = v.strictObject({ version: v.literal(1), tokens: v.array(RecordSchema) });
const LegacyEntry = v.object({
  project: v.pipe(v.string(), v.regex(PROJECT)),
  task: v.pipe(v.string(), v.regex(TASK)),
});

/** `sha256:<hex>` of a token. */
export function digestToken(token: string): string {
  return `sha256:${createHash("sha256").update(token, "utf8").digest("hex")}`;
}

/** A new token: the prefix and 24 random bytes (192 bits), base64url. */
export function newToken(random: (size: number) => Buffer = cryptoRandomBytes): string {
  return TOKEN_PREFIX + random(24).toString("base64url");
}

/** A new random record id. */
export function newId(random: (size: number) => Buffer = cryptoRandomBytes): string {
  return `gt_${random(8).toString("hex")}`;
}

/** True when `token` could be a token at all (checked before any lookup). */
export function isWellFormed(token: string): boolean {
  return ANY_TOKEN.test(token);
}

/** The parsed file: its records, and whether it was in the legacy plain format. */
export interface TokenFile {
  readonly records: readonly StoredRecord[];
  readonly legacy: boolean;
}

/**
 * Parses the file's text. `mtime` dates legacy entries. Throws BTL_TOKENS_CORRUPT naming the
 * first problem; SECURITY: never quotes the file (a legacy file holds plain tokens).
 */
export function parseTokenFile(text: string, file: string, mtime: Date): TokenFile {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new TokenStoreError("BTL_TOKENS_CORRUPT", `${file} is not valid JSON`, { cause: error });
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw new TokenStoreError(
      "BTL_TOKENS_CORRUPT",
      `${file} is not a token file (expected an object)`,
    );
  }
  if ("version" in data) {
    const result = v.safeParse(FileSchema, data);
    if (!result.success) {
      const issue = result.issues[0];
      const where = issue?.path?.map((p) => String(p.key)).join(".") ?? "";
      throw new TokenStoreError(
        "BTL_TOKENS_CORRUPT",
        `${file} is not a valid version 1 token file (at ${where || "the top"})`,
      );
    }
    return { records: result.output.tokens, legacy: false };
  }
  const records: StoredRecord[] = [];
  let index = 0;
  for (const [token, entry] of Object.entries(data)) {
    index++;
    if (!isWellFormed(token) || !v.is(LegacyEntry, entry)) {
      throw new TokenStoreError(
        "BTL_TOKENS_CORRUPT",
        `${file}: legacy entry ${index} is not {"<token>": {"project", "task"}}`,
      );
    }
    const digest = digestToken(token);
    const id = `gt_${createHash("sha256").update(`id:${digest}`).digest("hex").slice(0, 16)}`;
    records.push({
      id,
      digest,
      project: entry.project,
      task: entry.task,
      scopes: ["read", "write"],
      created: mtime.toISOString(),
      expires: null,
    });
  }
  return { records, legacy: true };
}

/** The version 1 text of `records`. */
export function serializeTokenFile(records: readonly StoredRecord[]): string {
  const tokens = records.map((r) => ({
    id: r.id,
    digest: r.digest,
    project: r.project,
    task: r.task,
    scopes: [...r.scopes],
    created: r.created,
    expires: r.expires,
  }));
  return `${JSON.stringify({ version: 1, tokens }, null, 2)}\n`;
}

/** A record without its digest. */
export function publicRecord(record: StoredRecord): TokenRecord {
  const { digest: _, ...rest } = record;
  return Object.freeze({ ...rest, scopes: Object.freeze([...rest.scopes]) });
}
