/**
 * The built-in scanner's engine: added lines are packed into batches of about 1 MiB (one text
 * plus a line map), and each batch goes through secretlint's recommended preset once and
 * through the regex rules once. Linting a batch rather than each file pays secretlint's
 * per-call setup once per MiB instead of once per file (bench/scan/README.md has figures).
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import type { SecretLintCoreConfig, SecretLintCoreResult } from "@secretlint/types";
import { redact } from "./findings.ts";
import { MAX_PIECE, PIECE_OVERLAP } from "./objects.ts";
import { compileRules, matchRules, type RuleSet, type ScanRuleSpec } from "./rules.ts";

/** A run of consecutive lines of one file of one commit inside a {@link Batch}. */
export interface BatchSegment {
  readonly commit: string;
  readonly file: string;
  /** Index of its first line in the batch. */
  readonly first: number;
  /** Index after its last line. */
  readonly end: number;
}

/** Lines joined by `\n`, with where each starts and its line number in its file. */
export interface Batch {
  readonly text: string;
  readonly lineStarts: Int32Array<ArrayBuffer>;
  readonly lineNumbers: Int32Array<ArrayBuffer>;
  readonly segments: readonly BatchSegment[];
}

/** A finding of one batch, before its fingerprint is added. */
export interface BatchFinding {
  readonly commit: string;
  readonly file: string;
  readonly line: number;
  readonly rule: string;
  readonly redacted: string;
  /**
   * SECURITY: the matched text itself, kept only inside the scan to mask it where it also
   * stands in a path or ref name; never part of a {@link Finding}.
   */
  readonly secret: string;
}

/** A batch is sent once it holds this many characters. */
export const BATCH_CHARS = 1024 * 1024;
/** A single file bigger than this is split, the pieces overlapping by {@link OVERLAP_LINES}. */
export const MAX_BATCH_CHARS = 8 * BATCH_CHARS;
const OVERLAP_LINES = 64;
const OVERLAP_CHARS = 64 * 1024;

/** Packs added lines into {@link Batch}es and hands each full one to `onBatch`. */
export class BatchBuilder {
  readonly #onBatch: (batch: Batch) => void;
  readonly #target: number;
  #lines: string[] = [];
  #lineStarts: number[] = [];
  #lineNumbers: number[] = [];
  #segments: BatchSegment[] = [];
  #chars = 0;
  #commit: string | undefined;
  #file: string | undefined;
  #first = 0;

  constructor(onBatch: (batch: Batch) => void, target = BATCH_CHARS) {
    this.#onBatch = onBatch;
    this.#target = target;
  }

  /**
   * Adds one line of `file` in `commit`; a line longer than {@link MAX_PIECE} is added as
   * pieces that overlap by {@link PIECE_OVERLAP}, each with the line's number.
   */
  add(commit: string, file: string, line: number, text: string): void {
    if (text.length <= MAX_PIECE) {
      this.#add(commit, file, line, text);
      return;
    }
    for (let at = 0; ; at += MAX_PIECE - PIECE_OVERLAP) {
      this.#add(commit, file, line, text.slice(at, at + MAX_PIECE));
      if (at + MAX_PIECE >= text.length) return;
    }
  }

  #add(commit: string, file: string, line: number, text: string): void {
    if (commit !== this.#commit || file !== this.#file) {
      this.#closeSegment();
      if (this.#chars >= this.#target) this.flush();
      this.#commit = commit;
      this.#file = file;
      this.#first = this.#lines.length;
    } else if (this.#chars >= MAX_BATCH_CHARS) {
      this.#split();
    }
    this.#lineStarts.push(this.#chars);
    this.#lineNumbers.push(line);
    this.#lines.push(text);
    this.#chars += text.length + 1;
  }

  /** Sends what is pending as a batch (if anything). */
  flush(): void {
    this.#closeSegment();
    if (this.#lines.length === 0) return;
    const batch: Batch = {
      text: this.#lines.join("\n"),
      lineStarts: Int32Array.from(this.#lineStarts),
      lineNumbers: Int32Array.from(this.#lineNumbers),
      segments: this.#segments,
    };
    this.#lines = [];
    this.#lineStarts = [];
    this.#lineNumbers = [];
    this.#segments = [];
    this.#chars = 0;
    this.#commit = undefined;
    this.#file = undefined;
    this.#onBatch(batch);
  }

  #closeSegment(): void {
    if (this.#commit === undefined || this.#file === undefined) return;
    if (this.#lines.length > this.#first) {
      this.#segments.push({
        commit: this.#commit,
        file: this.#file,
        first: this.#first,
        end: this.#lines.length,
      });
    }
    this.#commit = undefined;
    this.#file = undefined;
  }

  /**
   * Ends a batch inside a huge file; the next one starts with the file's last lines again (at
   * most {@link OVERLAP_LINES} and {@link OVERLAP_CHARS}), so a secret spanning lines is whole
   * in one of the two.
   */
  #split(): void {
    const [commit, file] = [this.#commit ?? "", this.#file ?? ""];
    let keep = this.#lines.length;
    let chars = 0;
    while (keep > this.#first + 1 && this.#lines.length - keep < OVERLAP_LINES) {
      chars += (this.#lines[keep - 1]?.length ?? 0) + 1;
      if (chars > OVERLAP_CHARS) break;
      keep--;
    }
    const lines = this.#lines.slice(keep);
    const numbers = this.#lineNumbers.slice(keep);
    this.flush();
    for (const [index, line] of lines.entries()) this.#add(commit, file, numbers[index] ?? 0, line);
  }
}

const AWS_RULE = "@secretlint/secretlint-rule-aws";
const FILTER_COMMENTS_RULE = "@secretlint/secretlint-rule-filter-comments";
// Every pattern of the AWS rule needs one of these words, in these cases (see
// {@link secretlintSpans}).
const AWS_WORDS =
  /secret|Secret|SECRET|account|Account|ACCOUNT|A3T|AKIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ASIA/g;

/**
 * For each rule of the preset, strings one of which every match of the rule contains, read
 * from the rule's patterns in the preset module whose SHA-256 is {@link PRESET_SHA256}. A
 * batch that holds none of them skips the rule: most rules look for one token prefix, and
 * running each over every batch costs most of the scan. Rules not listed always run. Any
 * other build of the preset runs every rule on every batch.
 */
const RULE_NEEDS: Readonly<Record<string, readonly string[]>> = {
  "@secretlint/secretlint-rule-npm": ["npm_", "x-oauth-basic@github", "_authToken="],
  // Its webhook pattern is case-insensitive, but `://` has no case.
  "@secretlint/secretlint-rule-slack": [
    "xoxb-",
    "xoxp-",
    "xapp-",
    "xoxa-",
    "xoxo-",
    "xoxr-",
    "://",
  ],
  "@secretlint/secretlint-rule-basicauth": ["://"],
  "@secretlint/secretlint-rule-openai": ["T3BlbkFJ"],
  "@secretlint/secretlint-rule-anthropic": ["sk-ant-api0"],
  "@secretlint/secretlint-rule-groq": ["gsk_"],
  "@secretlint/secretlint-rule-huggingface": ["hf_"],
  "@secretlint/secretlint-rule-linear": ["lin_api_"],
  "@secretlint/secretlint-rule-notion": ["ntn_"],
  "@secretlint/secretlint-rule-privatekey": ["-----BEGIN"],
  "@secretlint/secretlint-rule-sendgrid": ["SG."],
  "@secretlint/secretlint-rule-shopify": ["shppa_", "shpca_", "shpat_", "shpss_"],
  "@secretlint/secretlint-rule-stripe": ["sk_live_", "sk_test_", "rk_live_", "rk_test_"],
  "@secretlint/secretlint-rule-github": ["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"],
  "@secretlint/secretlint-rule-gitlab": ["glpat-"],
  "@secretlint/secretlint-rule-grafana": ["glc_", "glsa_"],
  "@secretlint/secretlint-rule-1password": ["ops_ey"],
  // Case-insensitive patterns, every one with `://`.
  "@secretlint/secretlint-rule-database-connection-string": ["://"],
  "@secretlint/secretlint-rule-hashicorp-vault": ["hvs.", "hvb.", "hvr."],
  "@secretlint/secretlint-rule-vercel": ["vcp_", "vci_", "vca_", "vcr_", "vck_"],
  "@secretlint/secretlint-rule-databricks": ["dapi"],
  "@secretlint/secretlint-rule-docker": ["dckr_pat_"],
  "@secretlint/secretlint-rule-figma": ["figd_"],
  "@secretlint/secretlint-rule-cloudflare": ["cfk_", "cfut_", "cfat_"],
  "@secretlint/secretlint-rule-tailscale": ["tskey-"],
};

/** The SHA-256 of @secretlint/secretlint-rule-preset-recommend 13.1.0's module/index.js. */
export const PRESET_SHA256 = "fdaf699ca19965cf0a7a7c1252cec25b89076ffbd6a0e21d61634316fac2fd95";

/** secretlint, loaded: the preset's rules without its AWS rule, and the AWS rule alone. */
interface Secretlint {
  readonly lint: (text: string, config: SecretLintCoreConfig) => Promise<SecretLintCoreResult>;
  /** The rules (minus AWS) that may match in `text`. */
  readonly preset: (text: string) => SecretLintCoreConfig;
  readonly aws: SecretLintCoreConfig;
}

/** True when the installed preset is the build {@link RULE_NEEDS} was read from. */
export async function isPresetVerified(): Promise<boolean> {
  try {
    const url = import.meta.resolve("@secretlint/secretlint-rule-preset-recommend");
    const bytes = await readFile(fileURLToPath(url));
    return createHash("sha256").update(bytes).digest("hex") === PRESET_SHA256;
  } catch {
    return false; // unknown build: every rule runs on every batch
  }
}

/**
 * Loads secretlint (only the worker needs it, so the hook process does not pay for it).
 * Throws when the preset lacks a rule this module relies on: the scan must not silently
 * lose it.
 */
async function loadSecretlint(): Promise<Secretlint> {
  const [{ lintSource }, { rules }, verified] = await Promise.all([
    import("@secretlint/core"),
    import("@secretlint/secretlint-rule-preset-recommend"),
    isPresetVerified(),
  ]);
  const ids = new Set(rules.map((rule) => rule.meta.id));
  const awsRule = rules.find((rule) => rule.meta.id === AWS_RULE);
  if (awsRule === undefined || !ids.has(FILTER_COMMENTS_RULE)) {
    throw new Error("secretlint's recommended preset changed: check scanner.ts");
  }
  // The preset's rules one by one (secretlint ignores `disabled` on a rule inside a preset),
  // minus the AWS rule, which runs apart. SECURITY: without filter-comments, which honours
  // `secretlint-disable` comments: an in-band bypass the pusher controls.
  const presetRules = rules
    .filter((rule) => rule.meta.id !== AWS_RULE && rule.meta.id !== FILTER_COMMENTS_RULE)
    .map((rule) => ({ id: rule.meta.id, rule }));
  const always = presetRules.filter((rule) => !verified || RULE_NEEDS[rule.id] === undefined);
  const byNeed = new Map<string, Array<(typeof presetRules)[number]>>();
  for (const rule of presetRules) {
    for (const need of verified ? (RULE_NEEDS[rule.id] ?? []) : []) {
      byNeed.set(need, [...(byNeed.get(need) ?? []), rule]);
    }
  }
  const literal = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const needs = new RegExp([...byNeed.keys()].map(literal).join("|"), "g");
  return {
    lint: (text, config) =>
      // SECURITY: no real file name and no `.p12`/`.json` extension: rules that read the
      // named file from disk (or parse it whole) must never see a pusher-chosen path.
      lintSource({
        source: { filePath: "", content: text, ext: ".txt", contentType: "text" },
        options: { config, noPhysicFilePath: true },
      }),
    preset: (text) => {
      if (byNeed.size === 0) return { rules: always };
      const picked = new Set(always);
      const finder = new RegExp(needs);
      for (let hit = finder.exec(text); hit !== null; hit = finder.exec(text)) {
        for (const rule of byNeed.get(hit[0]) ?? []) picked.add(rule);
        if (picked.size === presetRules.length) break;
      }
      return { rules: [...picked] };
    },
    // The AWS rule with its access key id scan on. Its patterns have no literal prefix, which
    // makes it cost as much as several other rules together, so it reads fewer lines.
    aws: { rules: [{ id: AWS_RULE, rule: awsRule, options: { enableIDScanRule: true } }] },
  };
}

interface Span {
  readonly rule: string;
  readonly start: number;
  readonly end: number;
  /** Reported by secretlint (preferred when two rules report the same secret). */
  readonly preset: boolean;
}

/** Scans batches with secretlint's preset and bottle's and the operator's regex rules. */
export async function createBatchScanner(
  operatorRules: readonly ScanRuleSpec[] = [],
): Promise<(batch: Batch) => Promise<BatchFinding[]>> {
  const rules = compileRules(operatorRules);
  const secretlint = await loadSecretlint();
  return (batch) => scanBatch(batch, rules, secretlint);
}

async function scanBatch(
  batch: Batch,
  rules: RuleSet,
  secretlint: Secretlint,
): Promise<BatchFinding[]> {
  const { text } = batch;
  const spans: Span[] = await secretlintSpans(batch, secretlint);
  for (const match of matchRules(text, rules)) spans.push({ ...match, preset: false });
  if (spans.length === 0) return [];
  const keywords = new Map(
    rules.rules.filter((rule) => rule.keywords.length > 0).map((rule) => [rule.id, rule.keywords]),
  );
  const lowered = new Map<number, string>();
  const rescan = new Set<number>();
  const bySegmentLine = new Map<string, Array<Span & { segment: number; line: number }>>();
  for (const span of spans) {
    const line = lineIndex(batch, span.start);
    const segment = segmentIndex(batch, line);
    const last = segmentIndex(batch, lineIndex(batch, Math.max(span.start, span.end - 1)));
    if (segment !== last) {
      // Matched across two files' lines: look at each file on its own instead.
      for (let index = segment; index <= last; index++) rescan.add(index);
      continue;
    }
    const words = keywords.get(span.rule);
    if (words !== undefined && !hasKeyword(batch, segment, words, lowered)) continue;
    const key = `${segment}:${line}`;
    const list = bySegmentLine.get(key) ?? [];
    list.push({ ...span, segment, line });
    bySegmentLine.set(key, list);
  }
  const findings: BatchFinding[] = [];
  for (const list of bySegmentLine.values()) {
    for (const span of dedupe(list)) {
      const segment = batch.segments[span.segment];
      // A file scanned again on its own (below) reports all of its findings there.
      if (segment === undefined || (rescan.has(span.segment) && batch.segments.length > 1))
        continue;
      findings.push({
        commit: segment.commit,
        file: segment.file,
        line: batch.lineNumbers[span.line] ?? 0,
        rule: span.rule,
        redacted: redact(text.slice(span.start, span.end)),
        secret: text.slice(span.start, span.end),
      });
    }
  }
  if (batch.segments.length > 1) {
    for (const index of rescan)
      findings.push(...(await scanBatch(subBatch(batch, index), rules, secretlint)));
  }
  return findings;
}

/**
 * secretlint's findings in `batch`: the preset over the whole text, the AWS rule over the
 * lines holding one of {@link AWS_WORDS} and the line after each.
 */
async function secretlintSpans(batch: Batch, secretlint: Secretlint): Promise<Span[]> {
  const spans = await lint(secretlint, batch.text, secretlint.preset(batch.text));
  const picked = new Set<number>();
  const words = new RegExp(AWS_WORDS);
  for (let match = words.exec(batch.text); match !== null; match = words.exec(batch.text)) {
    const line = lineIndex(batch, match.index);
    picked.add(line).add(line + 1);
    words.lastIndex = lineEnd(batch, line) + 1;
  }
  const lines = [...picked].filter((line) => line < batch.lineStarts.length).sort((a, b) => a - b);
  if (lines.length === 0) return spans;
  const from: number[] = [];
  const to: number[] = [];
  const parts: string[] = [];
  let at = 0;
  for (const line of lines) {
    const start = batch.lineStarts[line] ?? 0;
    const text = batch.text.slice(start, lineEnd(batch, line));
    from.push(at);
    to.push(start);
    parts.push(text);
    at += text.length + 1;
  }
  // Offsets in the picked text back to offsets in the batch.
  const map = (offset: number) => {
    let [low, high] = [0, from.length - 1];
    while (low < high) {
      const middle = (low + high + 1) >> 1;
      if ((from[middle] ?? 0) <= offset) low = middle;
      else high = middle - 1;
    }
    return (to[low] ?? 0) + offset - (from[low] ?? 0);
  };
  for (const span of await lint(secretlint, parts.join("\n"), secretlint.aws)) {
    spans.push({
      ...span,
      start: map(span.start),
      end: map(Math.max(span.start, span.end - 1)) + 1,
    });
  }
  return spans;
}

async function lint(
  secretlint: Secretlint,
  text: string,
  config: SecretLintCoreConfig,
): Promise<Span[]> {
  // secretlint drops a leading BOM, which would shift every range by one.
  const shift = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  const content = shift === 1 ? `\n${text}` : text;
  const result = await secretlint.lint(content, config);
  const spans: Span[] = [];
  for (const message of result.messages) {
    const [start, end] = secretRange(content, message.range, message.data);
    spans.push({ rule: message.ruleId, start: start - shift, end: end - shift, preset: true });
  }
  return spans;
}

/**
 * Some rules report the range of the whole assignment (`AWS_SECRET_ACCESS_KEY=…`) with the
 * secret's length; the secret itself is among the message data, so look for it nearby.
 */
function secretRange(
  content: string,
  range: readonly [number, number],
  data: unknown,
): readonly [number, number] {
  if (typeof data !== "object" || data === null) return range;
  for (const value of Object.values(data)) {
    if (typeof value !== "string" || value.length < 8) continue;
    const at = content.indexOf(value, range[0]);
    if (at !== -1 && at <= range[0] + 512) return [at, at + value.length];
  }
  return range;
}

/** Overlapping spans on one line are one secret: keep secretlint's, then the longest. */
function dedupe<T extends Span>(spans: T[]): T[] {
  if (spans.length < 2) return spans;
  const ranked = [...spans].sort(
    (a, b) =>
      Number(b.preset) - Number(a.preset) ||
      b.end - b.start - (a.end - a.start) ||
      a.rule.localeCompare(b.rule),
  );
  const kept: T[] = [];
  for (const span of ranked) {
    if (!kept.some((other) => span.start < other.end && other.start < span.end)) kept.push(span);
  }
  return kept;
}

function hasKeyword(
  batch: Batch,
  segment: number,
  keywords: readonly string[],
  lowered: Map<number, string>,
): boolean {
  let text = lowered.get(segment);
  if (text === undefined) {
    const { first, end } = batch.segments[segment] ?? { first: 0, end: 0 };
    text = batch.text.slice(batch.lineStarts[first] ?? 0, lineEnd(batch, end - 1)).toLowerCase();
    lowered.set(segment, text);
  }
  const haystack = text;
  return keywords.some((keyword) => haystack.includes(keyword));
}

function lineEnd(batch: Batch, line: number): number {
  const next = batch.lineStarts[line + 1];
  return next === undefined ? batch.text.length : next - 1;
}

/** The index of the line holding `offset` (binary search over the line starts). */
function lineIndex(batch: Batch, offset: number): number {
  const starts = batch.lineStarts;
  let [low, high] = [0, starts.length - 1];
  while (low < high) {
    const middle = (low + high + 1) >> 1;
    if ((starts[middle] ?? 0) <= offset) low = middle;
    else high = middle - 1;
  }
  return low;
}

/**
 * Where line `index` of a batch comes from (its commit, file and line number), from the
 * batch's segments and line numbers alone.
 */
export function placeOf(
  batch: Pick<Batch, "segments" | "lineNumbers">,
  index: number,
): { commit: string; file: string; line: number } | undefined {
  const segment = batch.segments[segmentIndex(batch, index)];
  const line = batch.lineNumbers[index];
  if (segment === undefined || line === undefined || index >= segment.end) return undefined;
  return { commit: segment.commit, file: segment.file, line };
}

function segmentIndex(batch: Pick<Batch, "segments">, line: number): number {
  const segments = batch.segments;
  let [low, high] = [0, segments.length - 1];
  while (low < high) {
    const middle = (low + high + 1) >> 1;
    if ((segments[middle]?.first ?? 0) <= line) low = middle;
    else high = middle - 1;
  }
  return low;
}

/** Segment `index` of `batch` as a batch of its own. */
function subBatch(batch: Batch, index: number): Batch {
  const segment = batch.segments[index] ?? { commit: "", file: "", first: 0, end: 0 };
  const offset = batch.lineStarts[segment.first] ?? 0;
  return {
    text: batch.text.slice(offset, lineEnd(batch, segment.end - 1)),
    lineStarts: batch.lineStarts.slice(segment.first, segment.end).map((start) => start - offset),
    lineNumbers: batch.lineNumbers.slice(segment.first, segment.end),
    segments: [{ ...segment, first: 0, end: segment.end - segment.first }],
  };
}
