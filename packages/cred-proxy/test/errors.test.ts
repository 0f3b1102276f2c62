import { join } from "node:path";
import { codes, PROXY_ERRORS, ProxyError } from "@bottle/cred-proxy";
import { isBottleError } from "@bottle/errors";
import { expectErrorTableDocumented } from "@bottle/test-utils";
import { describe, expect, it } from "vitest";

describe("error codes", () => {
  it("match the README's Errors table, row for row", async () => {
    await expectErrorTableDocumented(join(import.meta.dirname, "../README.md"), PROXY_ERRORS);
  });

  it("are branded BottleErrors", () => {
    expect(isBottleError(new ProxyError("BTL_PROXY_BAD_PATH", "x"), codes.BTL_PROXY_BAD_PATH)).toBe(
      true,
    );
  });
});
