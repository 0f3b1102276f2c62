import { join } from "node:path";
import { isBottleError } from "@bottle/errors";
import { codes, GATE_ERRORS, GateError } from "@bottle/gate-server";
import { expectErrorTableDocumented } from "@bottle/test-utils";
import { describe, expect, it } from "vitest";

describe("error codes", () => {
  it("match the README's Errors table, row for row", async () => {
    await expectErrorTableDocumented(join(import.meta.dirname, "../README.md"), GATE_ERRORS);
  });

  it("are branded BottleErrors", () => {
    expect(isBottleError(new GateError("BTL_GATE_CONFIG", "x"), codes.BTL_GATE_CONFIG)).toBe(true);
  });
});
