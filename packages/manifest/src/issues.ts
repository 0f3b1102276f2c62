/** Turns valibot issues and rule findings into manifest issues with dotted paths and positions. */
import type * as v from "valibot";
import type { Document, LineCounter, Node as YamlNode } from "yaml";
import { isMap, isPair, isScalar, isSeq } from "yaml";
import type { ManifestErrorCode, ManifestIssue } from "./errors.ts";
import { dottedPath, type PathKey } from "./format-issues.ts";

export type { PathKey } from "./format-issues.ts";

/** An issue before it is placed in the source: a path of keys rather than a dotted string. */
export interface RawIssue {
  readonly code: ManifestErrorCode;
  readonly path: readonly PathKey[];
  readonly message: string;
  /** Point at the key itself (unknown keys) rather than at its value. */
  readonly atKey?: boolean;
}

/** Adds the dotted path and, when the document is known, the 1-based line and column. */
export function placeIssue(issue: RawIssue, doc?: Document, lines?: LineCounter): ManifestIssue {
  const base = { code: issue.code, path: dottedPath(issue.path), message: issue.message };
  if (doc === undefined || lines === undefined) return base;
  const offset = locate(doc, issue.path, issue.atKey === true);
  if (offset === undefined) return base;
  const pos = lines.linePos(offset);
  return { ...base, line: pos.line, column: pos.col };
}

function locate(doc: Document, path: readonly PathKey[], atKey: boolean): number | undefined {
  let node: unknown = doc.contents;
  let offset = rangeStart(node);
  for (const [index, key] of path.entries()) {
    if (isMap(node)) {
      const pair = node.items.find(
        (p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(key),
      );
      node =
        pair === undefined ? undefined : atKey && index === path.length - 1 ? pair.key : pair.value;
    } else {
      node = isSeq(node) && typeof key === "number" ? node.items[key] : undefined;
    }
    if (node === undefined) break;
    offset = rangeStart(node) ?? offset;
  }
  return offset;
}

function rangeStart(node: unknown): number | undefined {
  return (node as YamlNode | undefined)?.range?.[0];
}

type AnyIssue = v.BaseIssue<unknown>;
type AnySchema = { type: string; [key: string]: unknown };

/** Maps one valibot issue onto a raw manifest issue. `root` is the schema, `input` the data. */
export function fromValibot(issue: AnyIssue, root: AnySchema, input: unknown): RawIssue {
  const path = (issue.path ?? []).map((item) => item.key as PathKey);
  const field = path.at(-1);
  const name = field === undefined ? "the manifest" : `\`${String(field)}\``;
  if (issue.type === "strict_object" && issue.expected === "never") {
    const known = objectKeysAt(root, path.slice(0, -1), input);
    const hint = suggest(String(field), known);
    const message = `${name} is not a known key${hint ? `; did you mean \`${hint}\`?` : known.length ? ` (known keys: ${known.join(", ")})` : ""}`;
    return { code: "BTL_MANIFEST_UNKNOWN_KEY", path, message, atKey: true };
  }
  if (
    issue.received === "undefined" &&
    (issue.type === "strict_object" || issue.type === "variant")
  ) {
    const options = quotedOptions(issue.expected);
    const one = options.length > 1 ? `; one of ${options.join(", ")}` : "";
    return { code: "BTL_MANIFEST_MISSING_KEY", path, message: `${name} is required${one}` };
  }
  if (path[0] === "version" && path.length === 1) {
    return {
      code: "BTL_MANIFEST_VERSION",
      path,
      message: "Expected `version` to be 1 (the only version this release reads)",
    };
  }
  if (!issue.message.startsWith("Invalid "))
    return { code: "BTL_MANIFEST_INVALID", path, message: issue.message };
  const options = quotedOptions(issue.expected);
  if (options.length > 0) {
    const got = describeReceived(issue.input, true);
    const hint = typeof issue.input === "string" ? suggest(issue.input, options) : undefined;
    const message = `Expected ${name} to be one of ${options.join(", ")}, got ${got}${hint ? `; did you mean \`${hint}\`?` : ""}`;
    return { code: "BTL_MANIFEST_INVALID", path, message };
  }
  const expected = EXPECTED[issue.expected ?? ""] ?? issue.expected ?? "a valid value";
  const message = `Expected ${name} to be ${expected}, got ${describeReceived(issue.input, false)}`;
  return { code: "BTL_MANIFEST_INVALID", path, message };
}

const EXPECTED: Record<string, string> = {
  string: "a string",
  number: "a number",
  boolean: "true or false",
  Object: "a mapping",
  Array: "a list",
};

/**
 * SECURITY: never echo a string from the manifest unless it is short and plain and the field
 * is an enumeration: a mistyped field may hold a pasted secret.
 */
function describeReceived(input: unknown, enumeration: boolean): string {
  if (input === null || input === undefined) return "nothing";
  if (typeof input === "string") {
    return enumeration && /^[A-Za-z0-9._-]{1,24}$/.test(input) ? `\`${input}\`` : "a string";
  }
  if (typeof input === "number" || typeof input === "boolean") return String(input);
  return Array.isArray(input) ? "a list" : "a mapping";
}

function quotedOptions(expected: string | null | undefined): string[] {
  if (!expected?.includes('"')) return [];
  return [...expected.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1] ?? "");
}

/** The closest known key within a small edit distance, for "did you mean". */
export function suggest(word: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const candidate of known) {
    const d = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row[j] = Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
    }
    prev = row;
  }
  return prev[b.length] ?? 0;
}

/** The keys an object schema defines at `path` (following the data through variants). */
function objectKeysAt(root: AnySchema, path: readonly PathKey[], input: unknown): string[] {
  let schema: AnySchema | undefined = unwrap(root, input);
  let value = input;
  for (const key of path) {
    if (schema === undefined) return [];
    value = (value as Record<PathKey, unknown> | undefined)?.[key];
    if ("entries" in schema) schema = (schema.entries as Record<string, AnySchema>)[String(key)];
    else if (schema.type === "array") schema = schema.item as AnySchema;
    else if (schema.type === "record") schema = schema.value as AnySchema;
    else return [];
    schema = schema && unwrap(schema, value);
  }
  return schema && "entries" in schema ? Object.keys(schema.entries as object) : [];
}

function unwrap(schema: AnySchema, value: unknown): AnySchema | undefined {
  let s: AnySchema | undefined = schema;
  while (s && (s.type === "optional" || s.type === "variant" || s.type === "union")) {
    if (s.type === "optional") s = s.wrapped as AnySchema;
    else {
      const options = s.options as AnySchema[];
      const key = s.key as string | undefined;
      const tag = (value as Record<string, unknown> | undefined)?.[key ?? ""];
      s =
        options.find(
          (o) =>
            key !== undefined && (o.entries as Record<string, AnySchema>)[key]?.literal === tag,
        ) ??
        options.find((o) =>
          Object.keys(value ?? {}).every((k) => k in ((o.entries as object) ?? {})),
        ) ??
        options[0];
    }
  }
  return s;
}
