import { readFile } from "node:fs/promises";
import { expect } from "vitest";

/** One row of a README's `## Errors` table. */
export interface ErrorTableRow {
  code: string;
  /** The HTTP status. */
  status: number;
  /** The process exit code. */
  exit: number;
}

const HEADER = ["Code", "HTTP/exit", "Meaning", "What to do"];
const CODE_CELL = /^`(BTL_[A-Z0-9]+(?:_[A-Z0-9]+)*)`$/;
const STATUS_CELL = /^(\d{3})\/(\d{1,3})$/;
const SEPARATOR_CELL = /^:?-{3,}:?$/;

/** Splits a markdown table row into trimmed cells; `\|` is a literal pipe inside a cell. */
function splitRow(line: string): string[] {
  const inner = line
    .trim()
    .replace(/^\|/, "")
    .replace(/(?<!\\)\|$/, "");
  return inner.split(/(?<!\\)\|/).map((cell) => cell.trim());
}

/** Returns the lines of the `## Errors` section with their 1-based line numbers. */
function errorsSection(lines: readonly string[], path: string): Array<[number, string]> {
  let inFence = false;
  let section: Array<[number, string]> | undefined;
  for (const [index, line] of lines.entries()) {
    if (/^\s*(```|~~~)/.test(line)) inFence = !inFence;
    const heading = !inFence && /^#{1,2}\s/.test(line);
    if (heading && section !== undefined) break;
    if (heading && /^##\s+Errors\s*$/.test(line)) {
      section = [];
      continue;
    }
    section?.push([index + 1, line]);
  }
  if (section === undefined) throw new Error(`${path}: no "## Errors" section`);
  return section;
}

function parseRow(cells: readonly string[], where: string): ErrorTableRow {
  if (cells.length !== HEADER.length) {
    throw new Error(`${where}: expected ${HEADER.length} cells, got ${cells.length}`);
  }
  const code = CODE_CELL.exec(cells[0] ?? "")?.[1];
  if (code === undefined) {
    throw new Error(`${where}: expected the Code cell to be \`BTL_…\`, got ${cells[0]}`);
  }
  const status = STATUS_CELL.exec(cells[1] ?? "");
  if (status === null) {
    throw new Error(`${where}: expected the HTTP/exit cell to be like 400/2, got ${cells[1]}`);
  }
  return { code, status: Number(status[1]), exit: Number(status[2]) };
}

/** A package's error table: code → status and exit code (and its meaning). */
type ErrorTableLike = Readonly<Record<string, { readonly status: number; readonly exit: number }>>;

/**
 * Reads the `## Errors` table (`| Code | HTTP/exit | Meaning | What to do |`) of a README and
 * returns its rows in order. Throws when the section or table is missing or a row is malformed.
 */
export async function readErrorTable(readmePath: string): Promise<ErrorTableRow[]> {
  const text = await readFile(readmePath, "utf8");
  const section = errorsSection(text.split(/\r?\n/), readmePath);
  const start = section.findIndex(([, line]) => {
    const cells = line.trim().startsWith("|") ? splitRow(line) : [];
    return cells.join("|") === HEADER.join("|");
  });
  if (start === -1) {
    throw new Error(`${readmePath}: the Errors section has no "| ${HEADER.join(" | ")} |" table`);
  }
  const separator = section[start + 1];
  if (separator === undefined || !splitRow(separator[1]).every((c) => SEPARATOR_CELL.test(c))) {
    throw new Error(`${readmePath}:${(section[start]?.[0] ?? 0) + 1}: expected a separator row`);
  }
  const rows: ErrorTableRow[] = [];
  for (const [lineNumber, line] of section.slice(start + 2)) {
    if (!line.trim().startsWith("|")) break;
    rows.push(parseRow(splitRow(line), `${readmePath}:${lineNumber}`));
  }
  if (rows.length === 0) throw new Error(`${readmePath}: the Errors table has no rows`);
  return rows;
}

/**
 * Asserts that a package's error table and its README's Errors table agree row for row: same
 * codes, same order, same HTTP status and exit code.
 */
export async function expectErrorTableDocumented(
  readmePath: string,
  table: ErrorTableLike,
): Promise<void> {
  const rows = await readErrorTable(readmePath);
  expect(rows).toEqual(
    Object.entries(table).map(([code, spec]) => ({ code, status: spec.status, exit: spec.exit })),
  );
}

/** An error as a package's class makes it. */
interface ErrorLike {
  readonly name: string;
  readonly status: number;
  readonly exitCode: number;
}

/** What {@link expectErrorTable} checks: a package's error table, `codes` and class. */
export interface ErrorClassCheck<T extends ErrorTableLike> {
  readonly table: T;
  /** The package's `codes` object. */
  readonly codes: Readonly<Record<string, string>>;
  /** The package's one error class: every error must carry its name. */
  readonly ErrorClass: abstract new (
    ...args: never[]
  ) => Error;
  /** An error of `code` (default: `new ErrorClass(code, "x")`). */
  readonly make?: (code: keyof T & string) => ErrorLike;
  /** `isBottleError` of `@bottle/errors`: the brand check. */
  readonly isBottleError: (value: unknown, code?: string) => boolean;
}

/**
 * The checks every package's error table gets: its README documents it row for row; `codes`
 * is frozen and names every code of the table; and the package's class makes an error of each
 * code that carries the brand, the class's name and the row's status and exit code, and
 * serialises to its code and message only.
 */
export async function expectErrorTable<T extends ErrorTableLike>(
  readmePath: string,
  check: ErrorClassCheck<T>,
): Promise<void> {
  const { table, codes, ErrorClass } = check;
  await expectErrorTableDocumented(readmePath, table);
  expect(Object.isFrozen(codes)).toBe(true);
  expect(Object.entries(codes)).toEqual(Object.keys(table).map((code) => [code, code]));
  const make =
    check.make ??
    ((code: string) =>
      new (ErrorClass as unknown as new (c: string, m: string) => ErrorLike)(code, "x"));
  for (const [code, spec] of Object.entries(table)) {
    const error = make(code);
    expect(check.isBottleError(error, code), code).toBe(true);
    expect([error.name, error.status, error.exitCode], code).toEqual([
      ErrorClass.name,
      spec.status,
      spec.exit,
    ]);
    expect(Object.keys(JSON.parse(JSON.stringify(error))), code).toEqual(["code", "message"]);
  }
}
