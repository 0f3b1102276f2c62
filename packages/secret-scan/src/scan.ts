/**
 * The secret scan of a push: everything it adds (see feed.ts), scanned by the built-in scanner
 * in worker threads, and by gitleaks as well when it is chosen (it adds rules, never removes
 * coverage). Fails closed: a crash, a timeout or unreadable output is an error, never a clean
 * scan.
 */
import { availableParallelism } from "node:os";
import { extname } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { isBottleError } from "@bottle/errors";
import type { AddedLineSink } from "./diff.ts";
import { ScanError } from "./errors.ts";
import { feedPush, MAX_OBJECT_BYTES } from "./feed.ts";
import { type Finding, fingerprintOf, redact } from "./findings.ts";
import { findGitleaks, GitleaksWorkspace } from "./gitleaks.ts";
import { printableRuns } from "./objects.ts";
import { compileRules, type ScanRuleSpec } from "./rules.ts";
import type { WorkerReply, WorkerRequest, WorkerSetup } from "./scan-worker.ts";
import { type Batch, BatchBuilder, type BatchFinding, placeOf } from "./scanner.ts";

export type { ScanRuleSpec } from "./rules.ts";

/** Options of {@link scanCommits}. */
export interface ScanOptions {
  readonly env: Readonly<Record<string, string>>;
  readonly cwd?: string;
  /** The commits to scan (from `newCommits` or `commitsInRange`). */
  readonly commits: readonly string[];
  /** Tag objects, trees and blobs pushed outside commits (from `newTagObjects`). */
  readonly tags?: readonly string[];
  /** The refs a push updates: their names are scanned too. */
  readonly refs?: ReadonlyArray<{ readonly ref: string; readonly newOid: string }>;
  /**
   * What is already known, and so not read again: `refs` (default), what the repository's
   * branches and tags reach (a pre-receive hook); `parents`, what the parents of `commits`
   * outside them reach (a range of a local repository).
   */
  readonly since?: "refs" | "parents";
  /** Default `auto`: gitleaks when `gitleaksPath` is given or `gitleaks` is on `env.PATH`. */
  readonly scanner?: "auto" | "builtin" | "gitleaks";
  readonly gitleaksPath?: string;
  /** The manifest's `git_gate.scan.rules`. */
  readonly rules?: readonly ScanRuleSpec[];
  /** Fingerprints whose findings are allowed (the manifest's `git_gate.scan.allowlist`). */
  readonly allowlist?: readonly string[];
  /** An object larger than this refuses the scan (default 256 MiB). */
  readonly maxObjectBytes?: number;
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
  /** Objects read (commits, tags, trees, blobs). */
  readonly objects: number;
  /** Bytes of text the built-in scanner read. */
  readonly bytes: number;
  readonly durationMs: number;
  /** `text` with every secret found replaced by its redacted form (for ref names in logs). */
  readonly mask: (text: string) => string;
}

const DEFAULT_TIMEOUT_MS = 60_000;
const OID = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

/**
 * Scans what `commits` (and `tags`, and `refs`) add. Throws `ScanError` BTL_SCAN_CONFIG
 * for invalid options (a bad operator regex, a malformed commit id, gitleaks required but not
 * found), BTL_SCAN_OBJECT_TOO_LARGE for an object above `maxObjectBytes`, and
 * BTL_SCAN_FAILED when the scanner crashes, times out, or its output cannot be
 * read (fail closed).
 */
export async function scanCommits(options: ScanOptions): Promise<ScanResult> {
  const started = performance.now();
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw new ScanError(
      "BTL_SCAN_CONFIG",
      `Expected \`timeoutMs\` to be a positive number, got ${timeoutMs}`,
    );
  }
  const maxObjectBytes = options.maxObjectBytes ?? MAX_OBJECT_BYTES;
  if (!Number.isSafeInteger(maxObjectBytes) || maxObjectBytes < 1) {
    throw new ScanError(
      "BTL_SCAN_CONFIG",
      `Expected \`maxObjectBytes\` to be a positive whole number, got ${maxObjectBytes}`,
    );
  }
  const rules = options.rules ?? [];
  compileRules(rules); // invalid rules fail here, before anything runs
  if (![...options.commits, ...(options.tags ?? [])].every((oid) => OID.test(oid))) {
    throw new ScanError("BTL_SCAN_CONFIG", "Expected commit and tag ids to be full hex object ids");
  }
  const gitleaks = await selectGitleaks(options);
  const scanner = gitleaks === undefined ? "builtin" : "gitleaks";
  const empty = options.commits.length === 0 && (options.tags ?? []).length === 0;
  if (empty && (options.refs ?? []).length === 0) {
    // Nothing pushed, nothing named: no thread to start.
    const durationMs = Math.round(performance.now() - started);
    const none = { findings: [], allowed: [], commits: 0, objects: 0, bytes: 0 };
    return { scanner, ...none, durationMs, mask: (text) => text };
  }
  const controller = new AbortController();
  const deadline = Date.now() + timeoutMs;
  const work = scan(options, rules, maxObjectBytes, gitleaks, deadline, controller.signal);
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
    throw code === "BTL_SCAN_CONFIG" ||
      code === "BTL_SCAN_FAILED" ||
      code === "BTL_SCAN_OBJECT_TOO_LARGE"
      ? error
      : failed("the secret scan failed", error);
  } finally {
    clearTimeout(timer);
    // Stops the worker threads at once; git children end at the deadline (their own timeout).
    controller.abort();
  }
  const mask = masker(outcome.findings);
  const findings = order(dedupe(outcome.findings, mask), options);
  const allow = new Set(options.allowlist ?? []);
  return {
    scanner,
    findings: findings.filter((finding) => !allow.has(finding.fingerprint)),
    allowed: findings.filter((finding) => allow.has(finding.fingerprint)),
    commits: options.commits.length,
    objects: outcome.objects,
    bytes: outcome.bytes,
    durationMs: Math.round(performance.now() - started),
    mask,
  };
}

async function selectGitleaks(options: ScanOptions): Promise<string | undefined> {
  const scanner = options.scanner ?? "auto";
  if (scanner === "builtin") return undefined;
  const found = options.gitleaksPath ?? (await findGitleaks(options.env.PATH));
  if (found === undefined && scanner === "gitleaks") {
    throw new ScanError(
      "BTL_SCAN_CONFIG",
      "the gitleaks scanner is required, but no `gitleaks` is on PATH",
    );
  }
  return found;
}

interface Outcome {
  readonly findings: readonly BatchFinding[];
  readonly bytes: number;
  readonly objects: number;
}

/**
 * Feeds everything the push adds into batches: each goes to the built-in scanner's workers,
 * and, with gitleaks, into gitleaks' workspace too (which runs once everything is written).
 */
async function scan(
  options: ScanOptions,
  rules: readonly ScanRuleSpec[],
  maxObjectBytes: number,
  gitleaks: string | undefined,
  deadline: number,
  signal: AbortSignal,
): Promise<Outcome> {
  const pool = new WorkerPool(workerCount(), rules, signal);
  const workspace = gitleaks === undefined ? undefined : await GitleaksWorkspace.create();
  const maps = new Map<string, Pick<Batch, "segments" | "lineNumbers">>();
  try {
    let bytes = 0;
    let sinkError: unknown;
    const builder = new BatchBuilder((batch) => {
      bytes += Buffer.byteLength(batch.text) + 1;
      if (workspace !== undefined) {
        const name = `batch-${String(maps.size + 1).padStart(6, "0")}.txt`;
        // Copied: the worker takes the batch's own arrays.
        maps.set(name, { segments: batch.segments, lineNumbers: batch.lineNumbers.slice() });
        workspace.write(name, batch.text);
      }
      pool.submit(batch);
    });
    // The sink runs inside git's stdout handler: an exception there must not escape.
    const onLine: AddedLineSink = (commit, file, line, text) => {
      if (sinkError !== undefined) return;
      try {
        // A NUL byte in a diffed line (past git's binary check): its printable runs, too.
        if (text.includes("\u0000")) {
          printableRuns(Buffer.from(text, "utf8"), (_line, run) =>
            builder.add(commit, file, line, run),
          );
        }
        builder.add(commit, file, line, text);
      } catch (error) {
        sinkError = error;
      }
    };
    // A crashed worker ends the scan at once, not when git is done.
    const { objects } = await Promise.race([
      feedPush({
        env: options.env,
        ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
        commits: options.commits,
        tips: options.tags ?? [],
        refs: options.refs ?? [],
        since: options.since ?? "refs",
        maxObjectBytes,
        deadline,
        onLine,
      }),
      pool.failure,
    ]);
    builder.flush();
    if (sinkError !== undefined) throw sinkError;
    const [builtin, leaks] = await Promise.all([
      Promise.race([pool.drain(), pool.failure]),
      workspace?.run({
        executable: gitleaks ?? "",
        env: options.env,
        timeoutMs: deadline - Date.now(),
      }) ?? [],
    ]);
    const mapped: BatchFinding[] = [];
    for (const leak of leaks) {
      const map = maps.get(leak.name);
      const place = map === undefined ? undefined : placeOf(map, leak.line - 1);
      if (place === undefined) {
        throw failed(`gitleaks reported a line the gate did not write (${leak.name}:${leak.line})`);
      }
      mapped.push({
        ...place,
        rule: leak.rule,
        redacted: redact(leak.secret),
        secret: leak.secret,
      });
    }
    // gitleaks' reports first: where both scanners report the same secret, its rule is shown.
    return { findings: [...mapped, ...builtin], bytes, objects };
  } finally {
    await Promise.all([pool.terminate(), workspace?.remove()]);
  }
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
  #fail!: (error: ScanError) => void;
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

/**
 * One finding per secret and place: the same text reported twice (by overlapping pieces, or
 * by gitleaks and the built-in scanner) is kept once, the first report winning. The raw
 * secret is dropped here; a path or ref name holding a secret is masked.
 */
function dedupe(raw: readonly BatchFinding[], mask: (text: string) => string): Finding[] {
  const seen = new Set<string>();
  const findings: Finding[] = [];
  for (const { secret: _, ...finding } of raw) {
    const file = mask(finding.file);
    const key = `${finding.commit}\0${file}\0${finding.line}\0${finding.redacted}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const masked = { ...finding, file };
    findings.push({ ...masked, fingerprint: fingerprintOf(masked) });
  }
  return findings;
}

/**
 * SECURITY: replaces each secret found wherever it stands in `text` (a path, a ref name) with
 * its redacted form, longest first, so that a secret used as a file name never reaches a log
 * or a client line whole.
 */
function masker(findings: readonly BatchFinding[]): (text: string) => string {
  const secrets = [...new Set(findings.map((finding) => finding.secret))]
    .filter((secret) => secret !== "")
    .sort((a, b) => b.length - a.length);
  if (secrets.length === 0) return (text) => text;
  return (text) => secrets.reduce((out, secret) => out.split(secret).join(redact(secret)), text);
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

function failed(message: string, cause?: unknown): ScanError {
  return new ScanError("BTL_SCAN_FAILED", message, cause === undefined ? {} : { cause });
}
