import { mkdir, readFile, stat, utimes, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { codes, createTokenStore, createTokenVerifier, digestToken } from "@bottle/gate-tokens";
import { describe, expect, it } from "vitest";
import { rejection, tokenFile } from "./helpers.ts";

const OLD = "0123456789abcdef0123456789abcdef";
const PREFIXED = `bottle_gt_${"L".repeat(32)}`;
const MTIME = new Date("2025-06-01T08:00:00.000Z");

/** A legacy plain file `{"<token>": {project, task}}`, 0600, with a known mtime. */
async function legacyFile(): Promise<string> {
  const file = await tokenFile();
  await mkdir(dirname(file), { mode: 0o700 });
  const text = JSON.stringify({
    [OLD]: { project: "alpha", task: "old" },
    [PREFIXED]: { project: "beta", task: "other" },
  });
  await writeFile(file, text, { mode: 0o600 });
  await utimes(file, MTIME, MTIME);
  return file;
}

describe("the legacy plain format", () => {
  it("is read: both scopes, no expiry, created at the file's mtime", async () => {
    const file = await legacyFile();
    const records = await createTokenStore({ file }).list();
    expect(records).toEqual([
      {
        id: expect.stringMatching(/^gt_[0-9a-f]{16}$/),
        project: "alpha",
        task: "old",
        scopes: ["read", "write"],
        created: MTIME.toISOString(),
        expires: null,
      },
      expect.objectContaining({ project: "beta", task: "other" }),
    ]);
    // Ids are stable while the file is unchanged, so `list` then `revoke --id` works.
    expect(await createTokenStore({ file }).list()).toEqual(records);
  });

  it("verifies its tokens, through the store and the verifier, without rewriting the file", async () => {
    const file = await legacyFile();
    const before = await readFile(file);
    const store = createTokenStore({ file });
    expect(await store.verify(OLD)).toMatchObject({ ok: true, record: { task: "old" } });
    expect(await store.verify(PREFIXED)).toMatchObject({ ok: true, record: { task: "other" } });
    expect(await store.verify(`${OLD}0`)).toEqual({ ok: false, reason: "unknown" });
    const verifier = createTokenVerifier({ file });
    expect(verifier.verify(OLD)).toMatchObject({ ok: true, record: { project: "alpha" } });
    expect(verifier.state()).toEqual({ ok: true, tokens: 2 });
    expect(await readFile(file)).toEqual(before);
  });

  it("is migrated to digests by the next create, keeping ids and verifying the old tokens", async () => {
    const file = await legacyFile();
    const store = createTokenStore({ file });
    const before = await store.list();
    const { record } = await store.create({ project: "alpha", task: "new" });
    const text = await readFile(file, "utf8");
    expect(text).not.toContain(OLD);
    expect(text).not.toContain(PREFIXED);
    expect(JSON.parse(text)).toMatchObject({
      version: 1,
      tokens: [{ digest: digestToken(OLD) }, { digest: digestToken(PREFIXED) }, { id: record.id }],
    });
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(await store.list()).toEqual([...before, record]);
    expect(await store.verify(OLD)).toMatchObject({ ok: true, record: before[0] });
  });

  it("is migrated by a revoke too (here by a listed id)", async () => {
    const file = await legacyFile();
    const store = createTokenStore({ file });
    const [old] = await store.list();
    expect(await store.revoke({ id: old?.id ?? "" })).toEqual([old]);
    const text = await readFile(file, "utf8");
    expect(text).not.toContain(OLD);
    expect(text).not.toContain(PREFIXED);
    expect(await store.verify(OLD)).toEqual({ ok: false, reason: "unknown" });
    expect((await store.verify(PREFIXED)).ok).toBe(true);
  });

  it("is left as it is by a revoke that matches nothing", async () => {
    const file = await legacyFile();
    const before = await readFile(file);
    const error = await rejection(createTokenStore({ file }).revoke({ task: "none" }));
    expect(error.code).toBe(codes.BTL_TOKENS_NOT_FOUND);
    expect(await readFile(file)).toEqual(before);
  });
});
