import { join } from "node:path";
import { CLI_ERRORS, CliError, codes } from "@bottle/cli";
import { isBottleError } from "@bottle/errors";
import { expectErrorTableDocumented } from "@bottle/test-utils";
import { describe, expect, it } from "vitest";

describe("CLI error codes", () => {
  it("match the README's Errors table, row for row", async () => {
    await expectErrorTableDocumented(join(import.meta.dirname, "../README.md"), CLI_ERRORS);
  });

  it("are branded BottleErrors", () => {
    expect(isBottleError(new CliError("BTL_CLI_USAGE", "x"), codes.BTL_CLI_USAGE)).toBe(true);
  });
});
