import { join } from "node:path";
import { isBottleError } from "@bottle/errors";
import { codes, GIT_GATE_ERRORS, GitGateError } from "@bottle/git-gate";
import { expectErrorTableDocumented } from "@bottle/test-utils";
import { describe, expect, it } from "vitest";

describe("error codes", () => {
  it("match the README's Errors table, row for row", async () => {
    await expectErrorTableDocumented(join(import.meta.dirname, "../README.md"), GIT_GATE_ERRORS);
  });

  it("are branded BottleErrors with the table's exit codes", () => {
    const error = new GitGateError("BTL_GITGATE_SECRETS_FOUND", "x");
    expect(isBottleError(error, codes.BTL_GITGATE_SECRETS_FOUND)).toBe(true);
    expect(error.exitCode).toBe(1);
    expect(new GitGateError("BTL_GITGATE_SCANNER_FAILED", "x").exitCode).toBe(3);
  });
});
