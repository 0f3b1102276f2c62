import { DEFAULT_PORTS } from "@bottle/sidecar";
import { describe, expect, it } from "vitest";

describe("DEFAULT_PORTS", () => {
  it("gives every sidecar its own port", () => {
    const ports = Object.values(DEFAULT_PORTS);
    expect(new Set(ports).size).toBe(ports.length);
    for (const port of ports)
      expect(Number.isInteger(port) && port > 1024 && port < 65_536).toBe(true);
  });

  it("keeps the documented defaults", () => {
    expect(DEFAULT_PORTS).toEqual({ gate: 9419, proxy: 9420, tokman: 9421 });
    expect(Object.isFrozen(DEFAULT_PORTS)).toBe(true);
  });
});
