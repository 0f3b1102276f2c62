import { generateKeyPairSync } from "node:crypto";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { delimiter, join } from "node:path";
import { expectNoCanary, testdir } from "@bottle/test-utils";
import { describe, expect, test } from "vitest";
import { newCommits, newTagObjects, ZERO_OID } from "../src/commits.ts";
import { type Finding, fingerprintOf, formatFindings, redact } from "../src/findings.ts";
import { type ScanOptions, type ScanResult, scanCommits } from "../src/scan.ts";
import { ALNUM, B64URL, commitIn, inRepo, type Repo, random, run, setup } from "./helpers.ts";

const FIXTURES = join(import.meta.dirname, "fixtures");

const ghp = () => `ghp_${random(ALNUM, 36)}`;

/**
 * Runs `work` on a detached HEAD at `from`, then returns to main: the commits it makes are
 * reachable from no ref, as a push's are in a pre-receive hook. Returns the tip.
 */
async function offBranch(repo: Repo, work: () => Promise<unknown>, from = "main"): Promise<string> {
  await run(repo, ["checkout", "-q", "--detach", from]);
  await work();
  const tip = await run(repo, ["rev-parse", "HEAD"]);
  await run(repo, ["checkout", "-q", "-f", "main"]);
  return tip;
}

/** Scans what a push of `tip` to `ref` adds, as the pre-receive hook does. */
async function scanPush(
  repo: Repo,
  tip: string,
  options: Partial<ScanOptions> = {},
  ref = "refs/heads/feature",
): Promise<ScanResult> {
  const updates = [{ oldOid: ZERO_OID, newOid: tip, ref }];
  const base = { ...inRepo(repo), updates };
  const [commits, tags] = await Promise.all([newCommits(base), newTagObjects(base)]);
  return scanCommits({
    ...inRepo(repo),
    commits,
    tags,
    scanner: "builtin",
    ...options,
  });
}

const places = (result: ScanResult) => result.findings.map((f) => `${f.file}:${f.line}:${f.rule}`);

describe("scanCommits with the built-in scanner", () => {
  test("finds nothing in clean commits", async () => {
    const repo = await setup();
    const tip = await offBranch(repo, async () => {
      await commitIn(repo, { "src/a.ts": "export const a = 1;\n" }, "a");
      await commitIn(repo, { "src/b.ts": "export const sha = 'deadbeef';\n" }, "b");
    });
    const result = await scanPush(repo, tip);
    expect(result).toMatchObject({ scanner: "builtin", findings: [], allowed: [], commits: 2 });
    expect(result.bytes).toBeGreaterThan(40);
  });

  test("finds every kind of token, each at its file and line", async () => {
    const repo = await setup();
    const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const pem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    const files: Record<string, [content: string, rules: string[]]> = {
      "gate.txt": [`x\nGATE=bottle_gt_${random(B64URL, 32)}\n`, ["bottle/gate-token"]],
      "anthropic.env": [
        `ANTHROPIC_API_KEY=sk-ant-api03-${random(B64URL, 93)}AA\n`,
        ["@secretlint/secretlint-rule-anthropic", "bottle/anthropic-api-key"],
      ],
      "oauth.json": [
        `{"t": "sk-ant-oat01-${random(B64URL, 95)}"}\n`,
        ["bottle/anthropic-oauth-token"],
      ],
      "ghp.sh": [
        `export GH=${ghp()}\n`,
        ["@secretlint/secretlint-rule-github", "bottle/github-token"],
      ],
      "gho.sh": [
        `GH=gho_${random(ALNUM, 36)}\n`,
        ["@secretlint/secretlint-rule-github", "bottle/github-token"],
      ],
      "ghs-long.txt": [`app: ghs_${random(ALNUM, 60)}\n`, ["bottle/github-app-token"]],
      "pat.txt": [
        `github_pat_${random(ALNUM, 22)}_${random(ALNUM, 59)}\n`,
        ["@secretlint/secretlint-rule-github", "bottle/github-fine-grained-pat"],
      ],
      "npm.txt": [
        `npm_${random(ALNUM, 36)}\n`,
        ["@secretlint/secretlint-rule-npm", "bottle/npm-token"],
      ],
      "gitea.ini": [
        `[gitea]\nGITEA_TOKEN = ${random("0123456789abcdef", 40)}\n`,
        ["bottle/gitea-token"],
      ],
      "aws.ini": [
        `aws_access_key_id = AKIA${random("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)}\n`,
        ["@secretlint/secretlint-rule-aws"],
      ],
      "key.pem": [pem, ["@secretlint/secretlint-rule-privatekey"]],
      "acme.cfg": [`acme key acme_${random("abcdef0123456789", 24)}\n`, ["acme-key"]],
    };
    const tip = await offBranch(repo, () =>
      commitIn(
        repo,
        Object.fromEntries(Object.entries(files).map(([name, [content]]) => [name, content])),
        "all kinds",
      ),
    );
    const result = await scanPush(repo, tip, {
      rules: [{ id: "acme-key", regex: "acme_[0-9a-f]{24}", keywords: ["acme"] }],
    });
    for (const [name, [content, rules]] of Object.entries(files)) {
      const line = content.split("\n").findIndex((text) => /[A-Za-z0-9_-]{20}/.test(text)) + 1;
      const found = result.findings.filter((finding) => finding.file === name);
      expect(found.length, name).toBeGreaterThan(0);
      expect(rules, name).toContain(found[0]?.rule);
      expect(found[0]?.line, name).toBe(name === "key.pem" ? 1 : line);
      expect(found[0]?.commit).toBe(tip);
    }
  });

  test("does not flag a secret already in history below a new branch", async () => {
    const repo = await setup({ "fixture.env": `TOKEN=${ghp()}\n` });
    const tip = await offBranch(repo, () =>
      commitIn(repo, { "feature.txt": "new work\n" }, "feature"),
    );
    const result = await scanPush(repo, tip);
    expect(result.commits).toBe(1);
    expect(result.findings).toEqual([]);
  });

  test("flags a secret added and deleted within the same push, in the commit that added it", async () => {
    const repo = await setup();
    let added = "";
    const tip = await offBranch(repo, async () => {
      added = await commitIn(repo, { "leak.txt": `one\n${ghp()}\n` }, "oops");
      await run(repo, ["rm", "-q", "leak.txt"]);
      await run(repo, ["commit", "-q", "-m", "remove it"]);
    });
    const result = await scanPush(repo, tip);
    expect(result.findings).toHaveLength(1);
    expect(result.findings[0]).toMatchObject({ commit: added, file: "leak.txt", line: 2 });
  });

  test("flags a secret a merge adds itself, not one it merges in from existing history", async () => {
    const repo = await setup({ "config.txt": "a\nb\n" });
    await run(repo, ["checkout", "-q", "-b", "old-side"]);
    await commitIn(repo, { "old.env": `OLD=${ghp()}\n` }, "old secret");
    await run(repo, ["checkout", "-q", "main"]);
    // Merging an existing branch with an old secret: nothing new.
    const clean = await offBranch(repo, () =>
      run(repo, ["merge", "-q", "--no-ff", "-m", "merge old", "old-side"]),
    );
    expect((await scanPush(repo, clean)).findings).toEqual([]);
    // An evil merge: the resolution adds a line neither parent has.
    const evil = await offBranch(repo, async () => {
      await run(repo, ["merge", "-q", "--no-ff", "--no-commit", "old-side"]);
      await commitIn(repo, { "config.txt": `a\n${ghp()}\nb\n` }, "evil merge");
    });
    const result = await scanPush(repo, evil);
    expect(places(result)).toEqual(["config.txt:2:@secretlint/secretlint-rule-github"]);
    expect(result.findings[0]?.commit).toBe(evil);
  });

  test("flags a secret in a commit and a message of an annotated tag pushed alone", async () => {
    const repo = await setup();
    const tip = await offBranch(repo, () =>
      commitIn(repo, { "tagged.txt": `${ghp()}\n` }, "tagged"),
    );
    await run(repo, ["tag", "-a", "-m", `release\n\nnotes ${ghp()}`, "v1", tip]);
    const tag = await run(repo, ["rev-parse", "v1"]);
    await run(repo, ["tag", "-d", "v1"]);
    const result = await scanPush(repo, tag, {}, "refs/tags/v1");
    expect(result.findings.map((f) => [f.commit, f.file, f.line])).toEqual([
      [tip, "tagged.txt", 1],
      [tag, "(tag message)", 3],
    ]);
  });

  test("reports a renamed and edited file's secret at the new path", async () => {
    const lines = Array.from({ length: 10 }, (_, index) => `line ${index}`);
    const repo = await setup({ "old/name.txt": `${lines.join("\n")}\n` });
    const tip = await offBranch(repo, async () => {
      await run(repo, ["mv", "old/name.txt", "new name.txt"]);
      lines.splice(5, 0, `key=${ghp()}`);
      await commitIn(repo, { "new name.txt": `${lines.join("\n")}\n` }, "move");
    });
    expect(places(await scanPush(repo, tip))).toEqual([
      "new name.txt:6:@secretlint/secretlint-rule-github",
    ]);
  });

  test("flags a secret hidden in a binary file behind a NUL byte", async () => {
    const repo = await setup({ "data.bin": "\0old harmless content\n" });
    const tip = await offBranch(repo, () =>
      commitIn(repo, { "data.bin": `\0old harmless content\nx\0${ghp()}\0` }, "bin"),
    );
    const result = await scanPush(repo, tip);
    expect(result.findings.map((f) => [f.file, f.line])).toEqual([["data.bin", 2]]);
  });

  test("flags a secret in a commit message", async () => {
    const repo = await setup();
    const tip = await offBranch(repo, () =>
      commitIn(repo, { "a.txt": "a\n" }, `subject\n\ntoken was ${ghp()}`),
    );
    expect(places(await scanPush(repo, tip))).toEqual([
      "(commit message):3:@secretlint/secretlint-rule-github",
    ]);
  });

  test("handles file names with spaces, quotes, non-ASCII and newlines", async () => {
    const repo = await setup();
    const names = ["with space.txt", 'quo"te.txt', "naïve 名前.txt", "new\nline.txt"];
    const tip = await offBranch(repo, () =>
      commitIn(repo, Object.fromEntries(names.map((name) => [name, `${ghp()}\n`])), "names"),
    );
    const result = await scanPush(repo, tip);
    expect(result.findings.map((f) => f.file).sort()).toEqual([...names].sort());
    const lines = formatFindings(result.findings);
    expect(lines.join("\n")).toContain("new\\nline.txt:1");
    for (const line of lines) expect(line).not.toMatch(/[\u0000-\u001f\u007f]/);
  });

  test("never shows a whole secret: redacted findings and the client's lines", async () => {
    const repo = await setup();
    const secrets = [
      ghp(),
      `bottle_gt_${random(B64URL, 32)}`,
      `sk-ant-api03-${random(B64URL, 93)}AA`,
    ];
    const tip = await offBranch(repo, () =>
      commitIn(repo, { "s.txt": `${secrets.join("\n")}\n` }, "secrets"),
    );
    const result = await scanPush(repo, tip);
    expect(result.findings).toHaveLength(3);
    const output = [...formatFindings(result.findings), JSON.stringify(result)].join("\n");
    for (const secret of secrets) expectNoCanary(secret, output);
  });

  test("moves an allowlisted fingerprint to allowed", async () => {
    const repo = await setup();
    const tip = await offBranch(repo, () =>
      commitIn(repo, { "a.txt": `${ghp()}\n`, "b.txt": `${ghp()}\n` }, "two"),
    );
    const first = await scanPush(repo, tip);
    const fingerprint = first.findings.find((f) => f.file === "a.txt")?.fingerprint ?? "";
    expect(fingerprint).toBe(`${tip}:a.txt:@secretlint/secretlint-rule-github:1`);
    const second = await scanPush(repo, tip, { allowlist: [fingerprint] });
    expect(second.allowed.map((f) => f.file)).toEqual(["a.txt"]);
    expect(second.findings.map((f) => f.file)).toEqual(["b.txt"]);
  });

  test("fails closed with BTL_SCAN_FAILED on a timeout", async () => {
    const repo = await setup();
    const big = Array.from(
      { length: 20_000 },
      (_, index) => `const v${index} = compute(${index});`,
    ).join("\n");
    const tip = await offBranch(repo, () => commitIn(repo, { "big.ts": big }, "big"));
    await expect(scanPush(repo, tip, { timeoutMs: 1 })).rejects.toMatchObject({
      code: "BTL_SCAN_FAILED",
    });
  });

  test("stops a pathological operator regex at the timeout", async () => {
    const repo = await setup();
    const tip = await offBranch(repo, () =>
      commitIn(repo, { "a.txt": `${"a".repeat(40)}!\n` }, "a"),
    );
    const rules = [{ id: "redos", regex: "(a+)+$" }];
    const started = Date.now();
    await expect(scanPush(repo, tip, { rules, timeoutMs: 1500 })).rejects.toMatchObject({
      code: "BTL_SCAN_FAILED",
    });
    expect(Date.now() - started).toBeLessThan(5000);
  });

  test("refuses an invalid operator regex with BTL_SCAN_CONFIG", async () => {
    const repo = await setup();
    await expect(
      scanCommits({
        ...inRepo(repo),
        commits: [],
        rules: [{ id: "bad", regex: "(" }],
      }),
    ).rejects.toMatchObject({ code: "BTL_SCAN_CONFIG" });
    await expect(scanCommits({ ...inRepo(repo), commits: ["--all"] })).rejects.toMatchObject({
      code: "BTL_SCAN_CONFIG",
    });
  });
});

/** An env whose PATH starts with the fixtures directory (holding the fake `gitleaks`). */
async function withFakeGitleaks(
  repo: Repo,
  mode: string,
): Promise<{ env: Record<string, string>; args: string }> {
  const args = join(await testdir(), "args.jsonl");
  const env = {
    ...repo.env,
    PATH: `${FIXTURES}${delimiter}${repo.env.PATH}`,
    FAKE_GITLEAKS: mode,
    FAKE_GITLEAKS_ARGS: args,
  };
  return { env, args };
}

describe("scanCommits with gitleaks", { tags: ["slow"] }, () => {
  test("is chosen when gitleaks is on PATH, reads what the built-in scanner reads, keeps no secret", async () => {
    const repo = await setup({ "old.txt": `${ghp()}\n` });
    const secret = ghp();
    let first = "";
    const tip = await offBranch(repo, async () => {
      first = await commitIn(repo, { "a.txt": `x\n${secret}\n` }, `a\n\nmessage ${ghp()}`);
      await commitIn(repo, { "b.txt": "clean\n" }, "b");
    });
    const { env, args } = await withFakeGitleaks(repo, "ok");
    const result = await scanPush(repo, tip, { env, scanner: "auto" });
    expect(result.scanner).toBe("gitleaks");
    // gitleaks' own rule: it read the raw commit and the added lines, placed back where they are.
    expect(result.findings.map((f) => [f.commit, f.file, f.line, f.rule])).toEqual([
      [first, "(commit message)", 3, "github-pat"],
      [first, "a.txt", 2, "github-pat"],
    ]);
    expect(result.findings[1]?.fingerprint).toBe(`${first}:a.txt:github-pat:2`);
    expectNoCanary(secret, JSON.stringify(result), formatFindings(result.findings).join("\n"));
    const [call] = (await readFile(args, "utf8"))
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as { args: string[]; cwd: string });
    expect(call?.args[0]).toBe("dir");
    expect(call?.args).toContain("--ignore-gitleaks-allow");
    expect(call?.args.at(-1)).toBe(".");
    // The text it read (raw secrets) is gone with the scan.
    expect(existsSync(call?.cwd ?? "/")).toBe(false);
  });

  test("reads files its default path allowlist skips: the built-in scanner and gitleaks both report them", async () => {
    const repo = await setup();
    const paths = [
      "node_modules/pkg/index.js",
      "package-lock.json",
      "logo.png",
      "vendor/github.com/x/y.go",
      "go.sum",
    ];
    const tip = await offBranch(repo, () =>
      commitIn(repo, Object.fromEntries(paths.map((path) => [path, `k=${ghp()}\n`])), "deps"),
    );
    for (const scanner of ["builtin", "gitleaks"] as const) {
      const { env } = await withFakeGitleaks(repo, "ok");
      const result = await scanPush(repo, tip, { env, scanner });
      for (const path of paths) {
        const found = result.findings.filter((f) => f.file === path);
        expect(
          found.map((f) => f.rule),
          `${scanner} ${path}`,
        ).toEqual([scanner === "gitleaks" ? "github-pat" : "@secretlint/secretlint-rule-github"]);
      }
    }
  });

  test("is used when given by path, and required when asked for", async () => {
    const repo = await setup();
    const tip = await offBranch(repo, () => commitIn(repo, { "a.txt": "a\n" }, "a"));
    const { env } = await withFakeGitleaks(repo, "ok");
    const byPath = await scanPush(repo, tip, {
      env: { ...env, PATH: repo.env.PATH ?? "" },
      scanner: "gitleaks",
      gitleaksPath: join(FIXTURES, "gitleaks"),
    });
    expect(byPath.scanner).toBe("gitleaks");
    await expect(scanPush(repo, tip, { scanner: "gitleaks" })).rejects.toMatchObject({
      code: "BTL_SCAN_CONFIG",
    });
    expect((await scanPush(repo, tip, { env, scanner: "builtin" })).scanner).toBe("builtin");
  });

  test.each(["crash", "garbage", "bad-entry", "no-report"])(
    "fails closed with BTL_SCAN_FAILED when gitleaks does %s",
    async (mode) => {
      const repo = await setup();
      const tip = await offBranch(repo, () => commitIn(repo, { "a.txt": "a\n" }, "a"));
      const { env } = await withFakeGitleaks(repo, mode);
      await expect(scanPush(repo, tip, { env, scanner: "gitleaks" })).rejects.toMatchObject({
        code: "BTL_SCAN_FAILED",
      });
    },
  );

  test("kills a hanging gitleaks at the timeout", async () => {
    const repo = await setup();
    const tip = await offBranch(repo, () => commitIn(repo, { "a.txt": "a\n" }, "a"));
    const { env } = await withFakeGitleaks(repo, "hang");
    const started = Date.now();
    await expect(
      scanPush(repo, tip, { env, scanner: "gitleaks", timeoutMs: 1500 }),
    ).rejects.toMatchObject({
      code: "BTL_SCAN_FAILED",
    });
    expect(Date.now() - started).toBeLessThan(5000);
  });
});

describe("findings", () => {
  test("redact shows at most 4 characters and a quarter of the secret", () => {
    expect(redact(`ghp_${"0".repeat(36)}`)).toBe("ghp_…(40 chars)");
    expect(redact("abcdefgh")).toBe("ab…(8 chars)");
    expect(redact("abc")).toBe("…(3 chars)");
    expect(redact("a")).toBe("…(1 char)");
    expect(redact("\u001b[31mhidden-secret")).toBe("?[31…(18 chars)");
  });

  test("fingerprints use gitleaks' format, with control characters escaped", () => {
    const finding = { commit: "c".repeat(40), file: "dir/a b.txt", rule: "github-pat", line: 7 };
    expect(fingerprintOf(finding)).toBe(`${"c".repeat(40)}:dir/a b.txt:github-pat:7`);
    expect(fingerprintOf({ ...finding, file: "a\nb\u202e\\" })).toBe(
      `${"c".repeat(40)}:a\\nb\\u202e\\\\:github-pat:7`,
    );
  });

  test("formatFindings lists each finding and how to proceed, printable only", () => {
    const finding = (file: string, line: number): Finding => {
      const base = {
        commit: "a".repeat(40),
        file,
        line,
        rule: "bottle/npm-token",
        redacted: "npm_…(40 chars)",
      };
      return { ...base, fingerprint: fingerprintOf(base) };
    };
    expect(formatFindings([])).toEqual([]);
    const lines = formatFindings([finding("x.txt", 3), finding("evil\u001b[2J\rname", 1)]);
    expect(lines[0]).toContain("2 possible secrets");
    expect(lines).toContain(
      `  commit aaaaaaaaaaaa x.txt:3 bottle/npm-token npm_…(40 chars)  fingerprint ${"a".repeat(40)}:x.txt:bottle/npm-token:3`,
    );
    expect(lines.join("\n")).toContain("evil\\x1b[2J\\rname:1");
    expect(lines.join("\n")).toContain("git_gate.scan.allowlist");
    expect(lines.join("\n")).toMatch(/rotate/);
    for (const line of lines) expect(line).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
    const many = formatFindings(Array.from({ length: 150 }, (_, index) => finding("f", index)));
    expect(many.filter((line) => line.startsWith("  commit "))).toHaveLength(100);
    expect(many.join("\n")).toContain("and 50 more");
  });
});
