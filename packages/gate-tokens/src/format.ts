/**
 * The token file. Version 1 stores SHA-256 digests only. The older plain format
 * `{"<token>": {"project": …, "task": …}}` is read too, and rewritten as version 1 by the next
 * write. SECURITY: no message here quotes a value from the file (a legacy file holds tokens).
 */
import { createHash } from "node:crypto";
import * as v from "valibot";
import { TokenStoreError } from "./errors.ts";
import { digestToken, isWellFormed } from "./token.ts";

/** What a token may do: `read` fetches, `write` pushes. They are independent. */
export type Scope = "read" | "write";

/** A token as `list`, `revoke` and `verify` show it: never the token or its digest. */
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

/** The parsed file, and whether it was in the legacy plain format. */
export interface TokenFile {
  readonly records: readonly StoredRecord[];
  readonly legacy: boolean;
}

/** A project slug: no wildcard can exist. */
export const PROJECT = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
export const TASK = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
export const ID = /^gt_[0-9a-f]{16}$/;
const DIGEST = /^sha256:[0-9a-f]{64}$/;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?Z$/;

export const PROJECT_MESSAGE =
  "Expected a project slug (a-z, 0-9 and inner -, 1 to 63 characters; no wildcard)";
export const TASK_MESSAGE =
  "Expected a task of 1 to 128 characters A-Z a-z 0-9 . _ : - starting with a letter or digit";

const text = (pattern: RegExp, message: string) =>
  v.pipe(v.string(message), v.regex(pattern, message));
const time = (message: string) =>
  v.pipe(
    v.string(message),
    v.regex(ISO, message),
    v.check((s) => !Number.isNaN(Date.parse(s)), message),
  );

const RecordSchema = v.strictObject(
  {
    id: text(ID, "Expected an id like gt_0123456789abcdef"),
    digest: text(DIGEST, "Expected sha256: and 64 lowercase hex digits"),
    project: text(PROJECT, PROJECT_MESSAGE),
    task: text(TASK, TASK_MESSAGE),
    scopes: v.pipe(
      v.array(v.picklist(["read", "write"], "Expected read or write"), "Expected a list"),
      v.minLength(1, "Expected at least one scope"),
      v.check((s) => new Set(s).size === s.length, "Expected each scope at most once"),
    ),
    created: time("Expected an ISO 8601 UTC time"),
    expires: v.nullable(time("Expected an ISO 8601 UTC time or null")),
  },
  "Expected a record with exactly id, digest, project, task, scopes, created and expires",
);
const FileSchema = v.strictObject(
  {
    version: v.literal(1, "Expected version 1"),
    tokens: v.array(RecordSchema, "Expected a list of token records"),
  },
  "Expected exactly the keys version and tokens",
);
const LegacyEntry = v.strictObject(
  { project: text(PROJECT, PROJECT_MESSAGE), task: text(TASK, TASK_MESSAGE) },
  "Expected exactly the keys project and task",
);

/** `a.0.b` for an issue path; SECURITY: a key that is not one of ours is shown as `<key>`. */
function issuePath(issue: v.BaseIssue<unknown>): string {
  const keys = (issue.path ?? []).map((p) => {
    const key = p.key;
    return typeof key === "number" || (typeof key === "string" && /^[a-z]{1,10}$/.test(key))
      ? String(key)
      : "<key>";
  });
  return keys.length === 0 ? "(top)" : keys.join(".");
}

const corrupt = (file: string, detail: string, cause?: unknown) =>
  new TokenStoreError(
    "BTL_TOKENS_CORRUPT",
    `${file} is not a valid token file: ${detail}`,
    cause === undefined ? {} : { cause },
  );

/**
 * Parses the file's text; `mtime` dates (and names) legacy entries. Throws BTL_TOKENS_CORRUPT
 * naming the first problem by its path, never quoting the file.
 */
export function parseTokenFile(source: string, file: string, mtime: Date): TokenFile {
  let data: unknown;
  try {
    data = JSON.parse(source);
  } catch (error) {
    throw corrupt(file, "not JSON", error);
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw corrupt(file, "expected a JSON object");
  }
  if (!("version" in data)) return { records: parseLegacy(data, file, mtime), legacy: true };
  const result = v.safeParse(FileSchema, data);
  if (!result.success) {
    const issue = result.issues[0];
    throw corrupt(file, issue ? `${issuePath(issue)}: ${issue.message}` : "schema violation");
  }
  const records = result.output.tokens;
  const ids = new Set<string>();
  const digests = new Set<string>();
  for (const [index, record] of records.entries()) {
    if (ids.has(record.id)) throw corrupt(file, `tokens.${index}.id: Expected each id once`);
    if (digests.has(record.digest))
      throw corrupt(file, `tokens.${index}.digest: Expected each digest once`);
    ids.add(record.id);
    digests.add(record.digest);
  }
  return { records, legacy: false };
}

/**
 * Legacy entries get both scopes, no expiry, `created` = the file's mtime, and an id that is
 * stable while the file is unchanged. SECURITY: the id comes from the mtime, the position,
 * the project and the task, never from the token.
 */
function parseLegacy(data: object, file: string, mtime: Date): StoredRecord[] {
  const records: StoredRecord[] = [];
  const created = mtime.toISOString();
  for (const [index, [token, entry]] of Object.entries(data).entries()) {
    if (!isWellFormed(token)) throw corrupt(file, `legacy entry ${index}: the token is malformed`);
    const result = v.safeParse(LegacyEntry, entry);
    if (!result.success) {
      const issue = result.issues[0];
      throw corrupt(file, `legacy entry ${index}: ${issue?.message ?? "schema violation"}`);
    }
    const { project, task } = result.output;
    const seed = `bottle-gate-tokens legacy\0${created}\0${index}\0${project}\0${task}`;
    records.push({
      id: `gt_${createHash("sha256").update(seed).digest("hex").slice(0, 16)}`,
      digest: digestToken(token),
      project,
      task,
      scopes: ["read", "write"],
      created,
      expires: null,
    });
  }
  return records;
}

/** The version 1 text of `records` (what every write produces). */
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

/** A frozen copy of a record without its digest. */
export function publicRecord(record: StoredRecord): TokenRecord {
  return Object.freeze({
    id: record.id,
    project: record.project,
    task: record.task,
    scopes: Object.freeze([...record.scopes]),
    created: record.created,
    expires: record.expires,
  });
}
