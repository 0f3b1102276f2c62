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
  table: Readonly<Record<string, { readonly status: number; readonly exit: number }>>,
): Promise<void> {
  const rows = await readErrorTable(readmePath);
  expect(rows).toEqual(
    Object.entries(table).map(([code, spec]) => ({ code, status: spec.status, exit: spec.exit })),
  );
}
