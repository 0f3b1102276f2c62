/**
 * Objects a push adds, read with `git cat-file --batch` and streamed: every byte of a blob is
 * read (no cut-off), as text lines, and a line holding a NUL byte by its printable runs (so a
 * NUL byte cannot hide a secret from the scan). Long lines go out in overlapping pieces.
 */
import { createHash } from "node:crypto";
import type { AddedLineSink, BinaryChange } from "./diff.ts";
import { ScanError } from "./errors.ts";
import { git, parsingStdout } from "./run.ts";

/** An object read whole by {@link readObjects}. */
export interface GitObject {
  readonly oid: string;
  readonly type: string;
  readonly size: number;
  readonly content: Buffer;
}

/** Receives an object as it streams: its header, its content in chunks, its end. */
export interface ObjectHandler {
  readonly start: (oid: string, type: string, size: number) => void;
  readonly data: (chunk: Buffer) => void;
  readonly end: () => void;
}

/** Options of {@link readObjects} and {@link streamObjects}. */
export interface ReadObjectsOptions {
  readonly env: Readonly<Record<string, string>>;
  readonly cwd?: string;
  readonly timeoutMs: number;
}

/**
 * Streams `oids` through one `git cat-file --batch`, in input order. A missing object is an
 * error (the scan must read everything it forwards). Throws `ScanError` BTL_SCAN_GIT.
 */
export async function streamObjects(
  oids: readonly string[],
  handler: ObjectHandler,
  options: ReadObjectsOptions,
): Promise<void> {
  if (oids.length === 0) return;
  const reader = new BatchReader(handler);
  const stdout = parsingStdout((chunk) => reader.push(chunk));
  await git(["cat-file", "--batch"], {
    env: options.env,
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    input: `${oids.join("\n")}\n`,
    timeoutMs: options.timeoutMs,
    maxOutputBytes: Number.MAX_SAFE_INTEGER,
    onStdout: stdout.onStdout,
  });
  stdout.rethrow();
  reader.end();
}

/** {@link streamObjects}, each object collected whole (for commits, tags and trees). */
export async function readObjects(
  oids: readonly string[],
  onObject: (object: GitObject) => void,
  options: ReadObjectsOptions,
): Promise<void> {
  let header = { oid: "", type: "", size: 0 };
  let chunks: Buffer[] = [];
  await streamObjects(
    oids,
    {
      start: (oid, type, size) => {
        header = { oid, type, size };
        chunks = [];
      },
      data: (chunk) => chunks.push(chunk),
      end: () => onObject({ ...header, content: Buffer.concat(chunks) }),
    },
    options,
  );
}

/** Parses `cat-file --batch` output: `<oid> <type> <size>\n<content>\n` or `<oid> missing\n`. */
class BatchReader {
  readonly #handler: ObjectHandler;
  #header: Buffer[] = [];
  /** Bytes still to come of the current object, its trailing newline included; -1: none. */
  #left = -1;

  constructor(handler: ObjectHandler) {
    this.#handler = handler;
  }

  push(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.#left === -1) {
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
      const take = Math.min(this.#left, chunk.length - at);
      // The last byte of an object is the batch format's newline, not content.
      const content = Math.min(take, this.#left - 1);
      if (content > 0) this.#handler.data(chunk.subarray(at, at + content));
      this.#left -= take;
      at += take;
      if (this.#left === 0) {
        this.#left = -1;
        this.#handler.end();
      }
    }
  }

  end(): void {
    if (this.#left !== -1 || this.#header.length > 0) {
      throw new ScanError("BTL_SCAN_GIT", "git cat-file --batch ended in the middle of an object");
    }
  }

  #startObject(header: string): void {
    const [oid = "", type = "", size = ""] = header.split(" ");
    if (type === "missing" || size === "") {
      throw new ScanError("BTL_SCAN_GIT", `object ${oid.slice(0, 40)} is missing`);
    }
    const bytes = Number(size);
    if (!Number.isSafeInteger(bytes) || bytes < 0) {
      throw new ScanError("BTL_SCAN_GIT", "git cat-file --batch wrote a malformed header");
    }
    this.#handler.start(oid, type, bytes);
    this.#left = bytes + 1;
  }
}

/** Text shorter than this in binary data is not scanned. */
export const MIN_RUN = 8;
/** A line longer than this goes out in pieces of this size. */
export const MAX_PIECE = 1024 * 1024;
/**
 * How much consecutive pieces of one long line share: longer than any rule's match (the
 * longest built-in one, a GitHub App token, is about 4 KiB), so a secret is whole in one piece.
 */
export const PIECE_OVERLAP = 64 * 1024;

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

/**
 * Splits streamed bytes into lines and hands each to `onText` with its 1-based line number: as
 * UTF-8 text, or, when the line holds a NUL byte (binary data, UTF-16 text), as its printable
 * runs. A line longer than {@link MAX_PIECE} goes out in pieces that overlap by
 * {@link PIECE_OVERLAP}, so memory stays bounded and no secret is cut in two. Empty lines are
 * skipped.
 */
export class ContentStream {
  readonly #onText: (line: number, text: string) => void;
  #pending: Buffer[] = [];
  #size = 0;
  #line = 1;

  constructor(onText: (line: number, text: string) => void) {
    this.#onText = onText;
  }

  push(chunk: Buffer): void {
    let from = 0;
    for (let at = chunk.indexOf(10, from); at !== -1; at = chunk.indexOf(10, from)) {
      this.#append(chunk.subarray(from, at));
      this.#emit(true);
      from = at + 1;
    }
    if (from < chunk.length) this.#append(chunk.subarray(from));
  }

  /** Flushes the last line (one without a final newline). */
  end(): void {
    if (this.#size > 0) this.#emit(true);
  }

  #append(bytes: Buffer): void {
    let at = 0;
    while (at < bytes.length) {
      const take = Math.min(bytes.length - at, MAX_PIECE - this.#size);
      this.#pending.push(bytes.subarray(at, at + take));
      this.#size += take;
      at += take;
      if (this.#size >= MAX_PIECE) this.#emit(false);
    }
  }

  #emit(complete: boolean): void {
    const bytes =
      this.#pending.length === 1 ? (this.#pending[0] as Buffer) : Buffer.concat(this.#pending);
    const line = this.#line;
    if (bytes.length > 0) {
      if (bytes.includes(0)) printableRuns(bytes, (_line, text) => this.#onText(line, text));
      else this.#onText(line, bytes.toString("utf8"));
    }
    if (complete) {
      this.#pending = [];
      this.#size = 0;
      this.#line++;
    } else {
      // Copied: the overlap must not pin the whole piece's chunks in memory.
      const overlap = Buffer.from(bytes.subarray(bytes.length - PIECE_OVERLAP));
      this.#pending = [overlap];
      this.#size = overlap.length;
    }
  }
}

/** Options of {@link scanBlobs}. */
export interface BlobScanOptions extends ReadObjectsOptions {
  /** Each new blob with the blob(s) it replaced; text also in an old blob is not reported. */
  readonly changes: readonly BinaryChange[];
  readonly onLine: AddedLineSink;
}

/**
 * Streams every byte of each change's new blob through a {@link ContentStream} and hands
 * `onLine` each line or printable run that occurs in none of its old blobs (read the same way
 * first). Old text is remembered by value, or by digest when long, so memory stays small.
 */
export async function scanBlobs(options: BlobScanOptions): Promise<void> {
  const steps: Array<{ change: BinaryChange; old: boolean }> = [];
  const oids: string[] = [];
  for (const change of options.changes) {
    for (const oid of change.oldBlobs) {
      steps.push({ change, old: true });
      oids.push(oid);
    }
    steps.push({ change, old: false });
    oids.push(change.newBlob);
  }
  let known = new Set<string>();
  let index = 0;
  let stream: ContentStream | undefined;
  await streamObjects(
    oids,
    {
      start: () => {
        const step = steps[index++];
        if (step === undefined) return;
        if (step.old) {
          stream = new ContentStream((_line, text) => known.add(keyOf(text)));
          return;
        }
        const old = known;
        known = new Set();
        const { commit, file } = step.change;
        stream = new ContentStream((line, text) => {
          if (old.size === 0 || !old.has(keyOf(text))) options.onLine(commit, file, line, text);
        });
      },
      data: (chunk) => stream?.push(chunk),
      end: () => stream?.end(),
    },
    options,
  );
}

function keyOf(text: string): string {
  return text.length <= 64 ? text : createHash("sha256").update(text).digest("base64");
}
