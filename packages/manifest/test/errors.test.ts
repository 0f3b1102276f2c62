import { join } from "node:path";
import { BottleError, isBottleError } from "@bottle/errors";
import { codes, MANIFEST_ERRORS, ManifestError } from "@bottle/manifest";
import { expectErrorTableDocumented } from "@bottle/test-utils";
import { describe, expect, it } from "vitest";

describe("error codes", () => {
  it("match the README's Errors table, row for row", async () => {
    await expectErrorTableDocumented(join(import.meta.dirname, "../README.md"), MANIFEST_ERRORS);
  });

  it("are exported as a frozen codes object", () => {
    expect(Object.isFrozen(codes)).toBe(true);
    expect(Object.keys(codes)).toEqual(Object.keys(MANIFEST_ERRORS));
    for (const [key, value] of Object.entries(codes)) expect(key).toBe(value);
  });

  it("are BottleErrors with a brand, and serialise to code and message only", () => {
    const error = new ManifestError(
      [{ code: "BTL_MANIFEST_INVALID", path: "name", message: "bad", line: 2, column: 7 }],
      "b.yaml",
      { cause: new Error("inner") },
    );
    expect(error).toBeInstanceOf(BottleError);
    expect(isBottleError(error, codes.BTL_MANIFEST_INVALID)).toBe(true);
    expect(error.exitCode).toBe(2);
    expect(JSON.parse(JSON.stringify(error))).toEqual({
      code: "BTL_MANIFEST_INVALID",
      message: "b.yaml:2:7: name: bad",
    });
  });
});
