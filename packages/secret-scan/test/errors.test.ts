import { join } from "node:path";
import { isBottleError } from "@bottle/errors";
import { codes, SCAN_ERRORS, ScanError } from "@bottle/secret-scan";
import { expectErrorTable } from "@bottle/test-utils";
import { it } from "vitest";

const check = { table: SCAN_ERRORS, codes, ErrorClass: ScanError, isBottleError };

it("documents every code, and ScanError makes each with its row's status and exit code", () =>
  expectErrorTable(join(import.meta.dirname, "../README.md"), check));
