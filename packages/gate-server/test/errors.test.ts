import { join } from "node:path";
import { isBottleError } from "@bottle/errors";
import { codes, GATE_ERRORS, GateError } from "@bottle/gate-server";
import { expectErrorTable } from "@bottle/test-utils";
import { it } from "vitest";

const check = { table: GATE_ERRORS, codes, ErrorClass: GateError, isBottleError };

it("documents every code, and GateError makes each with its row's status and exit code", () =>
  expectErrorTable(join(import.meta.dirname, "../README.md"), check));
