import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { expectNoCanary, makeCanary, readTree, testdir } from "../src/index.ts";

function leakMessage(run: () => void): string {
  try {
    run();
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
  throw new Error("expected expectNoCanary to fail");
}

describe("makeCanary", () => {
  it("returns a prefixed 32-hex-digit value that differs on every call", () => {
    const canary = makeCanary();
    expect(canary).toMatch(/^canary_[0-9a-f]{32}$/);
    expect(makeCanary()).not.toBe(canary);
  });

  it("uses a custom prefix and injected randomness", () => {
    expect(makeCanary("ghp", (size) => Buffer.alloc(size, 0xab))).toBe(`ghp_${"ab".repeat(16)}`);
  });
});

describe("expectNoCanary", () => {
  it("passes when no output contains the canary in any form", () => {
    const canary = makeCanary();
    expectNoCanary(canary, "clean stdout", Buffer.from("clean stderr"), undefined, "");
  });

  it("fails on the plain canary and names the output and offset without printing it", () => {
    const canary = makeCanary();
    const message = leakMessage(() => expectNoCanary(canary, "ok", `token=${canary}\n`));
    expect(message).toContain("output #1: plain form at offset 6");
    expect(message).not.toContain(canary);
  });

  it("fails on the base64 of the canary", () => {
    const canary = makeCanary();
    const leaked = Buffer.from(canary).toString("base64");
    const message = leakMessage(() => expectNoCanary(canary, `Bearer ${leaked}`));
    expect(message).toContain("output #0: base64 form");
    expect(message).not.toContain(leaked);
  });

  it("fails on a basic-auth header carrying x-access-token:<canary>", () => {
    const canary = makeCanary();
    const basic = Buffer.from(`x-access-token:${canary}`).toString("base64");
    const message = leakMessage(() => expectNoCanary(canary, `authorization: Basic ${basic}`));
    expect(message).toContain("x-access-token base64 form");
  });

  it("fails on the canary inside a larger base64 blob at any byte alignment", () => {
    const canary = makeCanary();
    for (const prefix of ["", "a", "ab", "abc", "user:"]) {
      const blob = Buffer.from(`${prefix}${canary}!trailer`).toString("base64");
      expect(() => expectNoCanary(canary, blob), `prefix ${JSON.stringify(prefix)}`).toThrow(
        /embedded/,
      );
    }
  });

  it("fails on a Buffer output and reports the byte offset", () => {
    const canary = makeCanary();
    const message = leakMessage(() => expectNoCanary(canary, Buffer.from(`é${canary}`)));
    expect(message).toContain("output #0: plain form at offset 2");
  });

  it("refuses a canary too short to be recognisable", () => {
    expect(() => expectNoCanary("abc", "abc")).toThrow(/at least 16/);
  });
});

describe("readTree", () => {
  it("joins the text of every file below a directory, and is empty for a missing one", async () => {
    const dir = await testdir({ "a.log": "first", "cache/deep/b.json": '{"k":"second"}' });
    const text = await readTree(dir);
    expect(text).toContain("first");
    expect(text).toContain('{"k":"second"}');
    expect(await readTree(join(dir, "missing"))).toBe("");
  });
});
