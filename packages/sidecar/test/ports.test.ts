import { DEFAULT_PORTS, intOption } from "@bottle/sidecar";
import { describe, expect, it } from "vitest";

describe("DEFAULT_PORTS", () => {
  it("gives every sidecar its own port", () => {
    const ports = Object.values(DEFAULT_PORTS);
    expect(new Set(ports).size).toBe(ports.length);
    expect(DEFAULT_PORTS).toEqual({ gate: 9419, proxy: 9420, tokman: 9421 });
  });
});

describe("intOption", () => {
  it("takes whole numbers in range and refuses anything else", () => {
    const parse = intOption(1, 10);
    expect(parse("1")).toBe(1);
    expect(parse("10")).toBe(10);
    for (const bad of ["0", "11", "", " ", "1.5", "1e1", "0x5", "five"])
      expect(() => parse(bad), bad).toThrow("expected an integer from 1 to 10");
  });
});
