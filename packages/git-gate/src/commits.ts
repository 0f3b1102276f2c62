/**
 * Which objects a push adds: the ref updates of a pre-receive hook, the commits reachable
 * from the new tips and from no existing ref, and new annotated tags.
 */

import { GitGateError } from "./errors.ts";
import { readObjects } from "./objects.ts";
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
 * `GitGateError` BTL_GITGATE_CONFIG on a malformed line.
 */
export function parseRefUpdates(text: string): RefUpdate[] {
  const updates: RefUpdate[] = [];
  for (const [index, line] of text.split("\n").entries()) {
    if (line === "") continue;
    const match = UPDATE.exec(line);
    const [, oldOid = "", newOid = "", ref = ""] = match ?? [];
    if (match === null || oldOid.length !== newOid.length) {
      throw new GitGateError(
        "BTL_GITGATE_CONFIG",
        `pre-receive input line ${index + 1}: expected "<old-oid> <new-oid> <ref>"`,
      );
    }
    updates.push({ oldOid, newOid, ref });
  }
  return updates;
}

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
      throw new GitGateError(
        "BTL_GITGATE_CONFIG",
        `ref update of ${update.ref}: malformed new oid`,
      );
    }
    if (!isZeroOid(update.newOid)) tips.add(update.newOid);
  }
  return [...tips];
}

function parseOids(stdout: Buffer): string[] {
  return stdout
    .toString("utf8")
    .split("\n")
    .filter((line) => OID.test(line));
}

/**
 * The commits a push adds: reachable from the new tips (annotated tags peeled) and from no
 * existing ref, `git rev-list <tips> --not --all`. In a pre-receive hook the pushed refs have
 * not moved yet, so `--all` is what the repository held before. Deletes add nothing.
 * Throws `GitGateError` BTL_GITGATE_GIT when git fails.
 */
export async function newCommits(options: PushOptions): Promise<string[]> {
  const tips = newTips(options.updates);
  if (tips.length === 0) return [];
  // Tips on stdin, where they are always positive (before the `--not`) and never options.
  const result = await git(["rev-list", "--stdin", "--not", "--all"], {
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

const MAX_TAG_DEPTH = 16;
const TAG_TARGET = /^object ([0-9a-f]{40}|[0-9a-f]{64})\ntype (\w+)\n/;

/**
 * The new annotated tag objects among the updates (their headers and messages are scanned
 * too), following tags of tags, plus any tree or blob a ref or tag points at directly: their
 * content is pushed without a commit. Objects some existing ref already points at are left out.
 * Throws `GitGateError` BTL_GITGATE_GIT when git fails.
 */
export async function newTagObjects(options: PushOptions): Promise<string[]> {
  const tips = newTips(options.updates);
  if (tips.length === 0) return [];
  const refs = await git(["for-each-ref", "--format=%(objectname)"], gitOptions(options));
  const existing = new Set(parseOids(refs.stdout));
  const found: string[] = [];
  const seen = new Set<string>();
  let level = tips.filter((oid) => !existing.has(oid));
  for (let depth = 0; depth < MAX_TAG_DEPTH && level.length > 0; depth++) {
    const types = await objectTypes(options, level);
    const tags: string[] = [];
    for (const [index, oid] of level.entries()) {
      const type = types[index];
      if (seen.has(oid) || (type !== "tag" && type !== "tree" && type !== "blob")) continue;
      seen.add(oid);
      found.push(oid);
      if (type === "tag") tags.push(oid);
    }
    const next: string[] = [];
    await readObjects(
      tags,
      (object) => {
        const target = TAG_TARGET.exec(object.content.toString("utf8", 0, 256));
        if (target?.[1] !== undefined && target[2] !== "commit" && !existing.has(target[1])) {
          next.push(target[1]);
        }
      },
      { ...gitOptions(options), timeoutMs: 120_000 },
    );
    level = next;
  }
  return found;
}

const RANGE = /^[\u0021-\u007e]{1,1000}$/;

/**
 * The commits of a range spec for `scan --range`: `A..B` and `A...B` (and git's `A^!`, `A^@`,
 * `A^-`) as `git rev-list` reads them; a single revision means that one commit. Throws
 * `GitGateError` BTL_GITGATE_CONFIG for a spec that starts with `-` or holds a space or
 * control character, BTL_GITGATE_GIT when git cannot resolve it.
 */
export async function commitsInRange(options: {
  readonly env: Readonly<Record<string, string>>;
  readonly cwd?: string;
  readonly range: string;
}): Promise<string[]> {
  const { range } = options;
  if (!RANGE.test(range) || range.startsWith("-")) {
    throw new GitGateError(
      "BTL_GITGATE_CONFIG",
      "Expected `--range` to be a revision range like `A..B`, without spaces or a leading `-`",
    );
  }
  const isRange = range.includes("..") || /\^[!@-]/.test(range);
  const args = isRange
    ? ["rev-list", "--end-of-options", range, "--"]
    : ["rev-list", "--no-walk", "--end-of-options", range, "--"];
  return parseOids((await git(args, gitOptions(options))).stdout);
}
