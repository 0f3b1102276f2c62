import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import {
  type BinaryChange,
  DiffParser,
  parseGitHeader,
  streamAddedLines,
  unquote,
} from "../src/diff.ts";
import { printableRuns, scanBlobs } from "../src/objects.ts";
import { commitIn, inRepo, type Repo, run, setup } from "./helpers.ts";

type Added = [commit: string, file: string, line: number, text: string];

const NONCE = "n0nce";
const C1 = "1".repeat(40);

/** Parses `text` (as git would print it with the nonce `n0nce`) fed in chunks of `size` bytes. */
function parse(
  text: string,
  size = 7,
): { added: Added[]; binaries: BinaryChange[]; covered: Set<string> } {
  const added: Added[] = [];
  const parser = new DiffParser({ nonce: NONCE, onLine: (...line) => added.push(line) });
  const bytes = Buffer.from(text);
  for (let at = 0; at < bytes.length; at += size) parser.push(bytes.subarray(at, at + size));
  return { added, binaries: parser.end(), covered: parser.covered };
}

const start = (commit: string) => `\0${NONCE}\0${commit}\n`;
const byFile = (added: Added[], file: string) =>
  added.filter(([, name]) => name === file).map(([, , line, text]) => [line, text]);

describe("DiffParser", () => {
  test("reads plain hunks with new-file line numbers, and records the new blob as covered", () => {
    const text = [
      start(C1),
      "diff --git a/src/x.ts b/src/x.ts",
      "index 1111111111111111111111111111111111111111..2222222222222222222222222222222222222222 100644",
      "--- a/src/x.ts",
      "+++ b/src/x.ts",
      "@@ -3,0 +4,2 @@ function f() {",
      "+added four",
      "+added five",
      "@@ -10 +12 @@",
      "-old",
      "+new twelve",
      "\\ No newline at end of file",
      "",
    ].join("\n");
    // Chunks of 1 byte split every multi-byte character too.
    for (const size of [1, 7, 4096]) {
      const { added, binaries, covered } = parse(text, size);
      expect(covered).toEqual(new Set(["2".repeat(40)]));
      expect(byFile(added, "src/x.ts")).toEqual([
        [4, "added four"],
        [5, "added five"],
        [12, "new twelve"],
      ]);
      expect(added.every(([commit]) => commit === C1)).toBe(true);
      expect(binaries).toEqual([]);
    }
  });

  test("counts a merge's line as added only when every parent column is +", () => {
    const text = [
      start(C1),
      "diff --combined f.txt",
      "index aaaa,bbbb..cccc",
      "--- a/f.txt",
      "+++ b/f.txt",
      "@@@ -1,1 -1,2 +1,4 @@@",
      "+ from side",
      " +from main",
      "++evil two",
      "- removed by merge",
      "++evil three",
      "@@@@ -7 -7 -7 +9 @@@@",
      "+++octopus nine",
      "++ from two parents",
      "",
    ].join("\n");
    expect(byFile(parse(text).added, "f.txt")).toEqual([
      [3, "evil two"],
      [4, "evil three"],
      [9, "octopus nine"],
    ]);
  });

  test("takes the new path of renames and quoted names, and collects binaries", () => {
    const zero = "0".repeat(40);
    const blob = "b".repeat(40);
    const text = [
      start(C1),
      'diff --git a/old.txt "b/new \\"q\\" \\303\\251\\n.txt"',
      "similarity index 90%",
      "rename from old.txt",
      'rename to "new \\"q\\" \\303\\251\\n.txt"',
      "index 1111111111111111111111111111111111111111..2222222222222222222222222222222222222222 100644",
      "--- a/old.txt",
      '+++ "b/new \\"q\\" \\303\\251\\n.txt"',
      "@@ -2 +2 @@",
      "+edited",
      "diff --git a/pure b/renamed",
      "similarity index 100%",
      "rename from pure",
      "rename to renamed",
      "diff --git a/with space.txt b/with space.txt",
      "--- a/with space.txt\t",
      "+++ b/with space.txt\t",
      "@@ -0,0 +1 @@",
      "+spaced",
      "diff --git a/img b/a b/img b/a",
      "new file mode 100644",
      `index ${zero}..${blob}`,
      "Binary files /dev/null and b/img b/a differ",
      "diff --combined m.bin",
      `index ${"c".repeat(40)},${zero}..${blob}`,
      "Binary files differ",
      "diff --git a/gone.bin b/gone.bin",
      "deleted file mode 100644",
      `index ${blob}..${zero}`,
      "Binary files a/gone.bin and /dev/null differ",
      "",
    ].join("\n");
    const { added, binaries } = parse(text);
    expect(byFile(added, 'new "q" é\n.txt')).toEqual([[2, "edited"]]);
    expect(byFile(added, "with space.txt")).toEqual([[1, "spaced"]]);
    expect(added.some(([, file]) => file === "renamed")).toBe(false);
    expect(binaries).toEqual([
      { commit: C1, file: "img b/a", oldBlobs: [], newBlob: blob },
      { commit: C1, file: "m.bin", oldBlobs: ["c".repeat(40)], newBlob: blob },
    ]);
  });

  test("cannot be fooled by content that looks like a commit boundary", () => {
    const forged = `\0other\0${"f".repeat(40)}`;
    const text = [
      start(C1),
      ` \0${NONCE}\0 not at the start, and ${forged}`,
      "diff --git a/x b/x",
      "--- a/x",
      "+++ b/x",
      "@@ -0,0 +1,2 @@",
      `+${forged}`,
      "+diff --git a/y b/y",
      "",
    ].join("\n");
    const { added } = parse(text);
    expect(added.every(([commit]) => commit === C1)).toBe(true);
    expect(byFile(added, "x")).toHaveLength(2);
  });
});

describe("path helpers", () => {
  test.each([
    ["a/x b/x", "x"],
    ["a/a b/c b/a b/c", "a b/c"],
    ['"a/t\\tab" "b/t\\tab"', "t\tab"],
    ['a/old "b/n\\303\\251w"', "néw"],
    ['"a/\\"q\\"" b/plain', "plain"],
  ])("parseGitHeader(%j) is %j", (header, path) => {
    expect(parseGitHeader(header)).toBe(path);
  });

  test("unquotes git's C-style names and leaves others alone", () => {
    expect(unquote('"\\a\\b\\t\\n\\v\\f\\r\\"\\\\\\001"')).toBe('\u0007\b\t\n\v\f\r"\\\u0001');
    expect(unquote("plain name")).toBe("plain name");
    expect(unquote('"unterminated')).toBeUndefined();
    expect(unquote('"bad \\q escape"')).toBeUndefined();
  });
});

describe("printableRuns", () => {
  test("finds ASCII and UTF-16 text behind NUL bytes, with line numbers", () => {
    const utf16 = Buffer.from("wide secret text", "utf16le");
    const bytes = Buffer.concat([
      Buffer.from("\0\0short\nline two\n\0\u0001hidden-secret-value\0"),
      Buffer.from([0xff, 0x0a]),
      utf16,
    ]);
    const runs: Array<[number, string]> = [];
    printableRuns(bytes, (line, text) => runs.push([line, text]));
    expect(runs).toContainEqual([2, "line two"]);
    expect(runs).toContainEqual([3, "hidden-secret-value"]);
    expect(runs.some(([, text]) => text === "wide secret text")).toBe(true);
    expect(runs.some(([, text]) => text === "short")).toBe(false);
  });

  test("never throws on random bytes", () => {
    for (let round = 0; round < 20; round++) {
      expect(() => printableRuns(randomBytes(4096 + round), () => {})).not.toThrow();
    }
  });
});

async function addedLines(
  repo: Repo,
  commits: string[],
): Promise<{ added: Added[]; binaries: BinaryChange[] }> {
  const added: Added[] = [];
  const { binaries } = await streamAddedLines({
    ...inRepo(repo),
    commits,
    onLine: (...line) => added.push(line),
    timeoutMs: 30_000,
  });
  return { added, binaries: [...binaries] };
}

/** The lines of files only: not those of a commit's header or message (`(commit message)`). */
const inFiles = (added: Added[]) => added.filter(([, file]) => !file.startsWith("("));

describe("streamAddedLines on a real repository", () => {
  test("reports a renamed and edited file's edit at the new path", async () => {
    const lines = Array.from({ length: 20 }, (_, index) => `line ${index + 1}`);
    const repo = await setup({ "docs/old name.md": `${lines.join("\n")}\n` });
    await run(repo, ["mv", "docs/old name.md", "docs/new name.md"]);
    lines[9] = "line ten, edited";
    const commit = await commitIn(repo, { "docs/new name.md": `${lines.join("\n")}\n` }, "rename");
    const { added } = await addedLines(repo, [commit]);
    expect(inFiles(added)).toEqual([[commit, "docs/new name.md", 10, "line ten, edited"]]);
  });

  test("handles names with spaces, quotes, non-ASCII and newlines, and deletions", async () => {
    const repo = await setup({ "doomed.txt": "bye\n" });
    const names = [
      "with space.txt",
      'quo"te.txt',
      "naïve 名前.txt",
      "new\nline.txt",
      "tab\there.txt",
    ];
    await run(repo, ["rm", "-q", "doomed.txt"]);
    const commit = await commitIn(
      repo,
      Object.fromEntries(names.map((name, index) => [name, `content ${index}\n`])),
      "names",
    );
    const { added } = await addedLines(repo, [commit]);
    for (const [index, name] of names.entries()) {
      expect(added).toContainEqual([commit, name, 1, `content ${index}`]);
    }
    expect(added.some(([, file]) => file === "doomed.txt")).toBe(false);
  });

  test("scans a merge's own lines, not what it merges in", async () => {
    const repo = await setup({ "f.txt": "a\nb\n" });
    await run(repo, ["checkout", "-q", "-b", "side"]);
    await commitIn(repo, { "side.txt": "from side\n" }, "side");
    await run(repo, ["checkout", "-q", "main"]);
    await commitIn(repo, { "main.txt": "from main\n" }, "main");
    await run(repo, ["merge", "-q", "--no-commit", "side"]);
    await writeFile(join(repo.dir, "f.txt"), "a\nevil line\nb\n");
    const merge = await commitIn(repo, { "f.txt": "a\nevil line\nb\n" }, "merge");
    const { added } = await addedLines(repo, [merge]);
    expect(inFiles(added)).toEqual([[merge, "f.txt", 2, "evil line"]]);
  });

  test("collects binary files with their old and new blobs", async () => {
    const repo = await setup({ "blob.bin": "\0old binary content\n" });
    const commit = await commitIn(repo, { "blob.bin": "\0new binary content\n" }, "bin");
    const { binaries } = await addedLines(repo, [commit]);
    const oldBlob = await run(repo, ["rev-parse", "HEAD~1:blob.bin"]);
    const newBlob = await run(repo, ["rev-parse", "HEAD:blob.bin"]);
    expect(binaries).toEqual([{ commit, file: "blob.bin", oldBlobs: [oldBlob], newBlob }]);
    const runs: Added[] = [];
    await scanBlobs({
      ...inRepo(repo),
      changes: binaries,
      onLine: (...line) => runs.push(line),
      timeoutMs: 30_000,
    });
    expect(runs).toEqual([[commit, "blob.bin", 1, "new binary content"]]);
  });

  test("scans nothing for no commits (an empty --stdin would mean HEAD)", async () => {
    const repo = await setup();
    expect(await addedLines(repo, [])).toEqual({ added: [], binaries: [] });
  });
});
