import { join } from "node:path";
import { isBottleError } from "@bottle/errors";
import { codes, TOKEN_ERRORS, TokenStoreError } from "@bottle/gate-tokens";
import { expectErrorTableDocumented } from "@bottle/test-utils";
import { describe, expect, it } from "vitest";

describe("error codes", () => {
  it("match the README's Errors table, row for row", async () => {
    await expectErrorTableDocumented(join(import.meta.dirname, "../README.md"), TOKEN_ERRORS);
  });

  it("are branded and serialise to code and message", () => {
    const error = new TokenStoreError("BTL_TOKENS_CORRUPT", "bad", { cause: new Error("x") });
    expect(isBottleError(error, codes.BTL_TOKENS_CORRUPT)).toBe(true);
    expect(JSON.stringify(error)).toBe('{"code":"BTL_TOKENS_CORRUPT","message":"bad"}');
  });
});
