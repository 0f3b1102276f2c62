import {
  BottleError,
  COMMON_ERRORS,
  defineErrors,
  errorClass,
  isBottleError,
  toBottleError,
} from "@bottle/errors";
import { expectErrorTableDocumented } from "@bottle/test-utils";
import { describe, expect, it } from "vitest";

const { table, codes } = defineErrors({
  BTL_DEMO_BROKEN: { status: 500, exit: 1, meaning: "It broke." },
  BTL_DEMO_DENIED: { status: 403, exit: 4, meaning: "Not allowed." },
});

class DemoError extends errorClass(table) {}

describe("BottleError", () => {
  it("carries its code, HTTP status and exit code", () => {
    const error = new DemoError("BTL_DEMO_DENIED", "no");
    expect([error.code, error.status, error.exitCode, error.name]).toEqual([
      "BTL_DEMO_DENIED",
      403,
      4,
      "DemoError",
    ]);
  });

  it("keeps the cause but serialises only code and message", () => {
    const cause = new Error("secret detail /etc/shadow");
    const error = new DemoError("BTL_DEMO_BROKEN", "broke", { cause, details: { path: "/x" } });
    expect(error.cause).toBe(cause);
    expect(JSON.stringify(error)).toBe('{"code":"BTL_DEMO_BROKEN","message":"broke"}');
  });

  it("is recognised by its brand, also from another copy of the package", () => {
    const foreign = Object.assign(new Error("x"), { code: "BTL_DEMO_BROKEN" });
    Object.defineProperty(foreign, Symbol.for("bottle.error"), { value: true });
    expect(isBottleError(new DemoError("BTL_DEMO_BROKEN", "x"))).toBe(true);
    expect(isBottleError(foreign, "BTL_DEMO_BROKEN")).toBe(true);
    expect(isBottleError(foreign, "BTL_DEMO_DENIED")).toBe(false);
    expect(isBottleError(Object.assign(new Error("x"), { code: "BTL_DEMO_BROKEN" }))).toBe(false);
    expect(isBottleError(null)).toBe(false);
  });
});

describe("defineErrors", () => {
  it("derives a frozen codes object", () => {
    expect(codes).toEqual({
      BTL_DEMO_BROKEN: "BTL_DEMO_BROKEN",
      BTL_DEMO_DENIED: "BTL_DEMO_DENIED",
    });
    expect(Object.isFrozen(codes) && Object.isFrozen(table)).toBe(true);
  });

  it.each(["DEMO_BROKEN", "BTL_DEMO", "btl_demo_x", "BTL_DEMO_"])("refuses the code %s", (code) => {
    expect(() => defineErrors({ [code]: { status: 500, exit: 1, meaning: "m" } })).toThrow(
      /BTL_<AREA>_<REASON>/,
    );
  });
});

describe("errorClass", () => {
  it("takes status and exit code from the table, and names errors after the class", () => {
    const error = new DemoError("BTL_DEMO_BROKEN", "broke");
    expect(error).toBeInstanceOf(BottleError);
    expect([error.name, error.status, error.exitCode]).toEqual(["DemoError", 500, 1]);
    expect(String(error)).toBe("DemoError: broke");
    // @ts-expect-error: a code of another table is refused
    expect(() => new DemoError("BTL_OTHER_CODE", "x")).toThrow(TypeError);
  });

  it("leaves a class with more fields its own constructor", () => {
    class RateError extends errorClass(table) {
      readonly resetAt: Date;
      constructor(resetAt: Date) {
        super("BTL_DEMO_DENIED", "slow down");
        this.resetAt = resetAt;
      }
    }
    const error = new RateError(new Date(0));
    expect([error.name, error.code, error.status, error.resetAt.getTime()]).toEqual([
      "RateError",
      "BTL_DEMO_DENIED",
      403,
      0,
    ]);
    expect(new BottleError("BTL_INTERNAL", "x", COMMON_ERRORS.BTL_INTERNAL).name).toBe(
      "BottleError",
    );
  });
});

describe("toBottleError", () => {
  it("passes bottle errors through", () => {
    const error = new DemoError("BTL_DEMO_DENIED", "no");
    expect(toBottleError(error)).toBe(error);
  });

  it("turns anything else into a generic BTL_INTERNAL that keeps the original as cause", () => {
    const original = new TypeError("token=abc in a stack");
    const wrapped = toBottleError(original);
    expect([wrapped.code, wrapped.message, wrapped.status]).toEqual([
      "BTL_INTERNAL",
      "internal error",
      500,
    ]);
    expect(wrapped.cause).toBe(original);
    expect(COMMON_ERRORS.BTL_INTERNAL.exit).toBe(1);
  });
});

describe("the README", () => {
  it("documents the common error table row for row", async () => {
    await expectErrorTableDocumented(
      new URL("../README.md", import.meta.url).pathname,
      COMMON_ERRORS,
    );
  });
});
