/**
 * The regex rules of the built-in scanner: bottle's own token shapes (ids `bottle/<name>`) and
 * the operator's rules from the manifest (`git_gate.scan.rules`). secretlint's preset runs next
 * to them (see scanner.ts).
 */
import { ScanError } from "./errors.ts";

/** An operator rule as the manifest's `git_gate.scan.rules` holds it. */
export interface ScanRuleSpec {
  readonly id: string;
  readonly description?: string;
  /** A JavaScript regular expression; a leading `(?i)` makes it case-insensitive. */
  readonly regex: string;
  /** Lower-cased on compile: the rule only reports in added text of a file holding one. */
  readonly keywords?: readonly string[];
}

/** A rule ready to run. */
export interface RegexRule {
  readonly id: string;
  /**
   * Global, or sticky for a built-in rule (tried only where its anchor matched). When the rule
   * has a capture group, group 1 is the secret (and the `d` flag is set).
   */
  readonly regex: RegExp;
  readonly anchored: boolean;
  /** Lower-case; empty when the rule has no keyword prefilter. */
  readonly keywords: readonly string[];
  /** True when the secret is group 1 of a match rather than the whole match. */
  readonly group: boolean;
}

/** Where a rule matched in a text: the secret's span. */
export interface RuleMatch {
  readonly rule: string;
  readonly start: number;
  readonly end: number;
}

// Token bodies stop at these characters; the look-behinds keep a token from matching inside a
// longer word (`xghp_…`).
const B64URL = "A-Za-z0-9_-";

/** A built-in rule: every match starts with a match of `anchor`. */
export interface BuiltinRule extends ScanRuleSpec {
  readonly anchor: string;
}

/** bottle's own rules: token shapes secretlint does not know, or knows too narrowly. */
export const BUILTIN_RULES: readonly BuiltinRule[] = Object.freeze([
  {
    id: "bottle/gate-token",
    anchor: "bottle_gt_",
    description: "bottle gate token",
    regex: `(?<![${B64URL}])bottle_gt_[${B64URL}]{32}(?![${B64URL}])`,
  },
  {
    id: "bottle/anthropic-api-key",
    anchor: "sk-ant-api",
    description: "Anthropic API key",
    regex: `(?<![${B64URL}])sk-ant-api0\\d-[${B64URL}]{32,}`,
  },
  {
    id: "bottle/anthropic-oauth-token",
    anchor: "sk-ant-o",
    description: "Anthropic OAuth access or refresh token",
    regex: `(?<![${B64URL}])sk-ant-o[ar]t0\\d-[${B64URL}]{32,}`,
  },
  {
    id: "bottle/github-token",
    anchor: "gh[pour]_",
    description: "GitHub classic token (personal, OAuth, user-to-server, refresh)",
    regex: "(?<![A-Za-z0-9_])gh[pour]_[A-Za-z0-9]{36}(?![A-Za-z0-9_])",
  },
  {
    // Installation tokens grow: the newer ones carry an app id and a JWT (dots included).
    id: "bottle/github-app-token",
    anchor: "ghs_",
    description: "GitHub App installation token (any length from 36)",
    regex: "(?<![A-Za-z0-9_])ghs_[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,4000}[A-Za-z0-9_-])?",
  },
  {
    id: "bottle/github-fine-grained-pat",
    anchor: "github_pat_",
    description: "GitHub fine-grained personal access token",
    regex: "(?<![A-Za-z0-9_])github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}(?![A-Za-z0-9_])",
  },
  {
    id: "bottle/npm-token",
    anchor: "npm_",
    description: "npm access token",
    regex: "(?<![A-Za-z0-9_])npm_[A-Za-z0-9]{36}(?![A-Za-z0-9_])",
  },
  {
    id: "bottle/npmrc-auth-token",
    anchor: "_authToken",
    description: "_authToken in an .npmrc (a literal value, not a variable)",
    regex: "_authToken[ \\t]*=[ \\t]*[\"']?([^\\s\"'$][^\\s\"']{7,})",
  },
  {
    // 40 lowercase hex is also every sha1: only next to "gitea" or "token" does it count.
    id: "bottle/gitea-token",
    anchor: "[Gg][Ii][Tt][Ee][Aa]|[Tt][Oo][Kk][Ee][Nn]",
    description: "Gitea access token (40 hex next to gitea/token)",
    regex:
      "(?:[Gg][Ii][Tt][Ee][Aa]|[Tt][Oo][Kk][Ee][Nn])[A-Za-z0-9_.-]{0,40}[\"']?[ \\t]*(?:[:=]|[ \\t])[ \\t]*[\"']?(?:[Tt]oken[ \\t]+)?([0-9a-f]{40})(?![0-9A-Za-z])",
  },
]);

/** Minimum secret lengths that keep short, harmless matches out (ghs_ tokens are ≥ 40). */
const MIN_LENGTH: Readonly<Record<string, number>> = { "bottle/github-app-token": 40 };

/** The minimum length a match of `rule` must have to count (0 when there is none). */
export function minLength(rule: string): number {
  return MIN_LENGTH[rule] ?? 0;
}

const RULE_ID = /^[A-Za-z0-9][A-Za-z0-9._/@-]{0,99}$/;
const MAX_REGEX = 10_000;

/** Compiled rules, and one regex of the built-in rules' anchors. */
export interface RuleSet {
  readonly rules: readonly RegexRule[];
  readonly anchors: RegExp;
}

/**
 * Compiles rule specs, bottle's own first. Throws `ScanError` BTL_SCAN_CONFIG for an
 * invalid or empty-matching regex, a malformed or duplicate id, or a bad keyword.
 */
export function compileRules(operatorRules: readonly ScanRuleSpec[] = []): RuleSet {
  const seen = new Set<string>();
  const compiled: RegexRule[] = [];
  const specs: ReadonlyArray<ScanRuleSpec & { anchor?: string }> = [
    ...BUILTIN_RULES,
    ...operatorRules,
  ];
  for (const [index, spec] of specs.entries()) {
    const where = `git_gate.scan.rules[${index - BUILTIN_RULES.length}]`;
    if (typeof spec.id !== "string" || !RULE_ID.test(spec.id)) {
      throw new ScanError("BTL_SCAN_CONFIG", `${where}.id: expected a rule id like \`my-token\``);
    }
    if (seen.has(spec.id)) {
      throw new ScanError("BTL_SCAN_CONFIG", `${where}.id: duplicate rule id \`${spec.id}\``);
    }
    seen.add(spec.id);
    compiled.push(compileRule(spec, where, index < BUILTIN_RULES.length));
  }
  const anchors = BUILTIN_RULES.map((rule) => rule.anchor).join("|");
  return { rules: compiled, anchors: new RegExp(anchors, "g") };
}

function compileRule(spec: ScanRuleSpec, where: string, anchored: boolean): RegexRule {
  if (typeof spec.regex !== "string" || spec.regex === "" || spec.regex.length > MAX_REGEX) {
    throw new ScanError("BTL_SCAN_CONFIG", `${where}.regex: expected a non-empty regex`);
  }
  // Gitleaks-style rules often start with (?i); JavaScript spells that as a flag.
  const insensitive = spec.regex.startsWith("(?i)");
  const source = insensitive ? spec.regex.slice(4) : spec.regex;
  let probe: RegExp;
  try {
    probe = new RegExp(source, insensitive ? "i" : "");
  } catch (error) {
    throw new ScanError(
      "BTL_SCAN_CONFIG",
      `${where}.regex: invalid regular expression for \`${spec.id}\`: ${(error as Error).message}`,
      { cause: error },
    );
  }
  if (probe.test("")) {
    throw new ScanError(
      "BTL_SCAN_CONFIG",
      `${where}.regex: the regex of \`${spec.id}\` matches the empty string`,
    );
  }
  // A rule with capture groups reports group 1, so it needs match indices.
  const group = new RegExp(`${source}|`).exec("")?.length !== 1;
  const keywords = (spec.keywords ?? []).map((keyword) => {
    if (typeof keyword !== "string" || keyword === "") {
      throw new ScanError("BTL_SCAN_CONFIG", `${where}.keywords: expected non-empty strings`);
    }
    return keyword.toLowerCase();
  });
  const flags = `${anchored ? "y" : "g"}${insensitive ? "i" : ""}${group ? "d" : ""}`;
  return { id: spec.id, regex: new RegExp(source, flags), anchored, keywords, group };
}

/**
 * Runs the rules over `text`: the built-in ones where one of their anchors matches (one pass
 * for all of them), the operator's over the whole text. A rule with keywords is skipped when
 * `text` holds none of them (the caller checks them again per file). Matches shorter than a
 * rule's minimum are left out.
 */
export function matchRules(text: string, set: RuleSet): RuleMatch[] {
  const matches: RuleMatch[] = [];
  const anchored = set.rules.filter((rule) => rule.anchored);
  const anchors = new RegExp(set.anchors);
  for (let hit = anchors.exec(text); hit !== null; hit = anchors.exec(text)) {
    for (const rule of anchored) {
      rule.regex.lastIndex = hit.index;
      const match = rule.regex.exec(text);
      if (match !== null) add(matches, rule, match);
    }
    anchors.lastIndex = hit.index + 1;
  }
  let lower: string | undefined;
  for (const rule of set.rules) {
    if (rule.anchored) continue;
    if (rule.keywords.length > 0) {
      lower ??= text.toLowerCase();
      const haystack = lower;
      if (!rule.keywords.some((keyword) => haystack.includes(keyword))) continue;
    }
    rule.regex.lastIndex = 0;
    for (const match of text.matchAll(rule.regex)) add(matches, rule, match);
  }
  return matches;
}

function add(matches: RuleMatch[], rule: RegexRule, match: RegExpExecArray): void {
  let start = match.index;
  let end = start + match[0].length;
  const span = rule.group ? match.indices?.[1] : undefined;
  if (span !== undefined) [start, end] = span;
  if (end - start >= Math.max(minLength(rule.id), 1)) matches.push({ rule: rule.id, start, end });
}
