import { readFile, stat } from "node:fs/promises";
import { dirname } from "node:path";
import { codes, createTokenStore, type TokenStoreOptions } from "@bottle/gate-tokens";
import { describe, expect, it } from "vitest";
import { rejection, tokenFile } from "./helpers.ts";

describe("createTokenStore", () => {
  it("creates the directory 0700 and the file 0600, in the version 1 format", async () => {
    const file = await tokenFile();
    const clock = new Date("2026-03-01T12:00:00.000Z");
    const store = createTokenStore({ file, now: () => clock });
    const { record } = await store.create({ project: "alpha", task: "t1" });
    expect((await stat(dirname(file))).mode & 0o777).toBe(0o700);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(record).toEqual({
      id: expect.stringMatching(/^gt_[0-9a-f]{16}$/),
      project: "alpha",
      task: "t1",
      scopes: ["read", "write"],
      created: "2026-03-01T12:00:00.000Z",
      expires: null,
    });
    expect(Object.isFrozen(record)).toBe(true);
    const parsed = JSON.parse(await readFile(file, "utf8"));
    expect(parsed).toEqual({
      version: 1,
      tokens: [{ ...record, digest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/) }],
    });
  });

  it("lists without tokens or digests, filtered by project and task", async () => {
    const store = createTokenStore({ file: await tokenFile() });
    expect(await store.list()).toEqual([]);
    const a = await store.create({ project: "alpha", task: "t1" });
    await store.create({ project: "beta", task: "t1" });
    await store.create({ project: "alpha", task: "t2" });
    const all = await store.list();
    expect(all.map((r) => `${r.project}/${r.task}`)).toEqual(["alpha/t1", "beta/t1", "alpha/t2"]);
    expect(JSON.stringify(all)).not.toContain(a.token);
    expect(JSON.stringify(all)).not.toContain("sha256:");
    expect((await store.list({ project: "alpha" })).map((r) => r.task)).toEqual(["t1", "t2"]);
    expect((await store.list({ task: "t1" })).map((r) => r.project)).toEqual(["alpha", "beta"]);
    expect((await store.list({ project: "alpha", task: "t1" })).map((r) => r.id)).toEqual([
      a.record.id,
    ]);
  });

  it("revokes by id", async () => {
    const store = createTokenStore({ file: await tokenFile() });
    const one = await store.create({ project: "alpha", task: "t1" });
    const two = await store.create({ project: "alpha", task: "t1" });
    expect(await store.revoke({ id: one.record.id })).toEqual([one.record]);
    expect(await store.verify(one.token)).toEqual({ ok: false, reason: "unknown" });
    expect((await store.verify(two.token)).ok).toBe(true);
  });

  it("revokes every token of a task, or of a task within one project", async () => {
    const store = createTokenStore({ file: await tokenFile() });
    await store.create({ project: "alpha", task: "t2" });
    await store.create({ project: "beta", task: "t2" });
    await store.create({ project: "beta", task: "t2" });
    await store.create({ project: "gamma", task: "t2" });
    await store.create({ project: "beta", task: "t3" });
    const beta = await store.revoke({ task: "t2", project: "beta" });
    expect(beta.map((r) => `${r.project}/${r.task}`)).toEqual(["beta/t2", "beta/t2"]);
    const rest = await store.revoke({ task: "t2" });
    expect(rest.map((r) => r.project)).toEqual(["alpha", "gamma"]);
    expect((await store.list()).map((r) => `${r.project}/${r.task}`)).toEqual(["beta/t3"]);
  });

  it("revokes every token of a project", async () => {
    const store = createTokenStore({ file: await tokenFile() });
    await store.create({ project: "alpha", task: "t1" });
    await store.create({ project: "alpha", task: "t2" });
    const kept = await store.create({ project: "alpha-2", task: "t1" });
    expect((await store.revoke({ project: "alpha" })).map((r) => r.task)).toEqual(["t1", "t2"]);
    expect(await store.list()).toEqual([kept.record]);
  });

  it("answers BTL_TOKENS_NOT_FOUND when nothing matched, and writes nothing", async () => {
    const file = await tokenFile();
    const store = createTokenStore({ file });
    await store.create({ project: "alpha", task: "t1" });
    const before = await stat(file);
    for (const selector of [
      { task: "nothing" },
      { project: "beta" },
      { id: "gt_0000000000000000" },
    ]) {
      expect((await rejection(store.revoke(selector))).code).toBe(codes.BTL_TOKENS_NOT_FOUND);
    }
    const after = await stat(file);
    expect([after.ino, after.mtimeMs]).toEqual([before.ino, before.mtimeMs]);
  });

  it.each([
    ["an id of the wrong shape", { id: "gt_xyz" }],
    ["an id with a task", { id: "gt_0000000000000000", task: "t1" }],
    ["a wildcard project", { project: "*" }],
    ["a bad task", { task: "../t" }],
    ["nothing", {}],
  ])("refuses a revoke selector with %s", async (_, selector) => {
    const store = createTokenStore({ file: await tokenFile() });
    const error = await rejection(store.revoke(selector as never));
    expect(error.code).toBe(codes.BTL_TOKENS_INVALID_INPUT);
  });

  it("keeps scopes independent: read fetches, write pushes, neither implies the other", async () => {
    const store = createTokenStore({ file: await tokenFile() });
    const ro = await store.create({ project: "alpha", task: "ro", scopes: ["read"] });
    const wo = await store.create({ project: "alpha", task: "wo", scopes: ["write"] });
    const rw = await store.create({
      project: "alpha",
      task: "rw",
      scopes: ["write", "read", "write"],
    });
    expect(await store.verify(ro.token)).toMatchObject({ ok: true, record: { scopes: ["read"] } });
    expect(await store.verify(wo.token)).toMatchObject({ ok: true, record: { scopes: ["write"] } });
    expect(rw.record.scopes).toEqual(["read", "write"]);
  });

  it("expires a token at its expiry time, by the injected clock", async () => {
    let clock = new Date("2026-01-01T00:00:00Z");
    const store = createTokenStore({ file: await tokenFile(), now: () => clock });
    const short = await store.create({ project: "alpha", task: "short", expiresInSeconds: 60 });
    const forever = await store.create({ project: "alpha", task: "forever" });
    expect(short.record.expires).toBe("2026-01-01T00:01:00.000Z");
    clock = new Date("2026-01-01T00:00:59.999Z");
    expect((await store.verify(short.token)).ok).toBe(true);
    clock = new Date("2026-01-01T00:01:00Z");
    expect(await store.verify(short.token)).toEqual({ ok: false, reason: "expired" });
    clock = new Date("2030-01-01T00:00:00Z");
    expect((await store.verify(forever.token)).ok).toBe(true);
    // Expired tokens are still listed (and revocable) until someone revokes them.
    expect((await store.list({ task: "short" })).length).toBe(1);
  });

  it.each([
    ["an empty string", ""],
    ["the prefix alone", "bottle_gt_"],
    ["a body one short", `bottle_gt_${"A".repeat(31)}`],
    ["a body one long", `bottle_gt_${"A".repeat(33)}`],
    ["a character outside base64url", `bottle_gt_${"A".repeat(31)}+`],
    ["a short unprefixed string", "0123456789abcde"],
    ["spaces", "bad token with spaces in it"],
    ["a newline", "0123456789abcdef\n0123456789abcdef"],
    ["non-ASCII", "0123456789abcdefé"],
    ["more than 512 characters", "a".repeat(513)],
  ])("answers malformed for %s, without reading the file", async (_, token) => {
    const file = await tokenFile();
    // No file at all: a read would throw BTL_TOKENS_MISSING.
    expect(await createTokenStore({ file }).verify(token)).toEqual({
      ok: false,
      reason: "malformed",
    });
  });

  it("answers unknown for a well-formed token it never issued", async () => {
    const store = createTokenStore({ file: await tokenFile() });
    const { token } = await store.create({ project: "alpha", task: "t1" });
    const other = `${token.slice(0, -1)}${token.endsWith("A") ? "B" : "A"}`;
    expect(await store.verify(other)).toEqual({ ok: false, reason: "unknown" });
  });

  it("answers BTL_TOKENS_MISSING when verifying against a file that does not exist", async () => {
    const store = createTokenStore({ file: await tokenFile() });
    const error = await rejection(store.verify(`bottle_gt_${"A".repeat(32)}`));
    expect(error.code).toBe(codes.BTL_TOKENS_MISSING);
  });

  it.each([
    [{ project: "Alpha", task: "t" }],
    [{ project: "*", task: "t" }],
    [{ project: "-alpha", task: "t" }],
    [{ project: "a".repeat(64), task: "t" }],
    [{ project: "alpha", task: "" }],
    [{ project: "alpha", task: ".hidden" }],
    [{ project: "alpha", task: "a/b" }],
    [{ project: "alpha", task: "t".repeat(129) }],
    [{ project: "alpha", task: "t", scopes: [] }],
    [{ project: "alpha", task: "t", scopes: ["admin"] }],
    [{ project: "alpha", task: "t", expiresInSeconds: 0 }],
    [{ project: "alpha", task: "t", expiresInSeconds: 1.5 }],
    [{ project: "alpha", task: "t", expiresInSeconds: 366 * 86_400 + 1 }],
    [{ project: "alpha", task: "t", admin: true }],
  ])("refuses invalid input %o and creates no file", async (input) => {
    const file = await tokenFile();
    const error = await rejection(createTokenStore({ file }).create(input as never));
    expect(error.code).toBe(codes.BTL_TOKENS_INVALID_INPUT);
    await expect(stat(file)).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("accepts the widest valid project and task", async () => {
    const store = createTokenStore({ file: await tokenFile() });
    const project = `a${"-".repeat(61)}z`;
    const task = `T${"._:-".repeat(31)}abc`;
    const { token } = await store.create({ project, task });
    expect(await store.verify(token)).toMatchObject({ ok: true, record: { project, task } });
  });

  it.each([
    [{ file: "" }],
    [{ file: 42 }],
    [{ file: "/x/t.json", staleMs: 10 }],
    [{ file: "/x/t.json", retries: -1 }],
    [{ file: "/x/t.json", now: "yesterday" }],
    [{ file: "/x/t.json", lock: false }],
  ])("refuses options %o", (options) => {
    expect(() => createTokenStore(options as unknown as TokenStoreOptions)).toThrow(
      expect.objectContaining({ code: codes.BTL_TOKENS_INVALID_INPUT }),
    );
  });
});
