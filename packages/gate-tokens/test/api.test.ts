import * as api from "@bottle/gate-tokens";
import { describe, expect, it } from "vitest";

describe("@bottle/gate-tokens", () => {
  it("exports the public API by its package name", () => {
    expect(Object.keys(api).sort()).toEqual([
      "TOKEN_ERRORS",
      "TOKEN_PREFIX",
      "TokenStoreError",
      "codes",
      "createTokenStore",
      "createTokenVerifier",
      "digestToken",
    ]);
  });
});
