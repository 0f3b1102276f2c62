import { join } from "node:path";
import { isBottleError } from "@bottle/errors";
import { codes, TOKEN_ERRORS, TokenStoreError } from "@bottle/gate-tokens";
import { expectErrorTable } from "@bottle/test-utils";
import { it } from "vitest";

const check = { table: TOKEN_ERRORS, codes, ErrorClass: TokenStoreError, isBottleError };

it("documents every code, and TokenStoreError makes each with its row's status and exit code", () =>
  expectErrorTable(join(import.meta.dirname, "../README.md"), check));
