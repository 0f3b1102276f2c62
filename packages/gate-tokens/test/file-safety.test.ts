import { chmod, mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { codes, createTokenStore } from "@bottle/gate-tokens";
import { testdir } from "@bottle/test-utils";
import { describe, expect, it } from "vitest";
import { rejection, tokenFile } from "./helpers.ts";

const RECORD = {
  id: "gt_0123456789abcdef",
  digest: `sha256:${"0".repeat(64)}`,
  project: "alpha",
  task: "t",
  scopes: ["read"],
  created: "2026-01-01T00:00:00Z",
  expires: null,
};
const v1 = (...tokens: object[]) => JSON.stringify({ version: 1, tokens });

describe("the token file", () => {
  it.each([0o640, 0o604, 0o660, 0o644, 0o606, 0o610, 0o601])(
    "is refused with mode %o and left byte-identical",
    async (mode) => {
      const file = await tokenFile();
      const store = createTokenStore({ file });
      const { token, record } = await store.create({ project: "alpha", task: "t" });
      await chmod(file, mode);
      const before = await readFile(file);
      const refused = [
        () => store.create({ project: "alpha", task: "u" }),
        () => store.revoke({ id: record.id }),
        () => store.verify(token),
        () => store.list(),
      ];
      for (const attempt of refused) {
        expect((await rejection(attempt())).code).toBe(codes.BTL_TOKENS_FILE_MODE);
      }
      expect(await readFile(file)).toEqual(before);
      expect((await stat(file)).mode & 0o777).toBe(mode);
    },
  );

  it("is read when only its owner can read it (0400 or 0600)", async () => {
    const file = await tokenFile();
    const store = createTokenStore({ file });
    const { token } = await store.create({ project: "alpha", task: "t" });
    await chmod(file, 0o400);
    expect((await store.verify(token)).ok).toBe(true);
    await store.create({ project: "alpha", task: "u" });
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it("names the mode and the fix in the message", async () => {
    const file = await tokenFile();
    const store = createTokenStore({ file });
    await store.create({ project: "alpha", task: "t" });
    await chmod(file, 0o644);
    const error = await rejection(store.list());
    expect(error.message).toBe(
      `${file} is readable by group or others (mode 0644); run chmod 600 ${file}`,
    );
  });

  it("is refused in a directory others can write, also for the first write", async () => {
    const dir = join(await testdir(), "open");
    await mkdir(dir);
    await chmod(dir, 0o777);
    const file = join(dir, "tokens.json");
    const store = createTokenStore({ file });
    const error = await rejection(store.create({ project: "alpha", task: "t" }));
    expect(error.code).toBe(codes.BTL_TOKENS_FILE_MODE);
    await expect(stat(file)).rejects.toMatchObject({ code: "ENOENT" });
    await chmod(dir, 0o700);
    await store.create({ project: "alpha", task: "t" });
    await chmod(dir, 0o770);
    expect((await rejection(store.list())).code).toBe(codes.BTL_TOKENS_FILE_MODE);
  });

  it.each(["0755", "0750", "0710", "0701", "0705"])(
    "is refused in a directory of mode %s, which gives group or others access",
    async (shown) => {
      const mode = Number.parseInt(shown, 8);
      const dir = join(await testdir(), "shared");
      await mkdir(dir);
      await chmod(dir, mode);
      const file = join(dir, "tokens.json");
      const store = createTokenStore({ file });
      const first = await rejection(store.create({ project: "alpha", task: "t" }));
      expect(first.code).toBe(codes.BTL_TOKENS_FILE_MODE);
      expect(first.message).toBe(
        `${dir} is open to group or others (mode ${shown}); run chmod 700 ${dir}`,
      );
      await expect(stat(file)).rejects.toMatchObject({ code: "ENOENT" });
      // A file written while the directory was private is refused once the directory opens up.
      await chmod(dir, 0o700);
      const { token } = await store.create({ project: "alpha", task: "t" });
      await chmod(dir, mode);
      const before = await readFile(file);
      for (const attempt of [() => store.list(), () => store.verify(token)]) {
        expect((await rejection(attempt())).code).toBe(codes.BTL_TOKENS_FILE_MODE);
      }
      expect(await readFile(file)).toEqual(before);
      expect((await stat(dir)).mode & 0o777).toBe(mode);
    },
  );

  it("is used in a 0700 directory, and a missing one is created 0700 whatever the umask", async () => {
    const file = await tokenFile();
    const old = process.umask(0);
    try {
      await createTokenStore({ file }).create({ project: "alpha", task: "t" });
    } finally {
      process.umask(old);
    }
    expect((await stat(dirname(file))).mode & 0o777).toBe(0o700);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(await createTokenStore({ file }).list()).toHaveLength(1);
  });

  it.each([
    ["not JSON", "{"],
    ["empty", ""],
    ["a list", "[]"],
    ["a string", '"bottle"'],
    ["an unknown version", '{"version": 2, "tokens": []}'],
    ["an extra top-level key", '{"version": 1, "tokens": [], "admin": true}'],
    ["a record with an extra key", v1({ ...RECORD, admin: true })],
    ["a record without a digest", v1({ ...RECORD, digest: undefined })],
    ["a plain token as the digest", v1({ ...RECORD, digest: `bottle_gt_${"A".repeat(32)}` })],
    ["a wildcard project", v1({ ...RECORD, project: "*" })],
    ["no scopes", v1({ ...RECORD, scopes: [] })],
    ["an unknown scope", v1({ ...RECORD, scopes: ["admin"] })],
    ["a repeated scope", v1({ ...RECORD, scopes: ["read", "read"] })],
    ["a bad time", v1({ ...RECORD, expires: "tomorrow" })],
    ["a repeated id", v1(RECORD, { ...RECORD, digest: `sha256:${"1".repeat(64)}` })],
    ["a repeated digest", v1(RECORD, { ...RECORD, id: "gt_1111111111111111" })],
    ["a bad legacy entry", '{"0123456789abcdef0123": {"project": "alpha"}}'],
    [
      "a legacy entry with an extra key",
      '{"0123456789abcdef0123": {"project": "a", "task": "t", "x": 1}}',
    ],
    ["a legacy entry with a malformed token", '{"short": {"project": "alpha", "task": "t"}}'],
  ])("is refused when corrupt (%s) and never overwritten", async (_, text) => {
    const file = await tokenFile();
    const store = createTokenStore({ file });
    await store.create({ project: "alpha", task: "t" });
    await writeFile(file, text, { mode: 0o600 });
    const attempts = [
      () => store.create({ project: "alpha", task: "u" }),
      () => store.revoke({ project: "alpha" }),
      () => store.list(),
      () => store.verify(`bottle_gt_${"A".repeat(32)}`),
    ];
    for (const attempt of attempts) {
      expect((await rejection(attempt())).code).toBe(codes.BTL_TOKENS_CORRUPT);
    }
    expect(await readFile(file, "utf8")).toBe(text);
  });

  it("names where a corrupt file is wrong without quoting it", async () => {
    const file = await tokenFile();
    const secret = `bottle_gt_${"S".repeat(32)}`;
    await mkdir(dirname(file), { mode: 0o700 });
    await writeFile(file, v1({ ...RECORD, digest: secret }), { mode: 0o600 });
    const error = await rejection(createTokenStore({ file }).list());
    expect(error.message).toBe(
      `${file} is not a valid token file: tokens.0.digest: Expected sha256: and 64 lowercase hex digits`,
    );
    await writeFile(file, v1({ ...RECORD, [secret]: 1 }), { mode: 0o600 });
    const unknownKey = await rejection(createTokenStore({ file }).list());
    expect(unknownKey.message).toContain("tokens.0.<key>: Expected a record with exactly");
    expect(unknownKey.message).not.toContain(secret);
    expect(JSON.stringify(unknownKey)).not.toContain(secret);
  });

  it("leaves no temporary file or lock behind after a write", async () => {
    const file = await tokenFile();
    const store = createTokenStore({ file });
    await store.create({ project: "alpha", task: "t" });
    await store.revoke({ task: "t" });
    expect(await readdir(dirname(file))).toEqual(["tokens.json"]);
  });
});
