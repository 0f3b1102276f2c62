import { join } from "node:path";
import { isBottleError } from "@bottle/errors";
import { codes, TOKEN_ERRORS, TokenStoreError } from "@bottle/gate-tokens";
import { readErrorTable } from "@bottle/test-utils";
import { describe, expect, it } from "vitest";

describe("error codes", () => {
  it("match the README's Errors table, row for row", async () => {
    const rows = await readErrorTable(join(import.meta.dirname, "../README.md"));
    expect(rows).toEqual(
      Object.entries(TOKEN_ERRORS).map(([code, s]) => ({ code, status: s.status, exit: s.exit })),
    );
  });

  it("are branded and serialise to code and message", () => {
    const error = new TokenStoreError("BTL_TOKENS_CORRUPT", "bad", { cause: new Error("x") });
    expect(isBottleError(error, codes.BTL_TOKENS_CORRUPT)).toBe(true);
    expect(JSON.stringify(error)).toBe('{"code":"BTL_TOKENS_CORRUPT","message":"bad"}');
  });
});
