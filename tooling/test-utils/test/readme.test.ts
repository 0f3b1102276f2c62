import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { expectErrorTable, readErrorTable, testdir } from "../src/index.ts";

const README = `# @bottle/example

Some intro.

## Errors

Every error carries a stable code.

| Code | HTTP/exit | Meaning | What to do |
| --- | :---: | --- | --- |
| \`BTL_MANIFEST_PARSE\` | 400/2 | The manifest is not valid YAML | Fix the syntax |
| \`BTL_INTERNAL\` | 500/1 | Unexpected failure \\| see logs | Report a bug |

## Logging

| Code | HTTP/exit | Meaning | What to do |
| --- | --- | --- | --- |
| \`BTL_NOT_IN_ERRORS\` | 418/9 | outside the section | ignore |
`;

async function readmeWith(text: string): Promise<string> {
  const dir = await testdir({ "README.md": text });
  return join(dir, "README.md");
}

describe("readErrorTable", () => {
  it("returns the rows of the Errors table in order with status and exit code", async () => {
    expect(await readErrorTable(await readmeWith(README))).toEqual([
      { code: "BTL_MANIFEST_PARSE", status: 400, exit: 2 },
      { code: "BTL_INTERNAL", status: 500, exit: 1 },
    ]);
  });

  it("ignores an Errors heading inside a fenced code block", async () => {
    const fenced = `# x\n\n\`\`\`md\n## Errors\n\`\`\`\n\n${README.slice(README.indexOf("## Errors"))}`;
    expect(await readErrorTable(await readmeWith(fenced))).toHaveLength(2);
  });

  it("throws when the README has no Errors section", async () => {
    const path = await readmeWith("# x\n\n## Usage\n\nnothing\n");
    await expect(readErrorTable(path)).rejects.toThrow(/no "## Errors" section/);
  });

  it("throws when the Errors section has no table with the expected header", async () => {
    const path = await readmeWith("# x\n\n## Errors\n\n| Code | Status |\n| --- | --- |\n");
    await expect(readErrorTable(path)).rejects.toThrow(/has no "\| Code \| HTTP\/exit/);
  });

  it("throws with the line number when a row's HTTP/exit cell is malformed", async () => {
    const path = await readmeWith(README.replace("400/2", "400"));
    await expect(readErrorTable(path)).rejects.toThrow(/README\.md:11: .*HTTP\/exit cell/);
  });

  it("throws when a row's code is not a backticked BTL code", async () => {
    const path = await readmeWith(README.replace("`BTL_INTERNAL`", "BTL_INTERNAL"));
    await expect(readErrorTable(path)).rejects.toThrow(/README\.md:12: .*Code cell/);
  });

  it("throws when a row has the wrong number of cells", async () => {
    const path = await readmeWith(README.replace("| Fix the syntax |", "|"));
    await expect(readErrorTable(path)).rejects.toThrow(/expected 4 cells, got 3/);
  });

  it("throws when the table has no rows", async () => {
    const header = "| Code | HTTP/exit | Meaning | What to do |\n| --- | --- | --- | --- |\n";
    const path = await readmeWith(`# x\n\n## Errors\n\n${header}\nText.\n`);
    await expect(readErrorTable(path)).rejects.toThrow(/has no rows/);
  });
});

describe("expectErrorTable", () => {
  const table = Object.freeze({
    BTL_MANIFEST_PARSE: { status: 400, exit: 2 },
    BTL_INTERNAL: { status: 500, exit: 1 },
  });
  const codes = Object.freeze({
    BTL_MANIFEST_PARSE: "BTL_MANIFEST_PARSE",
    BTL_INTERNAL: "BTL_INTERNAL",
  });
  const branded = new WeakSet<object>();
  class ExampleError extends Error {
    readonly code: keyof typeof table;
    readonly status: number;
    readonly exitCode: number;
    constructor(code: keyof typeof table, message: string, status = table[code].status) {
      super(message);
      this.name = "ExampleError";
      [this.code, this.status, this.exitCode] = [code, status, table[code].exit];
      branded.add(this);
    }
    toJSON() {
      return { code: this.code, message: this.message };
    }
  }
  const check = {
    table,
    codes,
    ErrorClass: ExampleError,
    isBottleError: (value: unknown, code?: string) =>
      branded.has(value as object) && (value as ExampleError).code === code,
  };

  it("passes for a table its README, codes and class agree with", async () => {
    await expectErrorTable(await readmeWith(README), check);
  });

  it("fails on a wrong class name, status, brand, codes object or serialisation", async () => {
    const path = await readmeWith(README);
    const wrong = [
      { ...check, ErrorClass: class OtherError extends Error {} },
      { ...check, make: (code: keyof typeof table) => new ExampleError(code, "x", 418) },
      { ...check, isBottleError: () => false },
      { ...check, codes: { ...codes } },
      {
        ...check,
        make: (code: keyof typeof table) =>
          Object.assign(new ExampleError(code, "x"), { toJSON: () => ({ code, cause: "x" }) }),
      },
    ];
    for (const bad of wrong) await expect(expectErrorTable(path, bad)).rejects.toThrow();
  });
});
