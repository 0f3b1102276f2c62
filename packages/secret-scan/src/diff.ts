/**
 * The text a push adds: one `git log -p` over exactly the pushed commits, parsed as it streams
 * (plain and combined hunks, quoted paths, renames; binary files are collected for
 * `objects.ts`). Commit objects themselves are read raw elsewhere (scan.ts), never through a
 * log format that would re-encode their messages.
 */
import { randomBytes } from "node:crypto";
import { StringDecoder } from "node:string_decoder";
import { git, parsingStdout } from "./run.ts";

/** Receives one added line: its commit, path, 1-based line number and text. */
export type AddedLineSink = (commit: string, file: string, line: number, text: string) => void;

/** A binary file a commit changed: its new blob and the blob(s) it replaced. */
export interface BinaryChange {
  readonly commit: string;
  readonly file: string;
  /** The old side (one per parent of a merge); zero ids left out. */
  readonly oldBlobs: readonly string[];
  readonly newBlob: string;
}

/** What {@link DiffParser} does with each kind of added line. */
export interface DiffParserOptions {
  /** The random marker of the log format (see {@link logFormat}). */
  readonly nonce: string;
  readonly onLine: AddedLineSink;
}

/**
 * The `--format` of the log: a start marker with the commit id, nothing else (the commit
 * object is scanned raw). SECURITY: the marker holds a random nonce, so no file content can
 * forge a commit boundary.
 */
export function logFormat(nonce: string): string {
  return `%x00${nonce}%x00%H`;
}

const ZERO = /^0+$/;
const PLAIN_HUNK = /^@@ -\d+(?:,\d+)? \+(\d+)(?:,\d+)? @@/;
const COMBINED_HUNK = /^(@{3,}) (?:-\d+(?:,\d+)? )+\+(\d+)(?:,\d+)? @{3,}/;

interface FileState {
  readonly combined: boolean;
  readonly headerPath: string | undefined;
  renameTo?: string;
  plusPath?: string;
  oldBlobs: string[];
  newBlob?: string;
  binary: boolean;
}

type Mode = "idle" | "diff" | "hunk";

/**
 * Parses `git log -p` output in the format of {@link logFormat} and hands every added line to
 * its sink: lines added by plain hunks, and lines of combined (merge) hunks that are in no
 * parent. Binary files are collected for `scanBlobs` (objects.ts); the new blob of every file
 * diffed is recorded in {@link DiffParser.covered}.
 */
export class DiffParser {
  readonly #options: DiffParserOptions;
  readonly #start: string;
  readonly #decoder = new StringDecoder("utf8");
  /** The start of a line whose end has not arrived (kept in pieces: a line can be huge). */
  #pending: string[] = [];
  #mode: Mode = "idle";
  #commit = "";
  #file: FileState | undefined;
  #path = "";
  #line = 0;
  #columns = 0;
  readonly #binaries: BinaryChange[] = [];
  /** The new blob of every file diffed: its added text went to the sink or is a binary. */
  readonly covered = new Set<string>();

  constructor(options: DiffParserOptions) {
    this.#options = options;
    this.#start = `\0${options.nonce}\0`;
  }

  /** Feeds a chunk of git's stdout. */
  push(chunk: Buffer): void {
    const text = this.#decoder.write(chunk);
    let at = text.indexOf("\n");
    if (at === -1) {
      if (text !== "") this.#pending.push(text);
      return;
    }
    this.#pending.push(text.slice(0, at));
    this.#handle(this.#pending.join(""));
    this.#pending = [];
    let from = at + 1;
    for (at = text.indexOf("\n", from); at !== -1; at = text.indexOf("\n", from)) {
      this.#handle(text.slice(from, at));
      from = at + 1;
    }
    if (from < text.length) this.#pending.push(text.slice(from));
  }

  /** Ends the stream; returns the binary files seen. */
  end(): BinaryChange[] {
    const rest = this.#pending.join("") + this.#decoder.end();
    this.#pending = [];
    if (rest !== "") this.#handle(rest);
    this.#finishFile();
    return this.#binaries;
  }

  #handle(line: string): void {
    switch (this.#mode) {
      case "hunk": {
        const prefix = line.charCodeAt(0);
        // '+', '-', ' ', '\': inside a hunk every line starts with one of them.
        if (prefix === 43 || prefix === 45 || prefix === 32 || prefix === 92) {
          this.#hunkLine(line);
          return;
        }
        break;
      }
      default:
        break;
    }
    this.#diffLine(line);
  }

  #diffLine(line: string): void {
    if (line.startsWith(this.#start)) {
      this.#finishFile();
      this.#commit = line.slice(this.#start.length).trim();
      this.#mode = "diff";
      return;
    }
    if (this.#mode === "idle") return;
    if (line.startsWith("diff --git ")) {
      this.#startFile(false, parseGitHeader(line.slice(11)));
      return;
    }
    if (line.startsWith("diff --combined ") || line.startsWith("diff --cc ")) {
      this.#startFile(true, unquote(line.slice(line.indexOf(" ", 7) + 1)));
      return;
    }
    const file = this.#file;
    if (file === undefined) return;
    if (line.startsWith("@@")) {
      this.#startHunk(file, line);
    } else if (line.startsWith("rename to ")) {
      const path = unquote(line.slice(10));
      if (path !== undefined) file.renameTo = path;
    } else if (line.startsWith("+++ ")) {
      const path = unquote(stripTab(line.slice(4)));
      if (path !== undefined && path !== "/dev/null") file.plusPath = stripPrefix(path, "b/");
    } else if (line.startsWith("index ")) {
      const [from = "", to = ""] = line.slice(6).split(" ")[0]?.split("..") ?? [];
      file.oldBlobs = from.split(",").filter((oid) => oid !== "" && !ZERO.test(oid));
      file.newBlob = to;
      if (to !== "" && !ZERO.test(to)) this.covered.add(to);
    } else if (line.startsWith("Binary files ")) {
      file.binary = true;
    }
  }

  #startFile(combined: boolean, headerPath: string | undefined): void {
    this.#finishFile();
    this.#file = { combined, headerPath, oldBlobs: [], binary: false };
    this.#mode = "diff";
  }

  #finishFile(): void {
    const file = this.#file;
    this.#file = undefined;
    if (file === undefined || !file.binary) return;
    const newBlob = file.newBlob;
    if (newBlob === undefined || newBlob === "" || ZERO.test(newBlob)) return;
    this.#binaries.push({
      commit: this.#commit,
      file: pathOf(file),
      oldBlobs: file.oldBlobs,
      newBlob,
    });
  }

  #startHunk(file: FileState, line: string): void {
    this.#path = pathOf(file);
    if (file.combined) {
      const match = COMBINED_HUNK.exec(line);
      if (match === null) return;
      this.#columns = (match[1]?.length ?? 3) - 1;
      this.#line = Number(match[2]);
    } else {
      const match = PLAIN_HUNK.exec(line);
      if (match === null) return;
      this.#columns = 1;
      this.#line = Number(match[1]);
    }
    this.#mode = "hunk";
  }

  #hunkLine(line: string): void {
    const columns = this.#columns;
    if (columns === 1) {
      const prefix = line.charCodeAt(0);
      if (prefix === 43) {
        this.#options.onLine(this.#commit, this.#path, this.#line++, line.slice(1));
      } else if (prefix === 32) {
        this.#line++;
      }
      return;
    }
    // Combined: one column per parent. '-' anywhere: not in the result. All '+': in no
    // parent, so the merge itself added it. Anything else came from a parent.
    if (line.charCodeAt(0) === 92) return;
    let added = true;
    for (let index = 0; index < columns; index++) {
      const column = line.charCodeAt(index);
      if (column === 45) return;
      if (column !== 43) added = false;
    }
    if (added) this.#options.onLine(this.#commit, this.#path, this.#line, line.slice(columns));
    this.#line++;
  }
}

function pathOf(file: FileState): string {
  return file.plusPath ?? file.renameTo ?? file.headerPath ?? "(unknown path)";
}

function stripTab(text: string): string {
  // git ends `--- a/x y` and `+++ b/x y` with a tab when the (unquoted) name holds a space.
  return text.endsWith("\t") && !text.startsWith('"') ? text.slice(0, -1) : text;
}

function stripPrefix(path: string, prefix: string): string {
  return path.startsWith(prefix) ? path.slice(prefix.length) : path;
}

/**
 * The new path from `a/<old> b/<new>` (each part C-quoted when needed). Without quotes and
 * without a rename both halves are equal, which settles names that contain ` b/`.
 */
export function parseGitHeader(rest: string): string | undefined {
  if (rest.startsWith('"')) {
    const first = readQuoted(rest, 0);
    if (first === undefined) return undefined;
    const second = rest.slice(first.end + 1);
    return stripPrefix(
      (second.startsWith('"') ? readQuoted(second, 0)?.value : second) ?? "",
      "b/",
    );
  }
  if (rest.endsWith('"')) {
    const open = rest.lastIndexOf(' "');
    const quoted = open === -1 ? undefined : readQuoted(rest, open + 1);
    if (quoted !== undefined) return stripPrefix(quoted.value, "b/");
  }
  const half = (rest.length - 1) / 2;
  if (Number.isInteger(half) && rest.slice(0, half).startsWith("a/")) {
    const [left, right] = [rest.slice(2, half), rest.slice(half + 3)];
    if (left === right && rest.slice(half, half + 3) === " b/") return right;
  }
  const split = rest.indexOf(" b/");
  return split === -1 ? undefined : rest.slice(split + 3);
}

/** `text` unquoted when it is a C-quoted git path, else as is. */
export function unquote(text: string): string | undefined {
  if (!text.startsWith('"')) return text;
  return readQuoted(text, 0)?.value;
}

const ESCAPES: Readonly<Record<string, number>> = {
  a: 7,
  b: 8,
  t: 9,
  n: 10,
  v: 11,
  f: 12,
  r: 13,
  '"': 34,
  "\\": 92,
};

/** Reads the C-quoted string that starts at `text[at]` (git's `quote_c_style`). */
function readQuoted(text: string, at: number): { value: string; end: number } | undefined {
  const bytes: number[] = [];
  for (let index = at + 1; index < text.length; index++) {
    const char = text[index] ?? "";
    if (char === '"') return { value: Buffer.from(bytes).toString("utf8"), end: index + 1 };
    if (char !== "\\") {
      bytes.push(...Buffer.from(char, "utf8"));
      continue;
    }
    const next = text[index + 1] ?? "";
    const octal = /^[0-3][0-7]{2}$/.exec(text.slice(index + 1, index + 4));
    if (octal !== null) {
      bytes.push(Number.parseInt(octal[0], 8));
      index += 3;
    } else if (ESCAPES[next] !== undefined) {
      bytes.push(ESCAPES[next]);
      index += 1;
    } else {
      return undefined;
    }
  }
  return undefined;
}

/** Options of {@link streamAddedLines}. */
export interface StreamOptions {
  readonly env: Readonly<Record<string, string>>;
  readonly cwd?: string;
  readonly commits: readonly string[];
  readonly onLine: AddedLineSink;
  readonly timeoutMs: number;
  /** git's stdout beyond this is an error (default 1 GiB). */
  readonly maxOutputBytes?: number;
}

/** What {@link streamAddedLines} leaves to read as objects. */
export interface AddedLinesResult {
  /** Binary files changed: their blobs are read by `scanBlobs`. */
  readonly binaries: readonly BinaryChange[];
  /** The new blob of every file diffed (text or binary). */
  readonly covered: ReadonlySet<string>;
}

/**
 * Streams the added lines of exactly `commits` (in that order) to the sink; returns the binary
 * files they change and the blobs the diff covered. Throws `ScanError` BTL_SCAN_GIT when
 * git fails or times out.
 */
export async function streamAddedLines(options: StreamOptions): Promise<AddedLinesResult> {
  // An empty --stdin would mean HEAD.
  if (options.commits.length === 0) return { binaries: [], covered: new Set() };
  const nonce = randomBytes(12).toString("hex");
  const parser = new DiffParser({ nonce, onLine: options.onLine });
  const stdout = parsingStdout((chunk) => parser.push(chunk));
  await git(
    [
      // Settings a repository's own config could change under us.
      "-c",
      "core.quotePath=true",
      "-c",
      "diff.suppressBlankEmpty=false",
      "log",
      "--no-walk=unsorted",
      "--stdin",
      "-p",
      "--root",
      "-U0",
      "--inter-hunk-context=0",
      "--full-index",
      "-M",
      "--no-color",
      "--no-ext-diff",
      "--no-textconv",
      "--no-relative",
      "--no-show-signature",
      "--no-mailmap",
      "--diff-merges=combined",
      "--src-prefix=a/",
      "--dst-prefix=b/",
      `--format=${logFormat(nonce)}`,
    ],
    {
      env: options.env,
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
      input: `${options.commits.join("\n")}\n`,
      timeoutMs: options.timeoutMs,
      maxOutputBytes: options.maxOutputBytes ?? 1024 * 1024 * 1024,
      onStdout: stdout.onStdout,
    },
  );
  stdout.rethrow();
  return { binaries: parser.end(), covered: parser.covered };
}
