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
import { ScanError } from "./errors.ts";
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
 * Throws `ScanError` BTL_SCAN_OBJECT_TOO_LARGE, BTL_SCAN_GIT.
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
  const blobs = objects.filter((object) => object.type === "blob");
  const largeBlob = blobs.find((blob) => blob.size > options.maxObjectBytes);

  // Commits and tags, raw; trees kept raw for the walk below.
  const roots = new Map<string, string>();
  const trees = new Map<string, Buffer>();
  const readRaw = () =>
    readObjects(
      objects.filter((object) => object.type !== "blob").map((object) => object.oid),
      (object) => {
        if (object.type === "tree") trees.set(object.oid, object.content);
        else if (object.type === "commit") {
          scanRaw(object.oid, object.content, COMMIT_HEADER, COMMIT_MESSAGE, onLine);
          const tree = /^tree ([0-9a-f]{40,64})\n/.exec(object.content.toString("latin1", 0, 80));
          if (tree?.[1] !== undefined) roots.set(object.oid, tree[1]);
        } else scanRaw(object.oid, object.content, TAG_HEADER, TAG_MESSAGE, onLine);
      },
      { ...base, timeoutMs: remaining() },
    );
  const walk = (want?: ReadonlySet<string>) =>
    walkTrees({ commits: options.commits, roots, trees, onLine, ...(want ? { want } : {}) });

  if (largeBlob !== undefined) {
    await readRaw();
    const place = walk(new Set([largeBlob.oid])).get(largeBlob.oid);
    const what = place === undefined ? `blob ${largeBlob.oid}` : printable(place.file);
    throw tooLarge(largeBlob, what, options.maxObjectBytes);
  }
  // The objects and the diff are read side by side: two git processes, one parser each.
  const [, { binaries, covered }] = await Promise.all([
    readRaw(),
    streamAddedLines({ ...base, commits: options.commits, onLine, timeoutMs: remaining() }),
  ]);
  // Blobs no diff showed (a file in a tree only a tag reaches, a blob pushed alone): read whole.
  const missed = new Set(blobs.filter((blob) => !covered.has(blob.oid)).map((blob) => blob.oid));
  const places = walk(missed);
  const uncovered: BinaryChange[] = [...missed].map((oid) => ({
    ...(places.get(oid) ?? { commit: oid, file: PUSHED_BLOB }),
    oldBlobs: [],
    newBlob: oid,
  }));
  await scanBlobs({
    ...base,
    changes: [...binaries, ...uncovered],
    onLine,
    timeoutMs: remaining(),
  });
  return { objects: objects.length };
}

function tooLarge(object: ObjectInfo, what: string, max: number): ScanError {
  return new ScanError(
    "BTL_SCAN_OBJECT_TOO_LARGE",
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

const SUBTREE = Buffer.from("40000");
const GITLINK = Buffer.from("160000");

/**
 * Scans the entry names of every new tree (raw: `<mode> <name>\0<binary id>` per entry),
 * walking from each commit's root tree in order: a tree is reported at its path in the first
 * commit that reaches it, a tree only a tag or ref reaches at its own id. A name is scanned once
 * per push, where it first appears: the same name in the next commit's version of a directory
 * says nothing new. Returns where each blob of `want` first appears. Throws `ScanError`
 * BTL_SCAN_GIT for a malformed tree.
 */
function walkTrees(options: {
  readonly commits: readonly string[];
  readonly roots: ReadonlyMap<string, string>;
  readonly trees: ReadonlyMap<string, Buffer>;
  readonly onLine: AddedLineSink;
  readonly want?: ReadonlySet<string>;
}): Map<string, { commit: string; file: string }> {
  const { roots, trees, onLine, want } = options;
  const found = new Map<string, { commit: string; file: string }>();
  const seen = new Set<string>();
  const names = new Set<string>();
  const walk = (commit: string, root: string) => {
    const stack: Array<[tree: string, dir: string]> = [[root, ""]];
    for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
      const [tree, dir] = next;
      const content = trees.get(tree);
      if (content === undefined || seen.has(tree)) continue;
      seen.add(tree);
      const idBytes = tree.length / 2;
      let at = 0;
      for (let index = 1; at < content.length; index++) {
        const space = content.indexOf(0x20, at);
        const nul = content.indexOf(0, space + 1);
        if (space === -1 || nul === -1 || nul + 1 + idBytes > content.length) {
          throw new ScanError("BTL_SCAN_GIT", `tree ${tree} is malformed`);
        }
        const mode = content.subarray(at, space);
        // Compared byte for byte (latin1 maps each byte to one character); decoded once.
        const key = content.toString("latin1", space + 1, nul);
        const id = () => content.toString("hex", nul + 1, nul + 1 + idBytes);
        const [from, to] = [space + 1, nul];
        at = nul + 1 + idBytes;
        if (!names.has(key)) {
          names.add(key);
          onLine(commit, dir === "" ? "./" : `${dir}/`, index, content.toString("utf8", from, to));
        }
        const path = () => {
          const name = content.toString("utf8", from, to);
          return dir === "" ? name : `${dir}/${name}`;
        };
        if (mode.equals(SUBTREE)) stack.push([id(), path()]);
        else if (want !== undefined && want.size > 0 && !mode.equals(GITLINK)) {
          const oid = id();
          if (want.has(oid) && !found.has(oid)) found.set(oid, { commit, file: path() });
        }
      }
    }
  };
  for (const commit of options.commits) {
    const root = roots.get(commit);
    if (root !== undefined) walk(commit, root);
  }
  for (const tree of trees.keys()) walk(tree, tree);
  return found;
}
