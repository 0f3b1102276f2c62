/**
 * Everything a push adds, as text for the scanner. SECURITY: the scanner reads every object a
 * forwarding push sends, or the push is refused:
 * - every new commit and tag object as its raw bytes (every header, unknown ones and `gpgsig`
 *   included; the message in its stored encoding, never re-encoded);
 * - the entry names of every new tree (files, directories, symlinks, gitlinks);
 * - the lines the new commits add (`git log -p`: renames, merges by their own lines);
 * - every byte of every new binary blob, and of every new blob no diff covered (pushed behind
 *   a tag, in an empty directory, …), streamed with no cut-off;
 * - the names of the refs the push updates.
 * An object larger than `maxObjectBytes` refuses the push before anything is read.
 */
import { type NewObjectsOptions, newObjects, type ObjectInfo } from "./commits.ts";
import { type AddedLineSink, type BinaryChange, streamAddedLines } from "./diff.ts";
import { GitGateError } from "./errors.ts";
import { printable } from "./findings.ts";
import { ContentStream, readObjects, scanBlobs } from "./objects.ts";

/** Pseudo-paths of text that is not a file's content. */
export const COMMIT_HEADER = "(commit header)";
export const COMMIT_MESSAGE = "(commit message)";
export const TAG_HEADER = "(tag header)";
export const TAG_MESSAGE = "(tag message)";
export const PUSHED_BLOB = "(blob)";
export const REF_NAME = "(ref name)";

/** The default of {@link FeedOptions.maxObjectBytes}: 256 MiB. */
export const MAX_OBJECT_BYTES = 256 * 1024 * 1024;

/** Options of {@link feedPush}. */
export interface FeedOptions {
  readonly env: Readonly<Record<string, string>>;
  readonly cwd?: string;
  readonly commits: readonly string[];
  /** New tips that are not commits: tags, trees, blobs. */
  readonly tips: readonly string[];
  /** The refs the push updates: their names are scanned as text (at the new id). */
  readonly refs: ReadonlyArray<{ readonly ref: string; readonly newOid: string }>;
  readonly since: NewObjectsOptions["since"];
  readonly maxObjectBytes: number;
  /** `Date.now()` by which everything must be read. */
  readonly deadline: number;
  readonly onLine: AddedLineSink;
}

/**
 * Hands every piece of text the push adds to `onLine`; returns how many objects it read.
 * Throws `GitGateError` BTL_GITGATE_OBJECT_TOO_LARGE, BTL_GITGATE_GIT.
 */
export async function feedPush(options: FeedOptions): Promise<{ objects: number }> {
  const base = { env: options.env, ...(options.cwd === undefined ? {} : { cwd: options.cwd }) };
  const remaining = () => Math.max(1, options.deadline - Date.now());
  const { onLine } = options;
  for (const [index, { ref, newOid }] of options.refs.entries())
    onLine(newOid, REF_NAME, index + 1, ref);

  const objects = await newObjects({
    ...base,
    commits: options.commits,
    tips: options.tips,
    since: options.since,
    timeoutMs: remaining(),
  });
  const large = objects.find(
    (object) => object.type !== "blob" && object.size > options.maxObjectBytes,
  );
  if (large !== undefined)
    throw tooLarge(large, `${large.type} ${large.oid}`, options.maxObjectBytes);

  // Commits and tags, raw; trees, parsed (every name is scanned below).
  const roots = new Map<string, string>();
  const trees = new Map<string, TreeEntry[]>();
  const raw = objects.filter((object) => object.type !== "blob").map((object) => object.oid);
  await readObjects(
    raw,
    (object) => {
      if (object.type === "tree") trees.set(object.oid, parseTree(object.content, object.oid));
      else if (object.type === "commit") {
        scanRaw(object.oid, object.content, COMMIT_HEADER, COMMIT_MESSAGE, onLine);
        const tree = /^tree ([0-9a-f]{40,64})\n/.exec(object.content.toString("latin1", 0, 80));
        if (tree?.[1] !== undefined) roots.set(object.oid, tree[1]);
      } else scanRaw(object.oid, object.content, TAG_HEADER, TAG_MESSAGE, onLine);
    },
    { ...base, timeoutMs: remaining() },
  );
  const blobPaths = walkTrees(options.commits, roots, trees, onLine);

  const blobs = objects.filter((object) => object.type === "blob");
  for (const blob of blobs) {
    if (blob.size <= options.maxObjectBytes) continue;
    const place = blobPaths.get(blob.oid);
    throw tooLarge(
      blob,
      place === undefined ? `blob ${blob.oid}` : printable(place.file),
      options.maxObjectBytes,
    );
  }

  const { binaries, covered } = await streamAddedLines({
    ...base,
    commits: options.commits,
    onLine,
    timeoutMs: remaining(),
  });
  // Blobs no diff showed (a file in a tree only a tag reaches, a blob pushed alone): read whole.
  const uncovered: BinaryChange[] = blobs
    .filter((blob) => !covered.has(blob.oid))
    .map((blob) => {
      const place = blobPaths.get(blob.oid) ?? { commit: blob.oid, file: PUSHED_BLOB };
      return { ...place, oldBlobs: [], newBlob: blob.oid };
    });
  await scanBlobs({
    ...base,
    changes: [...binaries, ...uncovered],
    onLine,
    timeoutMs: remaining(),
  });
  return { objects: objects.length };
}

function tooLarge(object: ObjectInfo, what: string, max: number): GitGateError {
  return new GitGateError(
    "BTL_GITGATE_OBJECT_TOO_LARGE",
    `${what} is ${object.size} bytes, more than the gate scans (git_gate.scan.max_blob_bytes: ${max}); the push is refused rather than forwarded unread`,
  );
}

/** A commit or tag object: its header lines and its message, byte for byte. */
function scanRaw(
  oid: string,
  content: Buffer,
  headerFile: string,
  messageFile: string,
  onLine: AddedLineSink,
): void {
  const split = content.indexOf("\n\n");
  const parts: Array<[string, Buffer]> = [
    [headerFile, split === -1 ? content : content.subarray(0, split)],
    [messageFile, split === -1 ? Buffer.alloc(0) : content.subarray(split + 2)],
  ];
  for (const [file, bytes] of parts) {
    const stream = new ContentStream((line, text) => onLine(oid, file, line, text));
    stream.push(bytes);
    stream.end();
  }
}

interface TreeEntry {
  readonly mode: string;
  readonly name: Buffer;
  readonly oid: string;
}

/** Parses a raw tree: `<mode> <name>\0<binary id>` per entry. */
function parseTree(content: Buffer, treeOid: string): TreeEntry[] {
  const idBytes = treeOid.length / 2;
  const entries: TreeEntry[] = [];
  let at = 0;
  while (at < content.length) {
    const space = content.indexOf(0x20, at);
    const nul = content.indexOf(0, space + 1);
    if (space === -1 || nul === -1 || nul + 1 + idBytes > content.length) {
      throw new GitGateError("BTL_GITGATE_GIT", `tree ${treeOid} is malformed`);
    }
    entries.push({
      mode: content.toString("latin1", at, space),
      name: content.subarray(space + 1, nul),
      oid: content.toString("hex", nul + 1, nul + 1 + idBytes),
    });
    at = nul + 1 + idBytes;
  }
  return entries;
}

/**
 * Scans the entry names of every new tree, walking from each commit's root tree in order (a
 * tree is reported at its path in the first commit that reaches it; a tree only a tag or ref
 * reaches, at its own id). A name is scanned once per push, where it first appears: the same
 * name in the next commit's version of a directory says nothing new. Returns where each new
 * blob first appears.
 */
function walkTrees(
  commits: readonly string[],
  roots: ReadonlyMap<string, string>,
  trees: ReadonlyMap<string, TreeEntry[]>,
  onLine: AddedLineSink,
): Map<string, { commit: string; file: string }> {
  const blobs = new Map<string, { commit: string; file: string }>();
  const seen = new Set<string>();
  const names = new Set<string>();
  const walk = (commit: string, root: string) => {
    const stack: Array<[tree: string, dir: string]> = [[root, ""]];
    for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
      const [tree, dir] = next;
      const entries = trees.get(tree);
      if (entries === undefined || seen.has(tree)) continue;
      seen.add(tree);
      for (const [index, entry] of entries.entries()) {
        const name = entry.name.toString("utf8");
        if (!names.has(name)) {
          names.add(name);
          onLine(commit, dir === "" ? "./" : `${dir}/`, index + 1, name);
        }
        const path = dir === "" ? name : `${dir}/${name}`;
        if (entry.mode === "40000") stack.push([entry.oid, path]);
        else if (entry.mode !== "160000" && !blobs.has(entry.oid))
          blobs.set(entry.oid, { commit, file: path });
      }
    }
  };
  for (const commit of commits) {
    const root = roots.get(commit);
    if (root !== undefined) walk(commit, root);
  }
  for (const tree of trees.keys()) walk(tree, tree);
  return blobs;
}
