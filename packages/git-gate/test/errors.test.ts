import { join } from "node:path";
import { isBottleError } from "@bottle/errors";
import { codes, GIT_GATE_ERRORS, GitGateError } from "@bottle/git-gate";
import { expectErrorTable } from "@bottle/test-utils";
import { it } from "vitest";

const check = { table: GIT_GATE_ERRORS, codes, ErrorClass: GitGateError, isBottleError };

it("documents every code, and GitGateError makes each with its row's status and exit code", () =>
  expectErrorTable(join(import.meta.dirname, "../README.md"), check));
