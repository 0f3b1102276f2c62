import { chmod, readFile, rename, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  codes,
  createTokenStore,
  createTokenVerifier,
  digestToken,
  TOKEN_PREFIX,
  type TokenStoreError,
} from "@bottle/gate-tokens";
import { testdir } from "@bottle/test-utils";
import { describe, expect, it } from "vitest";

async function fileIn(): Promise<string> {
  return join(await testdir(), "state", "tokens.json");
}

async function rejection(promise: Promise<unknown>): Promise<TokenStoreError> {
  return promise.then(
    () => {
      throw new Error("expected a rejection");
    },
    (error: TokenStoreError) => error,
  );
}

describe("createTokenStore", () => {
  it("creates a prefixed token, stores only its digest, file 0600 in a 0700 directory", async () => {
    const file = await fileIn();
    const store = createTokenStore({ file });
    const { token, record } = await store.create({ project: "alpha", task: "t1" });
    expect(token).toMatch(new RegExp(`^${TOKEN_PREFIX}[A-Za-z0-9_-]{32}$`));
    expect(record).toMatchObject({
      project: "alpha",
      task: "t1",
      scopes: ["read", "write"],
      expires: null,
    });
    const text = await readFile(file, "utf8");
    expect(text).not.toContain(token);
    expect(text).toContain(digestToken(token));
    expect(JSON.parse(text).version).toBe(1);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(join(file, ".."))).mode & 0o777).toBe(0o700);
  });

  it("lists without tokens or digests, filtered by project and task", async () => {
    const store = createTokenStore({ file: await fileIn() });
    const a = await store.create({ project: "alpha", task: "t1" });
    await store.create({ project: "beta", task: "t1" });
    await store.create({ project: "alpha", task: "t2" });
    const all = await store.list();
    expect(all).toHaveLength(3);
    expect(JSON.stringify(all)).not.toContain(a.token);
    expect(JSON.stringify(all)).not.toContain("sha256:");
    expect((await store.list({ project: "alpha" })).map((r) => r.task)).toEqual(["t1", "t2"]);
    expect((await store.list({ project: "alpha", task: "t1" })).map((r) => r.id)).toEqual([
      a.record.id,
    ]);
  });

  it("revokes by id, by task (within a project), and by project", async () => {
    const store = createTokenStore({ file: await fileIn() });
    const one = await store.create({ project: "alpha", task: "t1" });
    await store.create({ project: "alpha", task: "t2" });
    await store.create({ project: "beta", task: "t2" });
    await store.create({ project: "beta", task: "t3" });
    expect((await store.revoke({ id: one.record.id })).map((r) => r.id)).toEqual([one.record.id]);
    expect((await store.verify(one.token)).ok).toBe(false);
    expect((await store.revoke({ task: "t2", project: "beta" })).map((r) => r.project)).toEqual([
      "beta",
    ]);
    expect((await store.revoke({ project: "alpha" })).map((r) => r.task)).toEqual(["t2"]);
    expect((await store.list()).map((r) => `${r.project}/${r.task}`)).toEqual(["beta/t3"]);
    expect((await rejection(store.revoke({ task: "nothing" }))).code).toBe(
      codes.BTL_TOKENS_NOT_FOUND,
    );
  });

  it("verifies scopes and expiry", async () => {
    let clock = new Date("2026-01-01T00:00:00Z");
    const store = createTokenStore({ file: await fileIn(), now: () => clock });
    const ro = await store.create({ project: "alpha", task: "ro", scopes: ["read"] });
    const short = await store.create({ project: "alpha", task: "short", expiresInSeconds: 60 });
    expect(await store.verify(ro.token)).toMatchObject({ ok: true, record: { scopes: ["read"] } });
    expect(short.record.expires).toBe("2026-01-01T00:01:00.000Z");
    clock = new Date("2026-01-01T00:00:59.999Z");
    expect((await store.verify(short.token)).ok).toBe(true);
    clock = new Date("2026-01-01T00:01:00Z");
    expect(await store.verify(short.token)).toEqual({ ok: false, reason: "expired" });
    expect(await store.verify(`${ro.token}x`)).toEqual({ ok: false, reason: "unknown" });
    expect(await store.verify("short")).toEqual({ ok: false, reason: "malformed" });
    expect(await store.verify("bad token with spaces")).toEqual({ ok: false, reason: "malformed" });
  });

  it.each([
    [{ project: "Alpha", task: "t" }],
    [{ project: "*", task: "t" }],
    [{ project: "alpha", task: "" }],
    [{ project: "alpha", task: "t", scopes: [] }],
    [{ project: "alpha", task: "t", scopes: ["admin"] }],
    [{ project: "alpha", task: "t", expiresInSeconds: 0 }],
    [{ project: "alpha", task: "t", expiresInSeconds: 1.5 }],
  ])("refuses invalid input %o", async (input) => {
    const file = await fileIn();
    const error = await rejection(createTokenStore({ file }).create(input as never));
    expect(error.code).toBe(codes.BTL_TOKENS_INVALID_INPUT);
    await expect(stat(file)).rejects.toThrow();
  });

  it("refuses a group- or world-readable file and leaves it untouched", async () => {
    const file = await fileIn();
    const store = createTokenStore({ file });
    const { token } = await store.create({ project: "alpha", task: "t" });
    await chmod(file, 0o644);
    const before = await readFile(file);
    expect((await rejection(store.create({ project: "alpha", task: "u" }))).code).toBe(
      codes.BTL_TOKENS_FILE_MODE,
    );
    expect((await rejection(store.verify(token))).code).toBe(codes.BTL_TOKENS_FILE_MODE);
    expect((await rejection(store.list())).code).toBe(codes.BTL_TOKENS_FILE_MODE);
    expect(await readFile(file)).toEqual(before);
  });

  it("refuses a directory others can write", async () => {
    const file = await fileIn();
    const store = createTokenStore({ file });
    await store.create({ project: "alpha", task: "t" });
    await chmod(join(file, ".."), 0o777);
    expect((await rejection(store.list())).code).toBe(codes.BTL_TOKENS_FILE_MODE);
  });

  it.each([
    ["not JSON", "{"],
    ["a list", "[]"],
    ["an unknown version", '{"version": 2, "tokens": []}'],
    [
      "a record with an extra key",
      '{"version":1,"tokens":[{"id":"gt_0123456789abcdef","digest":"sha256:' +
        "0".repeat(64) +
        '","project":"a","task":"t","scopes":["read"],"created":"2026-01-01T00:00:00Z","expires":null,"admin":true}]}',
    ],
    [
      "a wildcard project",
      '{"version":1,"tokens":[{"id":"gt_0123456789abcdef","digest":"sha256:' +
        "0".repeat(64) +
        '","project":"*","task":"t","scopes":["read"],"created":"2026-01-01T00:00:00Z","expires":null}]}',
    ],
    ["a bad legacy entry", '{"sometoken123": {"project": "a"}}'],
  ])("refuses a corrupt file (%s) and never overwrites it", async (_, text) => {
    const file = await fileIn();
    await createTokenStore({ file }).create({ project: "alpha", task: "t" });
    await writeFile(file, text, { mode: 0o600 });
    const store = createTokenStore({ file });
    expect((await rejection(store.create({ project: "alpha", task: "u" }))).code).toBe(
      codes.BTL_TOKENS_CORRUPT,
    );
    expect((await rejection(store.revoke({ project: "alpha" }))).code).toBe(
      codes.BTL_TOKENS_CORRUPT,
    );
    expect(await readFile(file, "utf8")).toBe(text);
  });

  it("reads the legacy plain format, verifies it, and migrates it to digests on the next write", async () => {
    const file = await fileIn();
    await createTokenStore({ file }).create({ project: "alpha", task: "seed" });
    const legacy = "0123456789abcdef0123456789abcdef";
    await writeFile(file, JSON.stringify({ [legacy]: { project: "alpha", task: "old" } }), {
      mode: 0o600,
    });
    const store = createTokenStore({ file });
    expect(await store.verify(legacy)).toMatchObject({
      ok: true,
      record: { project: "alpha", task: "old", scopes: ["read", "write"] },
    });
    const [old] = await store.list();
    await store.create({ project: "alpha", task: "new" });
    const text = await readFile(file, "utf8");
    expect(text).not.toContain(legacy);
    expect(JSON.parse(text).version).toBe(1);
    expect((await store.list()).map((r) => r.id)).toContain(old?.id);
    expect((await store.verify(legacy)).ok).toBe(true);
  });
});

describe("createTokenVerifier", () => {
  it("re-reads the file only when it changes, and sees a new token at once", async () => {
    const file = await fileIn();
    const store = createTokenStore({ file });
    const first = await store.create({ project: "alpha", task: "a" });
    const verifier = createTokenVerifier({ file });
    expect(verifier.verify(first.token).ok).toBe(true);
    const second = await store.create({ project: "alpha", task: "b" });
    expect(verifier.verify(second.token).ok).toBe(true);
    await store.revoke({ task: "a" });
    expect(verifier.verify(first.token)).toEqual({ ok: false, reason: "unknown" });
  });

  it("notices a replacement with the same size and mtime through the inode", async () => {
    const file = await fileIn();
    const store = createTokenStore({ file });
    const a = await store.create({ project: "alpha", task: "aaaa" });
    const verifier = createTokenVerifier({ file });
    expect(verifier.verify(a.token).ok).toBe(true);
    const before = await stat(file);
    const text = await readFile(file, "utf8");
    // Same length, another task name: a new file renamed over the old one.
    const other = text.replace('"task": "aaaa"', '"task": "bbbb"');
    await writeFile(`${file}.new`, other, { mode: 0o600 });
    const { utimes } = await import("node:fs/promises");
    await utimes(`${file}.new`, before.atime, before.mtime);
    await rename(`${file}.new`, file);
    expect(verifier.verify(a.token)).toMatchObject({ ok: true, record: { task: "bbbb" } });
  });

  it("denies every token while the file is missing or corrupt, and recovers", async () => {
    const file = await fileIn();
    const verifier = createTokenVerifier({ file });
    expect(verifier.verify("bottle_gt_anything-at-all-here")).toEqual({
      ok: false,
      reason: "unavailable",
    });
    expect(verifier.state()).toMatchObject({ ok: false, code: codes.BTL_TOKENS_MISSING });
    const { token } = await createTokenStore({ file }).create({ project: "alpha", task: "t" });
    expect(verifier.verify(token).ok).toBe(true);
    const good = await readFile(file);
    await writeFile(file, "garbage", { mode: 0o600 });
    expect(verifier.verify(token)).toEqual({ ok: false, reason: "unavailable" });
    expect(verifier.state()).toMatchObject({ ok: false, code: codes.BTL_TOKENS_CORRUPT });
    await chmod(file, 0o600);
    await writeFile(file, good);
    expect(verifier.verify(token).ok).toBe(true);
    await chmod(file, 0o640);
    expect(verifier.verify(token)).toEqual({ ok: false, reason: "unavailable" });
    expect(verifier.state()).toMatchObject({ ok: false, code: codes.BTL_TOKENS_FILE_MODE });
  });
});
