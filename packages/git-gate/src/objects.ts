/**
 * Objects a push adds, read with `git cat-file --batch`: blobs of binary files and pushed
 * blobs, scanned by their printable runs (so a NUL byte cannot hide a secret from the scan).
 */

import type { AddedLineSink, BinaryChange } from "./diff.ts";
import { GitGateError } from "./errors.ts";
import { git } from "./run.ts";

/** An object read by {@link readObjects}; `content` holds at most the cap. */
export interface GitObject {
  readonly oid: string;
  readonly type: string;
  readonly size: number;
  readonly content: Buffer;
}

/** Options of {@link readObjects}. */
export interface ReadObjectsOptions {
  readonly env: Readonly<Record<string, string>>;
  readonly cwd?: string;
  readonly timeoutMs: number;
  /** Bytes kept per object; the rest is read and dropped (default 16 MiB). */
  readonly maxObjectBytes?: number;
}

/** The bytes of one blob that are scanned (the rest of a bigger blob is not). */
export const MAX_BLOB_BYTES = 16 * 1024 * 1024;

/**
 * Streams `oids` through one `git cat-file --batch`, calling `onObject` in input order (a
 * missing object is reported with type `missing`). Memory holds one capped object at a time.
 */
export async function readObjects(
  oids: readonly string[],
  onObject: (object: GitObject) => void,
  options: ReadObjectsOptions,
): Promise<void> {
  if (oids.length === 0) return;
  const reader = new BatchReader(options.maxObjectBytes ?? MAX_BLOB_BYTES, onObject);
  let failure: unknown;
  const push = (chunk: Buffer) => {
    if (failure !== undefined) return;
    try {
      reader.push(chunk);
    } catch (error) {
      failure = error;
    }
  };
  await git(["cat-file", "--batch"], {
    env: options.env,
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    input: `${oids.join("\n")}\n`,
    timeoutMs: options.timeoutMs,
    maxOutputBytes: Number.MAX_SAFE_INTEGER,
    onStdout: push,
  });
  if (failure !== undefined) throw failure;
  reader.end();
}

interface PendingObject {
  readonly oid: string;
  readonly type: string;
  readonly size: number;
  /** Bytes still to come: the content plus its trailing newline. */
  left: number;
  readonly kept: Buffer[];
  keptBytes: number;
}

/** Parses `cat-file --batch` output: `<oid> <type> <size>\n<content>\n` or `<oid> missing\n`. */
class BatchReader {
  readonly #cap: number;
  readonly #onObject: (object: GitObject) => void;
  #header: Buffer[] = [];
  #current: PendingObject | undefined;

  constructor(cap: number, onObject: (object: GitObject) => void) {
    this.#cap = cap;
    this.#onObject = onObject;
  }

  push(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      const current = this.#current;
      if (current === undefined) {
        const newline = chunk.indexOf(10, at);
        if (newline === -1) {
          this.#header.push(chunk.subarray(at));
          return;
        }
        this.#header.push(chunk.subarray(at, newline));
        this.#startObject(Buffer.concat(this.#header).toString("utf8"));
        this.#header = [];
        at = newline + 1;
        continue;
      }
      const take = Math.min(current.left, chunk.length - at);
      const room = Math.min(take, this.#cap - current.keptBytes);
      if (room > 0) {
        current.kept.push(chunk.subarray(at, at + room));
        current.keptBytes += room;
      }
      current.left -= take;
      at += take;
      if (current.left === 0) this.#finish(current);
    }
  }

  end(): void {
    if (this.#current !== undefined || this.#header.length > 0) {
      throw new GitGateError(
        "BTL_GITGATE_GIT",
        "git cat-file --batch ended in the middle of an object",
      );
    }
  }

  #startObject(header: string): void {
    const [oid = "", type = "", size = ""] = header.split(" ");
    if (type === "missing" || size === "") {
      this.#onObject({ oid, type: "missing", size: 0, content: Buffer.alloc(0) });
      return;
    }
    const bytes = Number(size);
    if (!Number.isSafeInteger(bytes) || bytes < 0) {
      throw new GitGateError("BTL_GITGATE_GIT", "git cat-file --batch wrote a malformed header");
    }
    this.#current = { oid, type, size: bytes, left: bytes + 1, kept: [], keptBytes: 0 };
  }

  #finish(current: PendingObject): void {
    this.#current = undefined;
    let content = Buffer.concat(current.kept);
    // The trailing newline of the batch format is not content.
    if (current.keptBytes > current.size) content = content.subarray(0, current.size);
    this.#onObject({ oid: current.oid, type: current.type, size: current.size, content });
  }
}

/** Text shorter than this in a binary blob is not scanned. */
export const MIN_RUN = 8;

/**
 * Calls `onRun` with each run of at least {@link MIN_RUN} printable ASCII characters (tab
 * included) in `bytes`, and each such run encoded as UTF-16LE, with its 1-based line (1 + the
 * newline bytes before it). Never throws, whatever the bytes.
 */
export function printableRuns(bytes: Buffer, onRun: (line: number, text: string) => void): void {
  let line = 1;
  let start = -1;
  for (let index = 0; index <= bytes.length; index++) {
    const byte = index < bytes.length ? (bytes[index] ?? 0) : 0;
    if ((byte >= 0x20 && byte < 0x7f) || byte === 9) {
      if (start === -1) start = index;
      continue;
    }
    if (start !== -1 && index - start >= MIN_RUN)
      onRun(line, bytes.toString("latin1", start, index));
    start = -1;
    if (byte === 10) line++;
  }
  utf16Runs(bytes, onRun);
}

function utf16Runs(bytes: Buffer, onRun: (line: number, text: string) => void): void {
  for (const offset of [0, 1]) {
    let line = 1;
    let run = "";
    for (let index = offset; index + 1 < bytes.length; index += 2) {
      const low = bytes[index] ?? 0;
      const high = bytes[index + 1] ?? 0;
      if (high === 0 && ((low >= 0x20 && low < 0x7f) || low === 9)) {
        run += String.fromCharCode(low);
        continue;
      }
      if (run.length >= MIN_RUN) onRun(line, run);
      run = "";
      if (high === 0 && low === 10) line++;
    }
    if (run.length >= MIN_RUN) onRun(line, run);
  }
}

/** Options of {@link scanBinaryChanges}. */
export interface BinaryScanOptions extends ReadObjectsOptions {
  readonly changes: readonly BinaryChange[];
  readonly onLine: AddedLineSink;
}

/**
 * Hands the printable runs of each changed binary's new blob that occur in none of its old
 * blobs to `onLine` (text hidden behind a NUL byte is still text). The first
 * {@link MAX_BLOB_BYTES} of each blob are read.
 */
export async function scanBinaryChanges(options: BinaryScanOptions): Promise<void> {
  const order: Array<{ change: BinaryChange; old: boolean }> = [];
  const oids: string[] = [];
  for (const change of options.changes) {
    for (const oid of change.oldBlobs) {
      order.push({ change, old: true });
      oids.push(oid);
    }
    order.push({ change, old: false });
    oids.push(change.newBlob);
  }
  let known = new Set<string>();
  let index = 0;
  await readObjects(
    oids,
    (object) => {
      const step = order[index++];
      if (step === undefined) return;
      if (step.old) {
        printableRuns(object.content, (_line, text) => known.add(text));
        return;
      }
      const old = known;
      known = new Set();
      printableRuns(object.content, (line, text) => {
        if (!old.has(text)) options.onLine(step.change.commit, step.change.file, line, text);
      });
    },
    options,
  );
}
