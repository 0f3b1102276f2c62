import { join } from "node:path";
import { isBottleError } from "@bottle/errors";
import { expectErrorTableDocumented } from "@bottle/test-utils";
import { codes, TOKMAN_ERRORS, TokmanError } from "@bottle/tokman";
import { describe, expect, it } from "vitest";

describe("error codes", () => {
  it("match the README's Errors table, row for row", async () => {
    await expectErrorTableDocumented(join(import.meta.dirname, "../README.md"), TOKMAN_ERRORS);
  });

  it("are branded BottleErrors and carry the reset time when rate limited", () => {
    const resetAt = new Date("2026-12-01T10:00:00Z");
    const error = new TokmanError("BTL_TOKMAN_RATE_LIMITED", "x", { resetAt });
    expect(isBottleError(error, codes.BTL_TOKMAN_RATE_LIMITED)).toBe(true);
    expect(error.status).toBe(429);
    expect(error.resetAt).toBe(resetAt);
  });
});
