import { join } from "node:path";
import { isBottleError } from "@bottle/errors";
import { codes, SCAN_ERRORS, ScanError } from "@bottle/secret-scan";
import { expectErrorTableDocumented } from "@bottle/test-utils";
import { describe, expect, it } from "vitest";

describe("error codes", () => {
  it("match the README's Errors table, row for row", async () => {
    await expectErrorTableDocumented(join(import.meta.dirname, "../README.md"), SCAN_ERRORS);
  });

  it("are branded BottleErrors with the table's exit codes", () => {
    const error = new ScanError("BTL_SCAN_SECRETS_FOUND", "x");
    expect(isBottleError(error, codes.BTL_SCAN_SECRETS_FOUND)).toBe(true);
    expect(error.exitCode).toBe(1);
    expect(new ScanError("BTL_SCAN_FAILED", "x").exitCode).toBe(3);
  });
});
