import { join } from "node:path";
import { BottleError, isBottleError } from "@bottle/errors";
import { codes, TOKEN_ERRORS, TokenStoreError } from "@bottle/gate-tokens";
import { expectErrorTableDocumented } from "@bottle/test-utils";
import { describe, expect, it } from "vitest";

describe("error codes", () => {
  it("match the README's Errors table, row for row", async () => {
    await expectErrorTableDocumented(join(import.meta.dirname, "../README.md"), TOKEN_ERRORS);
  });

  it("are exported as a frozen codes object", () => {
    expect(Object.isFrozen(codes)).toBe(true);
    expect(Object.keys(codes)).toEqual(Object.keys(TOKEN_ERRORS));
    for (const [key, value] of Object.entries(codes)) expect(key).toBe(value);
    for (const code of Object.keys(codes)) expect(code).toMatch(/^BTL_(TOKENS_[A-Z_]+|INTERNAL)$/);
  });

  it("are BottleErrors with a brand, and serialise to code and message only", () => {
    const error = new TokenStoreError("BTL_TOKENS_CORRUPT", "bad", { cause: new Error("inner") });
    expect(error).toBeInstanceOf(BottleError);
    expect(error.name).toBe("TokenStoreError");
    expect(isBottleError(error, codes.BTL_TOKENS_CORRUPT)).toBe(true);
    expect(error.exitCode).toBe(3);
    expect(error.status).toBe(503);
    expect(JSON.stringify(error)).toBe('{"code":"BTL_TOKENS_CORRUPT","message":"bad"}');
  });
});
