/** Reading a manifest: size cap, YAML/JSON parse, schema, cross-field rules, secret files. */
import { open } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, resolve } from "node:path";
import * as v from "valibot";
import { type Document, LineCounter, parseDocument } from "yaml";
import { ManifestError, type ManifestErrorCode } from "./errors.ts";
import { checkSecretFile, type PathBase, resolvePath } from "./files.ts";
import { fromValibot, type PathKey, placeIssue, type RawIssue } from "./issues.ts";
import { checkRules } from "./rules.ts";
import { type Manifest, ManifestSchema } from "./schema.ts";

/** The size cap, checked before any parsing: 1 MiB. */
export const MAX_MANIFEST_BYTES = 1024 * 1024;

/** Options of `parseManifest`. */
export interface ParseOptions {
  /** Shown in error messages; its directory is where relative paths resolve. */
  readonly filename?: string;
  /** Directory for relative paths (default: the file's directory, else the working directory). */
  readonly baseDir?: string;
  /** What `~/` means (default: the user's home directory). */
  readonly homedir?: string;
  /** Check that named secret files exist with mode 0600 or stricter (default true). */
  readonly checkFiles?: boolean;
}

/**
 * Parses and validates manifest text (YAML, or JSON which is YAML too) into a frozen, typed
 * `Manifest` with file paths resolved. Throws `ManifestError` listing every issue found, each
 * with its dotted path and line:column.
 */
export function parseManifest(text: string, options: ParseOptions = {}): Manifest {
  const filename = options.filename;
  if (Buffer.byteLength(text, "utf8") > MAX_MANIFEST_BYTES) {
    throw new ManifestError(
      [
        {
          code: "BTL_MANIFEST_TOO_LARGE",
          path: "",
          message: `the manifest is larger than ${MAX_MANIFEST_BYTES} bytes`,
        },
      ],
      filename,
    );
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, {
    lineCounter: lines,
    uniqueKeys: true,
    prettyErrors: false,
    strict: true,
    merge: false,
    version: "1.2",
  });
  const fail = (issues: RawIssue[]): never => {
    throw new ManifestError(
      issues.map((issue) => placeIssue(issue, doc, lines)),
      filename,
    );
  };
  const syntax = [...doc.errors, ...doc.warnings];
  if (syntax.length > 0) {
    throw new ManifestError(
      syntax.map((e) => {
        const code: ManifestErrorCode =
          e.code === "DUPLICATE_KEY" ? "BTL_MANIFEST_DUPLICATE_KEY" : "BTL_MANIFEST_PARSE";
        const pos = lines.linePos(e.pos[0]);
        const message =
          e.code === "DUPLICATE_KEY"
            ? "the same key appears twice in this mapping"
            : (e.message.split("\n")[0] ?? "");
        return { code, path: "", message, line: pos.line, column: pos.col };
      }),
      filename,
    );
  }
  const data = toData(doc, fail);
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    return fail([
      {
        code: "BTL_MANIFEST_PARSE",
        path: [],
        message: "Expected the manifest to be a mapping (version: 1, name: …)",
      },
    ]);
  }
  if ((data as Record<string, unknown>).version !== 1) {
    const has = Object.hasOwn(data, "version");
    return fail([
      {
        code: "BTL_MANIFEST_VERSION",
        path: has ? ["version"] : [],
        message: has
          ? "Expected `version` to be 1 (the only version this release reads)"
          : "`version: 1` is required",
      },
    ]);
  }
  const reserved = findReservedKeys(data, []);
  if (reserved.length > 0) return fail(reserved);
  const result = v.safeParse(ManifestSchema, data, { abortEarly: false });
  if (!result.success) {
    return fail(result.issues.map((issue) => fromValibot(issue, ManifestSchema as never, data)));
  }
  const manifest = result.output;
  const ruleIssues = checkRules(manifest);
  if (ruleIssues.length > 0) return fail(ruleIssues);
  const base: PathBase = {
    baseDir: options.baseDir ?? (filename ? dirname(resolve(filename)) : process.cwd()),
    homedir: options.homedir ?? homedir(),
  };
  const fileIssues = resolveFiles(manifest, base, options.checkFiles ?? true);
  if (fileIssues.length > 0) return fail(fileIssues);
  return deepFreeze(manifest);
}

/** Keys that name object internals; valibot's records would drop them silently. */
const RESERVED_KEYS = new Set(["__proto__", "constructor", "prototype"]);

function findReservedKeys(value: unknown, path: PathKey[]): RawIssue[] {
  if (typeof value !== "object" || value === null) return [];
  return Object.entries(value).flatMap(([key, child]) => {
    const at = [...path, Array.isArray(value) ? Number(key) : key];
    if (!Array.isArray(value) && RESERVED_KEYS.has(key)) {
      return [
        {
          code: "BTL_MANIFEST_INVALID",
          path: at,
          atKey: true,
          message: `\`${key}\` is a reserved name`,
        } as const,
      ];
    }
    return findReservedKeys(child, at);
  });
}

function toData(doc: Document, fail: (issues: RawIssue[]) => never): unknown {
  try {
    return doc.toJS({ maxAliasCount: 100 });
  } catch {
    return fail([
      { code: "BTL_MANIFEST_PARSE", path: [], message: "the document expands too many aliases" },
    ]);
  }
}

/** Resolves identity and private-key paths in place; checks their modes when asked. */
function resolveFiles(m: Manifest, base: PathBase, check: boolean): RawIssue[] {
  const issues: RawIssue[] = [];
  for (const [name, repo] of Object.entries(m.git_gate?.repos ?? {})) {
    if (repo.key.provider !== "static") continue;
    repo.key.identity = resolvePath(repo.key.identity, base);
    const issue =
      check &&
      checkSecretFile(
        repo.key.identity,
        ["git_gate", "repos", name, "key", "identity"],
        "identity file",
      );
    if (issue) issues.push(issue);
  }
  for (const [name, app] of Object.entries(m.github_apps)) {
    app.private_key = resolvePath(app.private_key, base);
    const issue =
      check &&
      checkSecretFile(app.private_key, ["github_apps", name, "private_key"], "private key");
    if (issue) issues.push(issue);
  }
  return issues;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

/**
 * Reads a manifest file (at most the size cap, never more) and parses it. Throws
 * `ManifestError` (BTL_MANIFEST_READ when the file cannot be read).
 */
export async function loadManifest(
  path: string,
  options: Omit<ParseOptions, "filename"> = {},
): Promise<Manifest> {
  let text: string;
  try {
    const handle = await open(path, "r");
    try {
      const stat = await handle.stat();
      if (!stat.isFile()) throw Object.assign(new Error("not a file"), { code: "EISDIR" });
      const buffer = Buffer.alloc(MAX_MANIFEST_BYTES + 1);
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
      if (bytesRead > MAX_MANIFEST_BYTES) {
        throw new ManifestError(
          [
            {
              code: "BTL_MANIFEST_TOO_LARGE",
              path: "",
              message: `the manifest is larger than ${MAX_MANIFEST_BYTES} bytes`,
            },
          ],
          path,
        );
      }
      text = new TextDecoder("utf-8", { fatal: true }).decode(buffer.subarray(0, bytesRead));
    } finally {
      await handle.close();
    }
  } catch (error) {
    if (error instanceof ManifestError) throw error;
    const reason =
      error instanceof TypeError
        ? "is not UTF-8 text"
        : (error as NodeJS.ErrnoException).code === "ENOENT"
          ? "does not exist"
          : "cannot be read";
    const code: ManifestErrorCode =
      error instanceof TypeError ? "BTL_MANIFEST_PARSE" : "BTL_MANIFEST_READ";
    throw new ManifestError([{ code, path: "", message: `the manifest file ${reason}` }], path, {
      cause: error,
    });
  }
  return parseManifest(text, { ...options, filename: path });
}
