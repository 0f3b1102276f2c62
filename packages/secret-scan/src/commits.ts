/**
 * Which objects a push adds: the ref updates of a pre-receive hook (only branches and tags are
 * accepted), the commits reachable from the new tips and from no existing branch or tag, new
 * annotated tags, and every object (commit, tag, tree, blob) those bring, with its size.
 */

import { ScanError } from "./errors.ts";
import { git } from "./run.ts";

/** One line of a pre-receive hook's stdin. */
export interface RefUpdate {
  readonly oldOid: string;
  readonly newOid: string;
  readonly ref: string;
}

/** The all-zero object id of a created (old) or deleted (new) ref; sha256 repos use 64 zeros. */
export const ZERO_OID = "0".repeat(40);

const OID = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;
// Ref names hold no space, control character or DEL (git check-ref-format).
const UPDATE =
  /^([0-9a-f]{40}|[0-9a-f]{64}) ([0-9a-f]{40}|[0-9a-f]{64}) ([^\u0000-\u0020\u007f]+)$/;

/** True for the all-zero id (40 or 64 zeros). */
export function isZeroOid(oid: string): boolean {
  return (oid.length === 40 || oid.length === 64) && /^0+$/.test(oid);
}

/**
 * Parses a pre-receive stdin (`<old> <new> <ref>\n`…; blank lines are skipped). Throws
 * `ScanError` BTL_SCAN_CONFIG on a malformed line.
 */
export function parseRefUpdates(text: string): RefUpdate[] {
  const updates: RefUpdate[] = [];
  for (const [index, line] of text.split("\n").entries()) {
    if (line === "") continue;
    const match = UPDATE.exec(line);
    const [, oldOid = "", newOid = "", ref = ""] = match ?? [];
    if (match === null || oldOid.length !== newOid.length) {
      throw new ScanError(
        "BTL_SCAN_CONFIG",
        `pre-receive input line ${index + 1}: expected "<old-oid> <new-oid> <ref>"`,
      );
    }
    updates.push({ oldOid, newOid, ref });
  }
  return updates;
}

/**
 * The ref namespaces that count as history (and that a gate lets a push update): branches and
 * tags.
 */
export const PUSHABLE_REFS = ["refs/heads/", "refs/tags/"] as const;

/** Options of {@link newCommits} and {@link newTagObjects}. */
export interface PushOptions {
  readonly env: Readonly<Record<string, string>>;
  readonly cwd?: string;
  readonly updates: readonly RefUpdate[];
}

function gitOptions(options: { env: Readonly<Record<string, string>>; cwd?: string }) {
  return { env: options.env, ...(options.cwd === undefined ? {} : { cwd: options.cwd }) };
}

/** The distinct new tips of `updates` (deletes left out). */
function newTips(updates: readonly RefUpdate[]): string[] {
  const tips = new Set<string>();
  for (const update of updates) {
    if (!OID.test(update.newOid)) {
      throw new ScanError("BTL_SCAN_CONFIG", `ref update of ${update.ref}: malformed new oid`);
    }
    if (!isZeroOid(update.newOid)) tips.add(update.newOid);
  }
  return [...tips];
}

/** What counts as already upstream: the mirror's branches and tags. */
const EXISTING = ["--branches", "--tags"] as const;

function parseOids(stdout: Buffer): string[] {
  return stdout
    .toString("utf8")
    .split("\n")
    .filter((line) => OID.test(line));
}

/**
 * The commits a push adds: reachable from the new tips (annotated tags peeled) and from no
 * existing branch or tag, `git rev-list <tips> --not --branches --tags`. In a pre-receive hook
 * the pushed refs have not moved yet, so these are what the upstream held at the last sync. No
 * other ref counts as history (an old `refs/replace/*` or `refs/pull/*` in the mirror was never
 * upstream). Deletes add nothing. Throws `ScanError` BTL_SCAN_GIT when git fails.
 */
export async function newCommits(options: PushOptions): Promise<string[]> {
  const tips = newTips(options.updates);
  if (tips.length === 0) return [];
  // Tips on stdin, where they are always positive (before the `--not`) and never options.
  const result = await git(["rev-list", "--stdin", "--not", ...EXISTING], {
    ...gitOptions(options),
    input: `${tips.join("\n")}\n`,
  });
  return parseOids(result.stdout);
}

/** The type of each of `oids` (`missing` when the repository lacks it), in order. */
export async function objectTypes(
  options: { env: Readonly<Record<string, string>>; cwd?: string },
  oids: readonly string[],
): Promise<string[]> {
  if (oids.length === 0) return [];
  const result = await git(["cat-file", "--batch-check=%(objecttype)"], {
    ...gitOptions(options),
    input: `${oids.join("\n")}\n`,
  });
  // A missing object prints `<oid> missing` instead of the format.
  return result.stdout
    .toString("utf8")
    .split("\n")
    .slice(0, oids.length)
    .map((line) => (line.includes(" ") ? "missing" : line));
}

/**
 * The new tips of the updates that are not commits: annotated tags, and trees or blobs a ref
 * points at directly (their content is pushed without a commit). Tips an existing branch or
 * tag already points at are left out; what a tag points at is listed by {@link newObjects}.
 * Throws `ScanError` BTL_SCAN_GIT when git fails.
 */
export async function newTagObjects(options: PushOptions): Promise<string[]> {
  const tips = newTips(options.updates);
  if (tips.length === 0) return [];
  const refs = await git(
    ["for-each-ref", "--format=%(objectname)", ...PUSHABLE_REFS],
    gitOptions(options),
  );
  const existing = new Set(parseOids(refs.stdout));
  const fresh = tips.filter((oid) => !existing.has(oid));
  const types = await objectTypes(options, fresh);
  return fresh.filter((_, index) => types[index] !== "commit");
}

/** An object of a push, from {@link newObjects}. */
export interface ObjectInfo {
  readonly oid: string;
  readonly type: "commit" | "tag" | "tree" | "blob";
  readonly size: number;
}

/** Options of {@link newObjects}. */
export interface NewObjectsOptions {
  readonly env: Readonly<Record<string, string>>;
  readonly cwd?: string;
  /** The new commits. */
  readonly commits: readonly string[];
  /** Other new tips: tags, trees, blobs. */
  readonly tips: readonly string[];
  /**
   * What is old: `refs`, everything the repository's branches and tags reach (a push); or
   * `parents`, everything the parents of `commits` outside `commits` reach (a range).
   */
  readonly since: "refs" | "parents";
  readonly timeoutMs: number;
}

const OBJECT_INFO = /^([0-9a-f]{40}|[0-9a-f]{64}) (commit|tag|tree|blob) (\d+)$/;

/**
 * Every object reachable from `commits` and `tips` and not from what is old, with its type and
 * size (`git rev-list --objects`, then `cat-file --batch-check`): what a forwarding push sends.
 * Throws `ScanError` BTL_SCAN_GIT when git fails or an object is missing.
 */
export async function newObjects(options: NewObjectsOptions): Promise<ObjectInfo[]> {
  const positives = [...options.commits, ...options.tips];
  if (positives.length === 0) return [];
  const base = { ...gitOptions(options), timeoutMs: options.timeoutMs };
  let negatives: string[] = [];
  if (options.since === "parents" && options.commits.length > 0) {
    const parents = await git(["rev-list", "--no-walk=unsorted", "--parents", "--stdin"], {
      ...base,
      input: `${options.commits.join("\n")}\n`,
    });
    const inside = new Set(options.commits);
    negatives = [
      ...new Set(
        parents.stdout
          .toString("utf8")
          .split("\n")
          .flatMap((line) => line.split(" ").slice(1))
          .filter((oid) => OID.test(oid) && !inside.has(oid)),
      ),
    ];
  }
  const listed = await git(
    [
      "rev-list",
      "--objects",
      "--no-object-names",
      "--stdin",
      ...(options.since === "refs" ? ["--not", ...EXISTING] : []),
    ],
    {
      ...base,
      input: `${[...positives, ...negatives.map((oid) => `^${oid}`)].join("\n")}\n`,
      maxOutputBytes: 1024 * 1024 * 1024,
    },
  );
  const oids = parseOids(listed.stdout);
  if (oids.length === 0) return [];
  const checked = await git(
    ["cat-file", "--batch-check=%(objectname) %(objecttype) %(objectsize)"],
    { ...base, input: `${oids.join("\n")}\n`, maxOutputBytes: 1024 * 1024 * 1024 },
  );
  const lines = checked.stdout.toString("utf8").split("\n").slice(0, oids.length);
  return lines.map((line, index) => {
    const match = OBJECT_INFO.exec(line);
    if (match === null) {
      throw new ScanError("BTL_SCAN_GIT", `object ${oids[index] ?? ""} cannot be read`);
    }
    const [, oid = "", type = "blob", size = "0"] = match;
    return { oid, type: type as ObjectInfo["type"], size: Number(size) };
  });
}

const RANGE = /^[\u0021-\u007e]{1,1000}$/;

/**
 * The commits of a range spec for `scan --range`: `A..B` and `A...B` (and git's `A^!`, `A^@`,
 * `A^-`) as `git rev-list` reads them; a single revision means that one commit. Throws
 * `ScanError` BTL_SCAN_CONFIG for a spec that starts with `-` or holds a space or
 * control character, BTL_SCAN_GIT when git cannot resolve it.
 */
export async function commitsInRange(options: {
  readonly env: Readonly<Record<string, string>>;
  readonly cwd?: string;
  readonly range: string;
}): Promise<string[]> {
  const { range } = options;
  if (!RANGE.test(range) || range.startsWith("-")) {
    throw new ScanError(
      "BTL_SCAN_CONFIG",
      "Expected `--range` to be a revision range like `A..B`, without spaces or a leading `-`",
    );
  }
  const isRange = range.includes("..") || /\^[!@-]/.test(range);
  const args = isRange
    ? ["rev-list", "--end-of-options", range, "--"]
    : ["rev-list", "--no-walk", "--end-of-options", range, "--"];
  return parseOids((await git(args, gitOptions(options))).stdout);
}
