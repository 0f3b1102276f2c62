/**
 * The secret scan of a push: the text the pushed commits add (diffs, commit messages and
 * headers, the printable text of binaries, new tags), scanned by the built-in scanner in
 * worker threads, or by gitleaks with the built-in scanner covering what gitleaks does not
 * read. Fails closed: a crash, a timeout or unreadable output is an error, never a clean scan.
 */
import { availableParallelism } from "node:os";
import { extname } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { isBottleError } from "@bottle/errors";
import { objectTypes } from "./commits.ts";
import { type AddedLineSink, type BinaryChange, streamAddedLines } from "./diff.ts";
import { GitGateError } from "./errors.ts";
import { type Finding, fingerprintOf } from "./findings.ts";
import { findGitleaks, runGitleaks } from "./gitleaks.ts";
import { readObjects, scanBinaryChanges } from "./objects.ts";
import { compileRules, type ScanRuleSpec } from "./rules.ts";
import { git } from "./run.ts";
import type { WorkerReply, WorkerRequest, WorkerSetup } from "./scan-worker.ts";
import { type Batch, BatchBuilder, type BatchFinding } from "./scanner.ts";

export type { ScanRuleSpec } from "./rules.ts";

/** Options of {@link scanCommits}. */
export interface ScanOptions {
  readonly env: Readonly<Record<string, string>>;
  readonly cwd?: string;
  /** The commits to scan (from `newCommits` or `commitsInRange`). */
  readonly commits: readonly string[];
  /** Tag objects, trees and blobs pushed outside commits (from `newTagObjects`). */
  readonly tags?: readonly string[];
  /** Default `auto`: gitleaks when `gitleaksPath` is given or `gitleaks` is on `env.PATH`. */
  readonly scanner?: "auto" | "builtin" | "gitleaks";
  readonly gitleaksPath?: string;
  /** The manifest's `git_gate.scan.rules`. */
  readonly rules?: readonly ScanRuleSpec[];
  /** Fingerprints whose findings are allowed (the manifest's `git_gate.scan.allowlist`). */
  readonly allowlist?: readonly string[];
  /** Default 60 000. */
  readonly timeoutMs?: number;
}

/** What a scan found and what it cost. */
export interface ScanResult {
  readonly scanner: "builtin" | "gitleaks";
  readonly findings: readonly Finding[];
  /** Findings whose fingerprint is in the allowlist. */
  readonly allowed: readonly Finding[];
  readonly commits: number;
  /** Bytes of added text the built-in scanner read. */
  readonly bytes: number;
  readonly durationMs: number;
}

/** Pseudo-paths of pushed objects that are not commits. */
export const TAG_HEADER = "(tag header)";
export const TAG_MESSAGE = "(tag message)";
export const PUSHED_BLOB = "(blob)";

const DEFAULT_TIMEOUT_MS = 60_000;
const OID = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

/**
 * Scans what `commits` (and `tags`) add. Throws `GitGateError` BTL_GITGATE_CONFIG for invalid
 * options (a bad operator regex, a malformed commit id, gitleaks required but not found), and
 * BTL_GITGATE_SCANNER_FAILED when the scanner crashes, times out, or its output cannot be
 * read (fail closed).
 */
export async function scanCommits(options: ScanOptions): Promise<ScanResult> {
  const started = performance.now();
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw new GitGateError(
      "BTL_GITGATE_CONFIG",
      `Expected \`timeoutMs\` to be a positive number, got ${timeoutMs}`,
    );
  }
  const rules = options.rules ?? [];
  compileRules(rules); // invalid rules fail here, before anything runs
  if (![...options.commits, ...(options.tags ?? [])].every((oid) => OID.test(oid))) {
    throw new GitGateError(
      "BTL_GITGATE_CONFIG",
      "Expected commit and tag ids to be full hex object ids",
    );
  }
  const gitleaks = await selectGitleaks(options);
  if (options.commits.length === 0 && (options.tags ?? []).length === 0) {
    // A push of deletes or of existing commits: nothing to read, no thread to start.
    const scanner = gitleaks === undefined ? "builtin" : "gitleaks";
    const durationMs = Math.round(performance.now() - started);
    return { scanner, findings: [], allowed: [], commits: 0, bytes: 0, durationMs };
  }
  const controller = new AbortController();
  const deadline = Date.now() + timeoutMs;
  const work = scan(options, rules, gitleaks, deadline, controller.signal);
  work.catch(() => {}); // settled after a timeout: nobody awaits it any more
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(failed(`the secret scan timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  let outcome: Awaited<typeof work>;
  try {
    outcome = await Promise.race([work, timeout]);
  } catch (error) {
    const code = isBottleError(error) ? error.code : undefined;
    throw code === "BTL_GITGATE_CONFIG" || code === "BTL_GITGATE_SCANNER_FAILED"
      ? error
      : failed("the secret scan failed", error);
  } finally {
    clearTimeout(timer);
    // Stops the worker threads at once; git children end at the deadline (their own timeout).
    controller.abort();
  }
  const findings = order(dedupe(outcome.findings), options);
  const allow = new Set(options.allowlist ?? []);
  return {
    scanner: gitleaks === undefined ? "builtin" : "gitleaks",
    findings: findings.filter((finding) => !allow.has(finding.fingerprint)),
    allowed: findings.filter((finding) => allow.has(finding.fingerprint)),
    commits: options.commits.length,
    bytes: outcome.bytes,
    durationMs: Math.round(performance.now() - started),
  };
}

async function selectGitleaks(options: ScanOptions): Promise<string | undefined> {
  const scanner = options.scanner ?? "auto";
  if (scanner === "builtin") return undefined;
  const found = options.gitleaksPath ?? (await findGitleaks(options.env.PATH));
  if (found === undefined && scanner === "gitleaks") {
    throw new GitGateError(
      "BTL_GITGATE_CONFIG",
      "the gitleaks scanner is required, but no `gitleaks` is on PATH",
    );
  }
  return found;
}

interface Outcome {
  readonly findings: readonly BatchFinding[];
  readonly bytes: number;
}

async function scan(
  options: ScanOptions,
  rules: readonly ScanRuleSpec[],
  gitleaks: string | undefined,
  deadline: number,
  signal: AbortSignal,
): Promise<Outcome> {
  if (gitleaks === undefined) return runBuiltin(options, rules, "full", deadline, signal);
  const [leaks, builtin] = await Promise.all([
    runGitleaks({
      env: options.env,
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
      commits: options.commits,
      executable: gitleaks,
      timeoutMs: deadline - Date.now(),
    }),
    runBuiltin(options, rules, "supplement", deadline, signal),
  ]);
  return { findings: [...leaks, ...builtin.findings], bytes: builtin.bytes };
}

/**
 * `full`: secretlint and the regex rules over everything. `supplement` (next to gitleaks):
 * the regex rules (bottle's and the operator's) over the ordinary diffs gitleaks reads, and
 * everything over what it does not: commit messages and headers, merges' own lines, binaries,
 * tags.
 */
async function runBuiltin(
  options: ScanOptions,
  rules: readonly ScanRuleSpec[],
  mode: "full" | "supplement",
  deadline: number,
  signal: AbortSignal,
): Promise<Outcome> {
  const pool = new WorkerPool(mode === "full" ? workerCount() : 1, rules, signal);
  try {
    const work = feed(options, mode, deadline, pool);
    // A crashed worker ends the scan at once, not when git is done.
    const result = await Promise.race([work, pool.failure]);
    return { findings: await Promise.race([pool.drain(), pool.failure]), bytes: result.bytes };
  } finally {
    await pool.terminate();
  }
}

async function feed(
  options: ScanOptions,
  mode: "full" | "supplement",
  deadline: number,
  pool: WorkerPool,
): Promise<{ bytes: number }> {
  let bytes = 0;
  let sinkError: unknown;
  const onBatch = (batch: Batch) => {
    bytes += Buffer.byteLength(batch.text) + 1;
    pool.submit(batch);
  };
  const full = new BatchBuilder("full", onBatch);
  const regex = new BatchBuilder("regex", onBatch);
  // The sinks run inside git's stdout handler: an exception there must not escape.
  const guard =
    (builder: BatchBuilder): AddedLineSink =>
    (commit, file, line, text) => {
      if (sinkError !== undefined) return;
      try {
        builder.add(commit, file, line, text);
      } catch (error) {
        sinkError = error;
      }
    };
  const onLine = guard(full);
  const base = { env: options.env, ...(options.cwd === undefined ? {} : { cwd: options.cwd }) };
  const remaining = () => Math.max(1, deadline - Date.now());
  const binaries = await streamAddedLines({
    ...base,
    commits: options.commits,
    onLine,
    ...(mode === "supplement" ? { onPlainLine: guard(regex) } : {}),
    timeoutMs: remaining(),
  });
  regex.flush();
  await scanBinaryChanges({ ...base, changes: binaries, onLine, timeoutMs: remaining() });
  await scanPushedObjects(options.tags ?? [], onLine, { ...base, timeoutMs: remaining() });
  full.flush();
  if (sinkError !== undefined) throw sinkError;
  return { bytes };
}

/** Tags (header and message), and blobs and trees pushed outside commits. */
async function scanPushedObjects(
  oids: readonly string[],
  onLine: AddedLineSink,
  options: { env: Readonly<Record<string, string>>; cwd?: string; timeoutMs: number },
): Promise<void> {
  if (oids.length === 0) return;
  const types = await objectTypes(options, oids);
  const tags: string[] = [];
  const blobs: BinaryChange[] = [];
  for (const [index, oid] of oids.entries()) {
    const type = types[index];
    if (type === "tag") tags.push(oid);
    else if (type === "blob")
      blobs.push({ commit: oid, file: PUSHED_BLOB, oldBlobs: [], newBlob: oid });
    else if (type === "tree") blobs.push(...(await newBlobsOf(oid, options)));
  }
  await readObjects(
    tags,
    (object) => {
      const text = object.content.toString("utf8");
      const split = text.indexOf("\n\n");
      const header = split === -1 ? text : text.slice(0, split);
      const message = split === -1 ? "" : text.slice(split + 2);
      for (const [index, line] of header.split("\n").entries())
        onLine(object.oid, TAG_HEADER, index + 1, line);
      for (const [index, line] of message.split("\n").entries())
        onLine(object.oid, TAG_MESSAGE, index + 1, line);
    },
    options,
  );
  await scanBinaryChanges({ ...options, changes: blobs, onLine });
}

/** The blobs under `tree` that no existing ref reaches, with their paths. */
async function newBlobsOf(
  tree: string,
  options: { env: Readonly<Record<string, string>>; cwd?: string; timeoutMs: number },
): Promise<BinaryChange[]> {
  const listed = await git(["rev-list", "--objects", "--stdin", "--not", "--all"], {
    ...options,
    input: `${tree}\n`,
  });
  const entries = listed.stdout
    .toString("utf8")
    .split("\n")
    .map((line) => [line.slice(0, line.indexOf(" ")), line.slice(line.indexOf(" ") + 1)] as const)
    .filter(([oid]) => OID.test(oid));
  const types = await objectTypes(
    options,
    entries.map(([oid]) => oid),
  );
  return entries
    .filter((_, index) => types[index] === "blob")
    .map(([oid, path]) => ({ commit: tree, file: path, oldBlobs: [], newBlob: oid }));
}

function workerCount(): number {
  return Math.max(1, Math.min(2, availableParallelism()));
}

/** The worker module next to this one, `.ts` under a TypeScript runner, `.js` once built. */
function workerUrl(): URL {
  const extension = extname(fileURLToPath(import.meta.url)) || ".js";
  return new URL(`./scan-worker${extension}`, import.meta.url);
}

/** Worker threads that scan batches, round robin; terminated on abort. */
class WorkerPool {
  readonly #workers: Worker[] = [];
  readonly #findings: BatchFinding[] = [];
  #next = 0;
  #outstanding = 0;
  #closing = false;
  #failed = false;
  #fail!: (error: GitGateError) => void;
  #drained: (() => void) | undefined;
  /** Rejects when a worker crashes or fails a batch; never resolves. */
  readonly failure: Promise<never>;

  constructor(count: number, rules: readonly ScanRuleSpec[], signal: AbortSignal) {
    this.failure = new Promise<never>((_, reject) => {
      this.#fail = (error) => {
        if (this.#failed) return;
        this.#failed = true;
        reject(error);
      };
    });
    this.failure.catch(() => {});
    const workerData: WorkerSetup = { rules };
    for (let index = 0; index < count; index++) {
      const worker = new Worker(workerUrl(), {
        workerData,
        stdout: true,
        stderr: true,
        resourceLimits: { maxOldGenerationSizeMb: 1024 },
      });
      worker.stdout.resume();
      worker.stderr.resume();
      worker.on("message", (reply: WorkerReply) => this.#reply(reply));
      worker.on("error", (error) => this.#fail(failed("the built-in scanner crashed", error)));
      worker.on("exit", (code) => {
        if (!this.#closing) this.#fail(failed(`the built-in scanner stopped (exit code ${code})`));
      });
      this.#workers.push(worker);
    }
    signal.addEventListener("abort", () => void this.terminate(), { once: true });
  }

  submit(batch: Batch): void {
    if (this.#closing || this.#failed) return;
    const worker = this.#workers[this.#next++ % this.#workers.length];
    if (worker === undefined) return;
    this.#outstanding++;
    const request: WorkerRequest = { id: this.#next, batch };
    worker.postMessage(request, [batch.lineStarts.buffer, batch.lineNumbers.buffer]);
  }

  /** Resolves with every finding once all submitted batches are scanned. */
  drain(): Promise<BatchFinding[]> {
    if (this.#outstanding === 0) return Promise.resolve(this.#findings);
    return new Promise((resolve) => {
      this.#drained = () => resolve(this.#findings);
    });
  }

  async terminate(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    await Promise.all(this.#workers.map((worker) => worker.terminate()));
  }

  #reply(reply: WorkerReply): void {
    this.#outstanding--;
    if ("error" in reply) {
      this.#fail(failed("the built-in scanner failed on a batch", new Error(reply.error)));
      return;
    }
    this.#findings.push(...reply.findings);
    if (this.#outstanding === 0) this.#drained?.();
  }
}

/** One finding per secret and place: the same text reported twice (by overlapping batches, or
 * by gitleaks and the regex rules) is kept once, the first report winning. */
function dedupe(raw: readonly BatchFinding[]): Finding[] {
  const seen = new Set<string>();
  const findings: Finding[] = [];
  for (const finding of raw) {
    const key = `${finding.commit}\0${finding.file}\0${finding.line}\0${finding.redacted}`;
    if (seen.has(key)) continue;
    seen.add(key);
    findings.push({ ...finding, fingerprint: fingerprintOf(finding) });
  }
  return findings;
}

/** Findings in push order (commits as given, then tags), then by file, line and rule. */
function order(findings: Finding[], options: ScanOptions): Finding[] {
  const rank = new Map<string, number>();
  for (const oid of [...options.commits, ...(options.tags ?? [])])
    if (!rank.has(oid)) rank.set(oid, rank.size);
  const position = (oid: string) => rank.get(oid) ?? rank.size;
  return findings.sort(
    (a, b) =>
      position(a.commit) - position(b.commit) ||
      (a.file < b.file ? -1 : a.file > b.file ? 1 : 0) ||
      a.line - b.line ||
      (a.rule < b.rule ? -1 : a.rule > b.rule ? 1 : 0),
  );
}

function failed(message: string, cause?: unknown): GitGateError {
  return new GitGateError(
    "BTL_GITGATE_SCANNER_FAILED",
    message,
    cause === undefined ? {} : { cause },
  );
}
