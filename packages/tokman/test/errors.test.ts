import { join } from "node:path";
import { isBottleError } from "@bottle/errors";
import { expectErrorTable } from "@bottle/test-utils";
import { codes, TOKMAN_ERRORS, TokmanError } from "@bottle/tokman";
import { expect, it } from "vitest";

const check = { table: TOKMAN_ERRORS, codes, ErrorClass: TokmanError, isBottleError };

it("documents every code, and TokmanError makes each with its row's status and exit code", () =>
  expectErrorTable(join(import.meta.dirname, "../README.md"), check));

it("carries the reset time when rate limited", () => {
  const resetAt = new Date("2026-12-01T10:00:00Z");
  expect(new TokmanError("BTL_TOKMAN_RATE_LIMITED", "x", { resetAt }).resetAt).toBe(resetAt);
});
