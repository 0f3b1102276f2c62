import { existsSync } from "node:fs";
import { readFile, realpath, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { testdir } from "../src/index.ts";

describe("testdir", () => {
  it("creates an empty real directory under the system temp dir", async () => {
    const dir = await testdir();
    expect(dir.startsWith(await realpath(tmpdir()))).toBe(true);
    expect(await realpath(dir)).toBe(dir);
    expect((await stat(dir)).isDirectory()).toBe(true);
  });

  it("writes nested files with their content and mode", async () => {
    const dir = await testdir({
      "a.txt": "alpha",
      "nested/deeper/b.sh": { content: "#!/bin/sh\n", mode: 0o750 },
    });
    expect(await readFile(join(dir, "a.txt"), "utf8")).toBe("alpha");
    expect(await readFile(join(dir, "nested/deeper/b.sh"), "utf8")).toBe("#!/bin/sh\n");
    expect((await stat(join(dir, "nested/deeper/b.sh"))).mode & 0o777).toBe(0o750);
  });

  it("gives every call a distinct directory", async () => {
    expect(await testdir()).not.toBe(await testdir());
  });

  it("removes the directory and its files once the test finished", async () => {
    let dir = "";
    // Registered first, so it runs last: onTestFinished handlers run in reverse order.
    onTestFinished(() => {
      expect(existsSync(dir)).toBe(false);
    });
    dir = await testdir({ "sub/file.txt": "x" });
    expect(existsSync(join(dir, "sub/file.txt"))).toBe(true);
  });

  it("refuses a file path that escapes the directory", async () => {
    await expect(testdir({ "../escape.txt": "x" })).rejects.toThrow(/relative path inside/);
    await expect(testdir({ "/etc/escape.txt": "x" })).rejects.toThrow(/relative path inside/);
  });
});
