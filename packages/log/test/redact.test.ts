import { fingerprint, REDACT_PATHS, redactRecord } from "@bottle/log";
import { makeCanary } from "@bottle/test-utils";
import { describe, expect, it } from "vitest";

describe("REDACT_PATHS", () => {
  it("lists the documented redaction paths", () => {
    expect(REDACT_PATHS).toEqual(
      expect.arrayContaining(["req.headers.authorization", "req.headers.cookie", "token"]),
    );
    expect(Object.isFrozen(REDACT_PATHS)).toBe(true);
  });
});

describe("redactRecord", () => {
  it("censors every REDACT_PATHS value, copies on write and never changes the caller's object", () => {
    const record = {
      req: { headers: { authorization: "a", "x-api-key": "k", accept: "json" }, method: "GET" },
      res: { headers: { "set-cookie": ["c"], etag: "e" } },
      password: "p",
      deep: { secret: "s", keep: 1, deeper: { token: "two levels down is not a path" } },
      list: ["token"],
      kept: "value",
    };
    const before = structuredClone(record);
    const out = redactRecord(record);
    expect(record).toEqual(before);
    expect(out).toEqual({
      req: {
        headers: { authorization: "[redacted]", "x-api-key": "[redacted]", accept: "json" },
        method: "GET",
      },
      res: { headers: { "set-cookie": "[redacted]", etag: "e" } },
      password: "[redacted]",
      deep: { secret: "[redacted]", keep: 1, deeper: { token: "two levels down is not a path" } },
      list: ["token"],
      kept: "value",
    });
  });

  it("returns a record with nothing to hide as it is", () => {
    const record = { route: "/api/", status: 200, nested: { bytes: 3 }, token: undefined };
    expect(redactRecord(record)).toBe(record);
  });

  it("covers each documented path", () => {
    for (const path of REDACT_PATHS) {
      const names = [...path.matchAll(/([^.[\]"]+)|\["([^"]+)"\]/g)].map((m) => m[1] ?? m[2]);
      const record: Record<string, unknown> = {};
      let node = record;
      for (const [index, name] of names.entries()) {
        const key = name === "*" ? "anything" : String(name);
        node[key] = index === names.length - 1 ? "hidden" : {};
        node = node[key] as Record<string, unknown>;
      }
      expect(JSON.stringify(redactRecord(record)), path).not.toContain("hidden");
    }
  });
});

describe("fingerprint", () => {
  it("is a short, stable SHA-256 prefix that does not contain the secret", () => {
    const canary = makeCanary();
    const print = fingerprint(canary);
    expect(print).toMatch(/^sha256:[0-9a-f]{12}$/);
    expect(fingerprint(canary)).toBe(print);
    expect(fingerprint(`${canary}x`)).not.toBe(print);
    expect(fingerprint("abc")).toBe("sha256:ba7816bf8f01");
  });
});
